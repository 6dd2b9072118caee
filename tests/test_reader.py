import json
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from crnn_captcha import CaptchaReader
from crnn_captcha.read.charset import Charset
from crnn_captcha.read.checkpoint import atomic_save, make_checkpoint
from crnn_captcha.errors import CheckpointError, ImageError
from crnn_captcha.data.labels import scan_folder
from crnn_captcha.evaluate import main as evaluate_main
from crnn_captcha.read.images import PreprocessConfig
from crnn_captcha.read.model import CRNN, CRNNConfig
from crnn_captcha.predict import main as predict_main
from crnn_captcha.read.checkpoint import default_checkpoint
from crnn_captcha.data.split import split_samples
from conftest import CAPTCHA_V2, need
from synth import make_folder


@pytest.fixture(scope="module")
def reader():
    return CaptchaReader(device="cpu")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    make_folder(folder, 3, seed=11)
    return sorted(folder.iterdir())


def test_shipped_model_is_packaged_and_loads(reader):
    assert default_checkpoint().exists()
    assert reader.charset.chars == "2345678bcdefgmnpwxy"


def test_input_types_give_same_text(reader, images):
    path = images[0]
    img = Image.open(path)
    arr = np.asarray(img)
    inputs = [path, str(path), path.read_bytes(), img, arr, arr[:, :, :3], torch.from_numpy(arr[:, :, 0].copy())]
    texts = [reader.read(x) for x in inputs]
    assert len(set(texts)) == 1, texts


def test_prediction_fields(reader, images):
    p = reader.predict(images[0])
    assert isinstance(p.confidence, float) and 0.0 <= p.confidence <= 1.0
    assert len(p.char_confidences) == len(p.text)
    assert all(isinstance(c, float) and 0.0 <= c <= 1.0 for c in p.char_confidences)
    fixed = reader.predict(images[0], length=5)
    assert len(fixed.text) == 5
    beam = reader.predict(images[0], decoder="beam")
    assert isinstance(beam.text, str) and 0.0 <= beam.confidence <= 1.0


def test_batch_keeps_order_and_marks_failures(reader, images, tmp_path):
    singles = [reader.read(p) for p in images]
    assert reader.read_batch(images, batch_size=2) == singles
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    mixed = [images[0], bad, images[1]]
    with pytest.raises(ImageError, match="bad.png"):
        reader.read_batch(mixed)
    preds = reader.predict_batch(mixed, errors="mark")
    assert [p.ok for p in preds] == [True, False, True]
    assert "bad.png" in preds[1].error
    assert reader.read_batch(mixed, errors="mark") == [singles[0], None, singles[1]]


def test_thread_safe(reader, images):
    expected = [reader.read(p) for p in images]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(reader.read, images * 8))
    assert got == expected * 8


def test_allowed_characters_unknown_to_model(reader):
    with pytest.raises(ValueError, match="'A'"):
        CaptchaReader(device="cpu", allowed="A")


def test_real_captchas_confident_noise_not(reader):
    folder = need(CAPTCHA_V2)
    real = [p.confidence for p in reader.predict_batch(sorted(folder.glob("*.png"))[:40])]
    rng = np.random.default_rng(0)
    noise = [reader.predict(rng.integers(0, 256, (50, 200), dtype=np.uint8)).confidence for _ in range(20)]
    assert np.median(real) > 0.9
    assert np.median(noise) < np.median(real) and max(noise) < np.median(real)


def test_shipped_model_reads_test_split():
    folder = need(CAPTCHA_V2)
    test = split_samples(scan_folder(folder), seed=0)["test"]  # the split the model was selected without
    reader = CaptchaReader(device="cpu")
    texts = reader.read_batch([s.path for s in test])
    acc = np.mean([t == s.label for t, s in zip(texts, test)])
    assert len(test) == 125 and acc >= 0.98, acc


# ----- CLIs ------------------------------------------------------------------------------------
def test_predict_one_image_prints_text(images, capsys):
    assert predict_main([str(images[0])]) == 0
    out = capsys.readouterr().out.strip()
    assert "\t" not in out and out == CaptchaReader(device="cpu").read(images[0])


