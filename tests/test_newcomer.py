"""What a newcomer meets first: usage errors in one line, plain help, pipes, links, names that are
not labels, documents that are not images, and the files the tools leave behind."""
import subprocess
import sys

import pytest
from PIL import Image

from conftest import ROOT
from crnn_captcha import CaptchaWarning, ImageError, LabelError
from crnn_captcha.data.labels import read_manifest, scan_folder, unlike_captcha_text
from crnn_captcha.predict import main as predict_main
from crnn_captcha.read.images import load_gray
from crnn_captcha.split import main as split_main
from crnn_captcha.train import main as train_main
from crnn_captcha.training.plot import line_chart
from synth import make_folder, render


@pytest.mark.parametrize("argv,needle", [(["--epochs", "0"], "--epochs: '0' is below"),
                                         (["--threads", "100000"], "--threads: '100000' is above"),
                                         (["--lr", "x"], "--lr: 'x' is not a learning rate")])
def test_a_usage_error_is_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as stop:
        train_main(argv, prog="crnn-captcha train")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and needle in err, err
    assert err.startswith("crnn-captcha train: error: ") and "--help" in err


def test_help_is_plain_text_with_real_defaults(capsys):
    with pytest.raises(SystemExit):
        train_main(["--help"], prog="crnn-captcha train")
    out = " ".join(capsys.readouterr().out.split())
    assert "``" not in out and ":class:" not in out and ":func:" not in out
    assert "(default: auto)" in out.split("--init general|pretrained|scratch|PATH")[-1][:400]
    assert "512 images" in out.split("--epochs EPOCHS")[-1][:300]


