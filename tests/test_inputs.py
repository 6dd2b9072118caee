"""Careless and hostile inputs: each becomes one ImageError line, and reading touches no global state."""
import io
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from crnn_captcha import CaptchaReader, ImageError
from crnn_captcha.read.images import MAX_FILE_BYTES, PreprocessConfig, load_gray, preprocess
from crnn_captcha.predict import main as predict_main
from conftest import ROOT
from synth import render

sys.path.insert(0, str(ROOT / "scripts"))
import fuzz_images  # noqa: E402

CFG = PreprocessConfig()


@pytest.fixture(scope="module")
def reader():
    return CaptchaReader(device="cpu")


@pytest.fixture(scope="module")
def base():
    return render("2b4mx")


def encoded(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def one_line_error(src, match=None):
    with pytest.raises(ImageError, match=match) as e:
        preprocess(src, CFG)
    assert "\n" not in str(e.value) and str(e.value).strip()
    return str(e.value)


def test_corrupt_avif_in_a_folder_spares_the_others(base, tmp_path, capsys):
    avif = encoded(base.convert("RGB"), "AVIF")
    good = tmp_path / "dir" / "a_good.png"
    good.parent.mkdir()
    base.save(good)
    (tmp_path / "dir" / "b_bad.png").write_bytes(avif[: len(avif) // 2])  # AVIF inside, any extension
    (tmp_path / "dir" / "c_ok.avif").write_bytes(avif)
    assert predict_main([str(tmp_path / "dir")]) == 1
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 2 and "b_bad.png" in err and len(err.strip().splitlines()) == 1


def test_user_opened_images_that_are_broken(base, tmp_path):
    cut = tmp_path / "cut.png"
    cut.write_bytes(encoded(base, "PNG")[:300])
    one_line_error(Image.open(cut), "truncated")
    closed = Image.open(io.BytesIO(encoded(base, "PNG")))
    closed.load()
    closed.close()
    one_line_error(closed, "closed")
    odd = base.convert("RGB")
    odd.info["transparency"] = "not a colour"
    one_line_error(odd, "mode RGB")


@pytest.mark.parametrize("make", [
    lambda: torch.rand(50, 200).to(torch.bfloat16),
    lambda: torch.rand(50, 200).to(torch.float8_e4m3fn),
    lambda: torch.rand(3, 50, 200).half(),
    lambda: torch.rand(50, 200).to_sparse(),
    lambda: (torch.rand(50, 200) * 255).to(torch.uint8).to_sparse(),
])
def test_unusual_tensors_are_read(make, base):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = make()
    assert preprocess(t, CFG).shape == (1, 32, 128)


@pytest.mark.parametrize("make,match", [
    (lambda: torch.empty(50, 200, device="meta"), "meta"),
    (lambda: torch.nested.nested_tensor([torch.rand(50, 200)]), "nested"),
    (lambda: torch.rand(50, 200, dtype=torch.complex64), "complex"),
    (lambda: torch.quantize_per_tensor(torch.rand(50, 200), 0.01, 0, torch.quint8), None),
    (lambda: torch.full((50, 200), -3, dtype=torch.int8), "outside 0-255"),
])
def test_tensors_that_are_not_images(make, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = make()
    if match is None:  # quantized: read after dequantizing
        assert preprocess(t, CFG).shape == (1, 32, 128)
    else:
        one_line_error(t, match)


def test_long_and_strange_file_names(base, tmp_path, capsys):
    one_line_error(tmp_path / ("x" * 300 + ".png"), "cannot be read")
    odd = tmp_path / "two\nlines.png"
    base.save(odd)
    bad = tmp_path / "bad\nname.png"
    bad.write_bytes(b"garbage")
    msg = one_line_error(bad, "not an image")
    assert "bad\\nname.png" in msg
    assert predict_main([str(odd), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 1 and out.startswith(str(tmp_path / "two\\nlines.png") + "\t")
    assert len(err.strip().splitlines()) == 1


def test_nan_is_refused_in_files_and_arrays_alike():
    nan = np.full((50, 200), np.nan, np.float32)
    one_line_error(nan, "NaN")
    one_line_error(encoded(Image.fromarray(nan, "F"), "TIFF"), "NaN")
    ok = np.full((50, 200), 0.5, np.float32)  # a float TIFF in [0, 1] reads like the array
    assert np.array_equal(load_gray(encoded(Image.fromarray(ok, "F"), "TIFF")), load_gray(ok))


def test_large_file_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
    msg = one_line_error(big, "bytes")
    assert f"{MAX_FILE_BYTES:,}" in msg


def test_reading_leaves_warning_filters_alone(reader, base, tmp_path):
    paths = []
    for i in range(8):
        p = tmp_path / f"{i}.png"
        base.save(p)
        paths.append(p)
    before = list(warnings.filters)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(reader.read, paths * 20))
    assert warnings.filters == before
    assert not any(f[0] == "error" and f[2] is Image.DecompressionBombWarning for f in warnings.filters)
    big = encoded(Image.new("1", (10000, 10000)), "PNG")
    with warnings.catch_warnings(record=True) as caught:  # the host's own large image: a warning, no error
        Image.open(io.BytesIO(big))
    assert any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)


@pytest.mark.parametrize("orientation,stored", [
    (3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
])
def test_exif_orientation_is_applied(base, orientation, stored):
    exif = Image.Exif()
    exif[0x0112] = orientation
    jpeg = encoded(base.convert("RGB").transpose(stored), "JPEG", exif=exif.tobytes(), quality=95)
    gray = load_gray(jpeg)
    assert gray.shape == (50, 200)
    assert np.abs(gray.astype(int) - np.asarray(base).astype(int)).mean() < 3


def test_cli_drops_decoder_notes_and_keeps_one_line_per_image(base, tmp_path, capsys):
    data = bytearray(encoded(base.convert("RGB"), "TIFF"))
    for i in range(8, 40):  # damage the TIFF directory: PIL warns about corrupt EXIF data
        data[i] ^= 0x55
    (tmp_path / "t.tif").write_bytes(bytes(data))
    base.save(tmp_path / "ok.png")
    code = predict_main([str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (0, 1) and all(line.startswith("error: ") for line in err) and len(err) <= 1


def test_fuzzed_inputs_give_only_one_line_image_errors(reader):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's notes about the damaged files it still reads
        result = fuzz_images.check(reader, seed=1234, n=400)
    assert not result["failures"], result["failures"][:5]
    assert result["read"] > 20 and result["refused"] > 100, result


def test_an_unexpected_error_is_one_line_unless_asked_for_the_traceback(capsys, monkeypatch):
    from crnn_captcha import cli

    def fault():
        raise ZeroDivisionError("division by zero\nin a place we did not foresee")

    monkeypatch.delenv(cli.TRACEBACK_ENV, raising=False)
    assert cli.run_main(fault) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected ZeroDivisionError: division by zero\\nin a place")
    assert len(err.splitlines()) == 1 and "Traceback" not in err and cli.TRACEBACK_ENV in err

    def no_memory():
        raise MemoryError()

    assert cli.run_main(no_memory) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory") and "--batch-size" in err and len(err.splitlines()) == 1
    monkeypatch.setenv(cli.TRACEBACK_ENV, "1")
    with pytest.raises(ZeroDivisionError):
        cli.run_main(fault)