def test_predict_many_tab_separated_and_json(images, capsys):
    assert predict_main([str(p) for p in images]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    path, text, conf = lines[0].split("\t")
    assert path == str(images[0]) and 0.0 <= float(conf) <= 1.0
    assert predict_main([str(images[0].parent), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in rows] == [str(p) for p in images]


def test_predict_failures_exit_1_one_line_each(images, tmp_path, capsys):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(images[0].read_bytes()[:200])
    assert predict_main([str(images[0]), str(empty), str(corrupt)]) == 1
    captured = capsys.readouterr()
    err = [line for line in captured.err.strip().splitlines() if not line.startswith("hint: ")]  # generated images
    assert len(err) == 2 and "empty.png" in err[0] and "corrupt.png" in err[1]
    assert len(captured.out.strip().splitlines()) == 1  # the good one is still read


def test_predict_usage_errors_exit_2(tmp_path, images, capsys):
    (tmp_path / "nothing").mkdir()
    assert predict_main([str(tmp_path / "nothing")]) == 2
    assert "no images" in capsys.readouterr().err
    assert predict_main([str(images[0]), "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x00garbage")
    assert predict_main([str(images[0]), "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "corrupt.pt" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        predict_main([])
    assert e.value.code == 2


def test_evaluate_reports_interval_and_misreads(tmp_path, capsys):
    folder = tmp_path / "imgs"
    make_folder(folder, 6, seed=5)
    cs = Charset("2345678bcdefgmnpwxy")
    model = CRNN(CRNNConfig(num_classes=cs.num_classes, channels=(8, 16, 16, 16, 24), hidden=32, lstm_layers=1))
    ckpt = tmp_path / "random.pt"
    atomic_save(make_checkpoint(model, cs, PreprocessConfig()), ckpt)
    gallery = tmp_path / "mis.png"
    assert evaluate_main([str(folder), "--checkpoint", str(ckpt), "--json", "--gallery", str(gallery)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 6 and len(res["misreads"]) == 6 - round(res["accuracy"] * 6)
    lo, hi = res["accuracy_ci95"]
    assert 0.0 <= lo <= res["accuracy"] <= hi <= 1.0
    assert gallery.exists()
    assert evaluate_main([str(folder), "--checkpoint", str(ckpt)]) == 0
    assert "95% CI" in capsys.readouterr().out
    assert evaluate_main([str(tmp_path / "nope.csv")]) == 2


# ----- ONNX export and backends ----------------------------------------------------------------
def test_shipped_reader_uses_current_onnx_export(reader):
    # onnxruntime is a dependency, and the shipped export must match the shipped checkpoint
    assert reader.backend == "onnx"


@pytest.mark.slow
def test_onnx_export_reads_like_pytorch(tmp_path, images):
    import shutil

    from crnn_captcha.export import main as export_main

    ckpt = tmp_path / "m.pt"
    shutil.copy(default_checkpoint(), ckpt)
    assert export_main(["--onnx", "--checkpoint", str(ckpt)]) == 0
    torch_reader = CaptchaReader(ckpt, device="cpu", backend="torch")
    onnx_reader = CaptchaReader(ckpt, device="cpu", backend="onnx")
    assert onnx_reader.backend == "onnx" and torch_reader.backend == "torch"
    sources = list(images)
    if CAPTCHA_V2.exists():
        sources += sorted(CAPTCHA_V2.glob("*.png"))[:60]
    assert onnx_reader.read_batch(sources) == torch_reader.read_batch(sources)
    x = torch.stack([torch.zeros(1, 32, 128), torch.randn(1, 32, 128)])
    assert np.allclose(onnx_reader.log_probs(x), torch_reader.log_probs(x), atol=1e-4)


def test_stale_onnx_export_is_not_used(tmp_path):
    import shutil

    ckpt = tmp_path / "m.pt"
    cs = Charset("2345678bcdefgmnpwxy")
    model = CRNN(CRNNConfig(num_classes=cs.num_classes, channels=(8, 16, 16, 16, 24), hidden=32, lstm_layers=1))
    atomic_save(make_checkpoint(model, cs, PreprocessConfig()), ckpt)
    shutil.copy(default_checkpoint().with_suffix(".onnx"), tmp_path / "m.onnx")  # made from another model
    from crnn_captcha import CaptchaWarning

    with pytest.warns(CaptchaWarning, match="another checkpoint"):
        assert CaptchaReader(ckpt, device="cpu").backend == "torch"
    with pytest.raises(CheckpointError, match="another checkpoint"):
        CaptchaReader(ckpt, device="cpu", backend="onnx")
    (tmp_path / "m.onnx").unlink()
    with pytest.raises(CheckpointError, match="no ONNX export"):
        CaptchaReader(ckpt, device="cpu", backend="onnx")


# ----- options that cannot be mistyped --------------------------------------------------------
def test_mistyped_or_bad_decoding_options_fail(reader, images):
    with pytest.raises(TypeError, match="lenght"):
        reader.read(images[0], lenght=5)
    with pytest.raises(TypeError):
        reader.read(images[0], "beam")  # options are keyword-only
    with pytest.raises(TypeError):
        CaptchaReader(None, "cpu")
    from crnn_captcha import OptionError

    for bad in ({"beam_width": -1}, {"beam_width": 0}, {"length": 0}, {"length": -3}, {"decoder": "best"}):
        with pytest.raises(OptionError):
            reader.read(images[0], **bad)
    assert reader.read(images[0], length=5) == reader.read(images[0], decoder="greedy", length=5)


def test_reader_leaves_torch_threads_alone(images):
    before = torch.get_num_threads()
    r = CaptchaReader(device="cpu", threads=1, backend="torch")
    r.read(images[0])
    assert torch.get_num_threads() == before


def test_evaluate_takes_the_same_reader_options_as_predict(tmp_path, capsys):
    folder = tmp_path / "imgs"
    make_folder(folder, 3, seed=2)
    assert evaluate_main([str(folder), "--allowed", "2345678bcdefgmnpwxy", "--decoder", "beam", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3


def test_async_calls_read_like_sync_ones(reader, images):
    import asyncio

    async def both():
        one = await reader.aread(images[0])
        many = await asyncio.gather(*(reader.apredict(p) for p in images))
        batch = await reader.apredict_batch(images, errors="mark")
        with pytest.raises(TypeError):
            await reader.aread(images[0], lenght=5)
        return one, [p.text for p in many], [p.text for p in batch]

    one, many, batch = asyncio.run(both())
    expected = [reader.read(p) for p in images]
    assert one == expected[0] and many == expected and batch == expected


def test_evaluate_warns_about_labels_the_model_cannot_read(tmp_path, capsys):
    folder = tmp_path / "imgs"
    make_folder(folder, 4, seed=8)
    make_folder(folder, 2, seed=9, alphabet="AZ")  # characters the shipped model never learned
    assert evaluate_main([str(folder), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "2 of 6 labels hold character(s)" in err and "'A" in err.replace("'Z", "'A")
    assert json.loads(out)["n"] == 6
    assert evaluate_main([str(sorted(folder.iterdir())[0])]) == 2  # an image, not a manifest
    assert "is an image" in capsys.readouterr().err


def test_evaluate_reports_accuracy_ignoring_case(tmp_path, capsys):
    folder = tmp_path / "imgs"
    make_folder(folder, 6, seed=8)
    assert evaluate_main([str(folder), "--json"]) == 0
    right = json.loads(capsys.readouterr().out)["accuracy"]
    manifest = tmp_path / "upper.csv"  # the same images, labelled in capitals the model never read
    manifest.write_text("path,label\n" + "".join(f"{p},{p.stem.upper()}\n" for p in sorted(folder.iterdir())))
    assert evaluate_main([str(manifest), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["accuracy"] == 0.0 and res["accuracy_ignoring_case"] == right > 0
    assert evaluate_main([str(manifest)]) == 0
    assert f"ignoring case   {right:.4f}" in capsys.readouterr().out


def test_evaluate_counts_alike_characters_as_one(tmp_path, capsys):
    folder = tmp_path / "imgs"
    make_folder(folder, 6, seed=8)
    assert evaluate_main([str(folder), "--json"]) == 0
    right = json.loads(capsys.readouterr().out)["accuracy"]
    manifest = tmp_path / "upper.csv"  # every letter written as its capital, which the model never reads
    manifest.write_text("path,label\n" + "".join(f"{p},{p.stem.upper()}\n" for p in sorted(folder.iterdir())))
    letters = sorted({c for p in folder.iterdir() for c in p.stem if c.isalpha()})
    groups = [arg for c in letters for arg in ("--alike", c + c.upper())]
    assert evaluate_main([str(manifest), "--json", *groups]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["accuracy"] == 0.0 and res["accuracy_alike"] == right > 0
    assert res["alike"] == [c + c.upper() for c in letters]
    assert evaluate_main([str(manifest), *groups[:2]]) == 0  # one group: most labels still differ
    out = capsys.readouterr().out
    assert f"alike as one    0.0000  ({letters[0]}{letters[0].upper()})" in out
    with pytest.raises(SystemExit) as e:  # argparse's usage error
        evaluate_main([str(manifest), "--alike", "a"])
    assert e.value.code == 2 and "'a' is not two or more different characters" in capsys.readouterr().err
    assert evaluate_main([str(manifest), "--alike", "aA", "--alike", "Ab"]) == 2
    assert capsys.readouterr().err.strip() == "error: --alike: 'A' is in more than one group"


def test_unknown_allowed_characters_are_a_usage_error(images, capsys):
    assert predict_main([str(images[0]), "--allowed", "ZZ"]) == 2
    assert "'Z'" in capsys.readouterr().err


def test_a_name_too_long_spares_the_other_images(images, tmp_path, capsys):
    long = str(tmp_path / ("y" * 300 + ".png"))
    assert predict_main([str(images[0]), long, str(images[1])]) == 1
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 2 and "cannot be read" in err


def test_export_never_overwrites_its_checkpoint(tmp_path, capsys):
    import shutil

    from crnn_captcha.export import main as export_main

    ckpt = tmp_path / "e.pt"
    shutil.copy(default_checkpoint(), ckpt)
    before = ckpt.read_bytes()
    assert export_main(["--checkpoint", str(ckpt), "--out", str(ckpt)]) == 2
    assert ".onnx" in capsys.readouterr().err and ckpt.read_bytes() == before


# ----- shipped models by name, and reading for sites that ignore case -----------------------------
def test_shipped_models_load_by_name():
    from crnn_captcha.read.shipped import MODELS, model_path

    assert set(MODELS) >= {"captcha_v2", "general", "pretrained"}
    assert CaptchaReader("captcha_v2", device="cpu").checkpoint_path == default_checkpoint()
    pretrained = CaptchaReader("pretrained", device="cpu")
    assert pretrained.checkpoint_path == model_path("pretrained") and len(pretrained.charset) > 60
    general = CaptchaReader("general", device="cpu")  # through its ONNX export where ONNX Runtime is there
    assert general.checkpoint_path == model_path("general") and general.charset.chars == pretrained.charset.chars
    assert general.backend == "onnx" and CaptchaReader("general", backend="torch").backend == "torch"
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        CaptchaReader("no_such_model", device="cpu")


def test_ignore_case_sums_both_cases_and_reads_lower_case():
    from crnn_captcha.read.ctc import decode, fold_case

    charset = Charset("aAb")
    # frame 1: "A" 0.4, "a" 0.3, "b" 0.3 (A wins alone; a + A = 0.7 wins folded); frame 2: blank
    lp = np.log(np.array([[1e-9, 0.3, 0.4, 0.3], [1.0, 1e-9, 1e-9, 1e-9]]))
    assert decode(lp, charset).text == "A"
    folded = decode(lp, charset, ignore_case=True)
    assert folded.text == "a" and folded.char_confidences[0] == pytest.approx(0.7, abs=1e-6)
    assert np.isneginf(fold_case(lp, charset)[:, 2]).all()
    no_partner = np.log(np.array([[1e-9, 0.6, 0.4], [1.0, 1e-9, 1e-9]]))
    assert decode(no_partner, Charset("Ab"), ignore_case=True).text == "a"  # just written in lower case
    with pytest.raises(Exception, match="ignore_case must be True or False"):
        decode(lp, charset, ignore_case="yes")


def test_allowed_letters_with_ignore_case_stand_for_both_cases():
    from crnn_captcha.errors import AllowedCharacterError
    from crnn_captcha.read.ctc import allowed_mask, decode

    charset = Charset("aAb")
    # frame 1: "A" 0.5, "a" 0.2, "b" 0.3: told "ab" and that case does not matter, the A's score counts for a
    lp = np.log(np.array([[1e-9, 0.2, 0.5, 0.3], [1.0, 1e-9, 1e-9, 1e-9]]))
    assert decode(lp, charset, allowed="ab").text == "b"  # case kept: A is not allowed, a alone loses to b
    folded = decode(lp, charset, allowed="ab", ignore_case=True)
    assert folded.text == "a" and folded.char_confidences[0] == pytest.approx(0.7, abs=1e-6)
    assert decode(lp, charset, allowed="AB", ignore_case=True).text == "a"  # either case may be given
    assert allowed_mask(Charset("Ab"), "ab", ignore_case=True).tolist() == [True, True, True]
    with pytest.raises(AllowedCharacterError, match="'c'"):
        allowed_mask(charset, "ac", ignore_case=True)


@pytest.mark.slow
def test_predict_model_option_and_ignore_case(capsys):
    sample = str(Path(__file__).resolve().parent.parent / "crnn_captcha" / "samples" / "8xypd.png")
    assert predict_main([sample, "--model", "pretrained", "--ignore-case"]) == 0
    assert capsys.readouterr().out.strip() == "8xypd"


def test_unsure_readings_are_flagged_and_predict_gives_one_hint(tmp_path, capsys):
    from crnn_captcha.read.reader import UNSURE

    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 200), dtype=np.uint8)).save(noise)
    sample = Path(__file__).resolve().parent.parent / "crnn_captcha" / "samples" / "8xypd.png"
    reader = CaptchaReader(device="cpu")
    assert reader.predict(noise).unsure and reader.predict(noise).confidence < UNSURE
    assert not reader.predict(sample).unsure
    assert predict_main([str(sample)]) == 0
    assert "hint" not in capsys.readouterr().err
    assert predict_main([str(sample), str(noise), str(noise)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hint: 2 of 3 reading(s) have a confidence under 0.9"), err
    assert predict_main([str(noise), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["unsure"] is True


def test_evaluate_reports_the_unsure_share(tmp_path, capsys):
    folder = tmp_path / "noisy"
    folder.mkdir()
    for i, text in enumerate(["2b4c6", "3d5e7"]):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (50, 200), dtype=np.uint8)).save(folder / f"{text}.png")
    assert evaluate_main([str(folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["unsure"] == 1.0 and result["unsure_right"] == 0.0


def test_reading_at_several_widths_keeps_the_surest_reading(images, tmp_path, capsys):
    from crnn_captcha.errors import OptionError
    from crnn_captcha.read.images import preprocess_candidates

    as_drawn, wider = CaptchaReader("general", device="cpu"), CaptchaReader("general", device="cpu", widths=[2])
    both = CaptchaReader("general", device="cpu", widths=(1, 2, 2))
    assert both.widths == (1.0, 2.0)
    narrow, wide = preprocess_candidates(images[0], both.preprocess, widths=both.widths)
    assert narrow.shape == wide.shape and not np.array_equal(narrow, wide)
    pairs = [(as_drawn.predict(i), wider.predict(i)) for i in images]
    assert any(a.confidence != b.confidence for a, b in pairs)  # the width does change the reading
    for (a, b), got in zip(pairs, both.predict_batch(images)):
        surer = a if a.confidence >= b.confidence else b
        assert got.text == surer.text and got.confidence == pytest.approx(surer.confidence, rel=1e-5)
    for bad in [(), (5,), "12", (True,), 2]:
        with pytest.raises(OptionError, match="widths must be one or more numbers from 0.25 to 4"):
            CaptchaReader("general", device="cpu", widths=bad)
    torch.manual_seed(0)
    stretched = tmp_path / "stretch.pt"  # a model that stretches every image has one width to read at
    atomic_save(make_checkpoint(CRNN(CRNNConfig(num_classes=4)), Charset("abc"), PreprocessConfig()), stretched)
    assert CaptchaReader(stretched, device="cpu", widths=[1]).widths == (1.0,)
    with pytest.raises(OptionError, match="reads at one width only"):
        CaptchaReader(stretched, device="cpu", widths=[1, 2])
    drawn_wide = tmp_path / "wide.pt"  # a model that draws images 8 times as wide already
    atomic_save(make_checkpoint(CRNN(CRNNConfig(num_classes=4)), Charset("abc"),
                                PreprocessConfig(resize="pad", x_scale=8.0)), drawn_wide)
    with pytest.raises(OptionError, match="must stay from 0.1 to 16"):
        CaptchaReader(drawn_wide, device="cpu", widths=[1, 4])
    assert predict_main([str(images[0]), "--model", "general", "--widths", "1", "2"]) == 0
    assert capsys.readouterr().out.strip() == both.read(images[0])
    with pytest.raises(SystemExit) as e:  # argparse's usage error
        predict_main([str(images[0]), "--widths", "1", "9"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--widths: '9' is above the largest allowed value, 4" in err[0], err