def test_a_closed_pipe_ends_quietly(tmp_path):
    """``predict DIR | head -1``: once the reader of the output is gone, no error line, exit 141."""
    folder = tmp_path / "imgs"
    make_folder(folder, 40, seed=2)
    proc = subprocess.Popen([sys.executable, "-m", "crnn_captcha.predict", *[str(folder)] * 60], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141 and err == "", err


def test_predict_reads_the_good_files_beside_an_empty_folder(tmp_path, capsys):
    folder = tmp_path / "imgs"
    make_folder(folder, 2, seed=3)
    empty = tmp_path / "empty"
    empty.mkdir()
    first, second = sorted(folder.iterdir())
    assert predict_main([str(first), str(empty), str(second)]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and f"{empty}: directory holds no images" in err
    assert predict_main([str(empty)]) == 2  # nothing at all to read: called wrongly


def test_split_keeps_links_as_given(tmp_path):
    """Paths inside the manifest's folder are relative to it; others absolute, through the link the
    user gave rather than where it points (as data/README.md says)."""
    real = tmp_path / "store" / "imgs"
    make_folder(real, 12, seed=5)
    link = tmp_path / "data"
    link.symlink_to(real)
    assert split_main(["--src", str(link), "--out", str(tmp_path / "splits")]) == 0
    rows = (tmp_path / "splits" / "train.csv").read_text().splitlines()[1:]
    assert rows and all(r.startswith(str(link) + "/") for r in rows), rows[:2]
    inside = tmp_path / "inside"
    make_folder(inside / "imgs", 12, seed=6)
    assert split_main(["--src", str(inside / "imgs"), "--out", str(inside)]) == 0
    assert (inside / "train.csv").read_text().splitlines()[1].startswith("imgs/")


def test_documents_are_refused_before_any_decoder(tmp_path):
    """EPS, PostScript and PDF would go to an interpreter (Ghostscript); they are refused by their
    first bytes, and only raster formats are ever opened."""
    img = render("2b4c6")
    for fmt in ("EPS", "PDF"):
        path = tmp_path / f"x.{fmt.lower()}"
        img.convert("RGB").save(path, fmt)
        with pytest.raises(ImageError, match="PostScript, EPS or PDF document, not a raster image"):
            load_gray(path)
    ico = tmp_path / "x.ico"
    img.save(ico)
    assert load_gray(ico).ndim == 2  # a raster format on the list still reads
    with pytest.raises(ImageError, match="not an image file of a kind read here"):
        load_gray(b"GIF87a-not-really")


def test_a_manifest_line_nested_too_deep_is_a_label_error(tmp_path):
    deep = tmp_path / "m.jsonl"
    deep.write_text("[" * 100_000 + "\n")
    with pytest.raises(LabelError, match="line 1 nests too deep"):
        read_manifest(deep)


def test_file_names_that_are_not_captcha_text(tmp_path, capsys):
    """A folder of image_001.png or UUID names is refused (most names) or warned about (some): their
    names would be taken as the text the captchas show."""
    import random
    import uuid

    r = random.Random(0)
    captchas = ["".join(r.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(3, 8)))
                for _ in range(500)] + ["".join(r.choice("0123456789") for _ in range(4)) for _ in range(500)]
    assert unlike_captcha_text(captchas) == {}
    dense = sorted({f"{r.randrange(10_000):04d}" for _ in range(30_000)})[:9_200]  # most 4-digit codes: a sample
    assert unlike_captcha_text(dense) == {} and unlike_captcha_text([f"AB{r.randrange(10_000):04d}" for _ in range(99)]) == {}
    assert "3²" not in unlike_captcha_text(["3²"] + [str(r.randrange(100)) for _ in range(20)])  # not decimal: no crash
    assert set(unlike_captcha_text([f"image_{i:03d}" for i in range(20)]).values()) == \
        {"a word and a number"}
    assert len(unlike_captcha_text([str(uuid.UUID(int=r.getrandbits(128))) for _ in range(5)])) == 5
    assert len(unlike_captcha_text([f"{i:04d}" for i in range(30)])) == 30
    named = tmp_path / "named"
    named.mkdir()
    for i in range(12):
        render("2b4c6", seed=i).save(named / f"image_{i:03d}.png")
    assert split_main(["--src", str(named), "--out", str(tmp_path / "s1")]) == 1
    err = capsys.readouterr().err
    assert "12 of 12 file names" in err and "do not look like captcha text" in err and "manifest" in err
    assert err.count("\n") == 1
    mixed = tmp_path / "mixed"
    make_folder(mixed, 20, seed=8)
    render("2b4c6").save(mixed / "screenshot_7.png")
    assert split_main(["--src", str(mixed), "--out", str(tmp_path / "s2")]) == 0  # a warning, and on
    assert "warning: 1 of 21 file names" in capsys.readouterr().err
    with pytest.warns(CaptchaWarning, match="'screenshot_7': a word and a number"):
        scan_folder(mixed, length=None)


def test_the_curves_legend_sits_above_the_plot_and_epochs_are_numbered(tmp_path):
    path = tmp_path / "c.png"
    line_chart(path, [("loss", {"train": [1.0] * 5, "val": [1.0] * 5})], size=(520, 300))
    img = Image.open(path).convert("RGB")
    x0, y0, x1, y1 = 50, 30, 505, 250
    corner = [img.getpixel((x, y)) for x in range(x1 - 130, x1 - 2) for y in range(y0 + 2, y0 + 40)]
    assert all(p == (255, 255, 255) for p in corner)  # the box's top right, where a legend covered lines
    under = [img.getpixel((x, y)) for x in range(x0 - 5, x1 + 5) for y in range(y1 + 3, y1 + 16)]
    assert sum(p != (255, 255, 255) for p in under) > 20  # epoch numbers under the axis


def test_the_docs_site_folder_is_ignored():
    assert "/site/" in (ROOT / ".gitignore").read_text().splitlines()


def test_counts_and_archive_members_that_would_fill_memory_are_refused_first(tmp_path, capsys):
    import io
    import tarfile

    from crnn_captcha.data.glyphs import read_glyph_files
    from crnn_captcha.errors import OptionError
    from crnn_captcha.synth import main as synth_main

    with pytest.raises(SystemExit) as stop:
        synth_main(["--n", "100000000", "--out", str(tmp_path / "s.png")])
    assert stop.value.code == 2 and "--n: '100000000' is above" in capsys.readouterr().err
    from crnn_captcha.glyphs import main as glyphs_main

    with pytest.raises(SystemExit) as stop:
        glyphs_main(["--split", str(tmp_path), "--out", str(tmp_path / "g"), "--copies", "1000000000"])
    assert stop.value.code == 2 and "--copies" in capsys.readouterr().err
    archive = tmp_path / "glyphs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # 40 MB of zeros: a few kB packed
        info = tarfile.TarInfo("a_1.png")
        info.size = 40 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    with pytest.raises(OptionError, match=r"a_1.png: 41,943,040 bytes, more than"):
        read_glyph_files(archive)


def test_pipes_and_broken_links_among_images_are_named_not_skipped(tmp_path, capsys):
    import os

    folder = tmp_path / "imgs"
    make_folder(folder, 2, seed=1)
    os.mkfifo(folder / "pipe.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    assert predict_main([str(folder)]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2
    assert "pipe.png: not a regular file (a pipe, a socket or a device)" in err
    assert "loop.png: a link that leads nowhere (a loop, or a missing target)" in err
    with pytest.warns(CaptchaWarning, match="left out 2 of the entries of .*: not regular files"):
        assert len(scan_folder(folder, length=None)) == 2


def test_a_file_name_that_is_not_utf8_prints_as_the_file_system_has_it(tmp_path):
    import json
    import os

    folder = tmp_path / "imgs"
    make_folder(folder, 1, seed=4)
    data = next(folder.iterdir()).read_bytes()
    with open(os.fsencode(folder) + b"/bad\xff\xfe.png", "wb") as f:
        f.write(data)
    done = subprocess.run([sys.executable, "-m", "crnn_captcha.predict", str(folder)], cwd=ROOT, capture_output=True,
                          timeout=120)
    assert done.returncode == 0 and os.fsencode(folder) + b"/bad\xff\xfe.png\t" in done.stdout, done.stdout
    listed = subprocess.run([sys.executable, "-m", "crnn_captcha.predict", str(folder), "--json"], cwd=ROOT,
                            capture_output=True, timeout=120)
    names = [os.fsencode(row["path"]) for row in json.loads(listed.stdout)]
    assert os.fsencode(folder) + b"/bad\xff\xfe.png" in names  # JSON escapes that decode to the same name


def test_a_broken_pipe_other_than_stdout_is_an_error_line(capsys):
    import errno

    from crnn_captcha import cli

    def work():
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")  # e.g. a helper process's pipe; stdout is fine

    assert cli.run_main(work) == 1
    assert capsys.readouterr().err == "error: Broken pipe\n"
