"""scripts/make_family.py: manifests, image sizes, labels, determinism and nested train subsets."""
import csv
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
try:
    import make_family
finally:
    sys.path.pop(0)

TINY = ["--train", "6", "--val", "3", "--test", "3", "--subsets", "4", "250", "--workers", "1"]
NEEDS = {"ic36": "captcha", "ic62": "captcha", "colour": None, "warped": "wheezy.captcha", "fade": None,
         "fade_still": None, "perchar": None, "perchar_still": None, "movenoise": None, "movenoise_still": None}


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["path", "label"]
        return list(reader)


def make(name: str, out: Path, *extra: str) -> Path:
    if NEEDS[name]:
        pytest.importorskip(NEEDS[name])
    assert make_family.main(["--family", name, "--out", str(out), *TINY, *extra]) == 0
    return out / name


@pytest.mark.parametrize("name", list(NEEDS))
def test_family_manifests_images_and_labels(name, tmp_path):
    folder = make(name, tmp_path)
    family = make_family.FAMILIES[name]
    rows = {split: read_rows(folder / f"{split}.csv") for split in ("train", "val", "test")}
    assert {split: len(r) for split, r in rows.items()} == {"train": 6, "val": 3, "test": 3}
    every = [row for split in rows.values() for row in split]
    assert len({row["path"] for row in every}) == 12  # splits never share a file
    lo, hi = family.lengths
    for row in every:
        assert set(row["label"]) <= set(family.alphabet), row
        assert lo <= len(row["label"]) <= hi, row
        with Image.open(folder / row["path"]) as image:
            assert image.size == family.size, row["path"]
            if family.animated:  # a GIF, every frame whole
                assert image.format == "GIF" and image.n_frames >= min(8, lo + 1), row["path"]
            else:
                assert image.format == "PNG" and image.mode == family.mode, row["path"]
    info = json.loads((folder / "family.json").read_text())
    assert info["counts"] == {"train": 6, "val": 3, "test": 3}
    assert (info["width"], info["height"], info["alphabet"]) == (*family.size, family.alphabet)
    assert info["generator"]["package"] == family.package and info["generator"]["version"]


@pytest.mark.parametrize("name", list(NEEDS))
def test_same_seed_same_bytes_other_seed_other_images(name, tmp_path):
    first, second = make(name, tmp_path / "a"), make(name, tmp_path / "b")
    other = make(name, tmp_path / "c", "--seed", "1")
    names = sorted(p.name for p in (first / "images").iterdir())
    assert len(names) == 12
    for file in names:
        assert (first / "images" / file).read_bytes() == (second / "images" / file).read_bytes(), file
    assert (first / "train.csv").read_text() == (second / "train.csv").read_text()
    assert any((first / "images" / f).read_bytes() != (other / "images" / f).read_bytes() for f in names)


def test_train_subsets_nest(tmp_path):
    folder = make("colour", tmp_path)
    train = read_rows(folder / "train.csv")
    assert read_rows(folder / "train_4.csv") == train[:4]  # a prefix when train is larger
    assert read_rows(folder / "train_250.csv") == train  # all of train when train is smaller
    assert not (folder / "train_1000.csv").exists()  # --subsets replaces the defaults


def test_worker_count_does_not_change_the_output(tmp_path):
    one = make("colour", tmp_path / "one")
    assert make_family.main(["--family", "colour", "--out", str(tmp_path / "two"), *TINY[:-2], "--workers", "2"]) == 0
    two = tmp_path / "two" / "colour"
    assert (one / "test.csv").read_text() == (two / "test.csv").read_text()
    for image in (one / "images").iterdir():
        assert image.read_bytes() == (two / "images" / image.name).read_bytes(), image.name


def test_colour_text_has_hue_but_little_luma_contrast():
    for index in range(4):
        rng = random.Random(make_family.image_seed("colour", "test", index, 0))
        label = make_family.make_label(rng, make_family.FAMILIES["colour"])
        image, mask, boxes = make_family.colour_sample(rng, label)
        rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
        luma = rgb @ np.array([0.299, 0.587, 0.114])
        text = np.asarray(mask) > 200
        for x0, y0, x1, y1, _char, _under in boxes:
            box = np.zeros_like(text)
            box[y0:y1, x0:x1] = True
            ink, ground = box & text, box & (np.asarray(mask) == 0)
            assert abs(luma[ink].mean() - luma[ground].mean()) < 15
            assert np.linalg.norm(rgb[ink].mean(0) - rgb[ground].mean(0)) > 40


def test_bad_options_exit_2_with_one_line(tmp_path, capsys):
    bad = [["--family", "nope"], [], ["--family", "colour", "--train", "-1"], ["--family", "colour", "--workers", "3"],
           ["--family", "colour", "--train", "x"]]
    for argv in bad:
        assert make_family.main([*argv, "--out", str(tmp_path)]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    make("colour", tmp_path)
    assert make_family.main(["--family", "colour", "--out", str(tmp_path), *TINY]) == 2  # not empty, no --force
    assert "--force" in capsys.readouterr().err
    assert make_family.main(["--family", "colour", "--out", str(tmp_path), *TINY, "--force"]) == 0


def test_list_names_every_family(capsys):
    assert make_family.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(make_family.FAMILIES)


def test_lookalike_probe_draws_the_generators_glyphs_for_a_seed(capsys):
    pytest.importorskip("captcha")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import lookalike_ceiling
    finally:
        sys.path.pop(0)
    x = lookalike_ceiling.glyph("x", 5)
    assert x.shape == (70, 64) and x.min() < 0.2 and x.max() == 1.0  # dark ink on white
    assert np.array_equal(x, lookalike_ceiling.glyph("x", 5))
    assert not np.array_equal(x, lookalike_ceiling.glyph("x", 6))
    assert not np.array_equal(x, lookalike_ceiling.glyph("X", 5))
    squeezed = lookalike_ceiling.glyph("x", 5, squeeze=True)  # narrowed as in a line over 200 px, or not
    assert np.array_equal(squeezed, lookalike_ceiling.glyph("x", 5, squeeze=True))
    assert (squeezed < 0.5).any(axis=0).sum() <= (x < 0.5).any(axis=0).sum()

    assert lookalike_ceiling.main(["--train", "2", "--test", "1", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "ic62 (62 symbols, 6 characters): mean character accuracy" in out
    assert "whole-captcha ceiling" in out
    with pytest.raises(SystemExit) as stop:
        lookalike_ceiling.main(["--epochs", "0"])
    assert stop.value.code == 2


def test_animated_families_hide_text_in_frames_that_fusion_brings_back(tmp_path):
    from crnn_captcha.read.images import load_frames, load_image

    fade, still = make("fade", tmp_path / "a"), make("fade_still", tmp_path / "b")
    row, still_row = read_rows(fade / "train.csv")[0], read_rows(still / "train.csv")[0]
    assert row["label"] == still_row["label"]  # the same draw, animated and still
    frames = load_frames(fade / row["path"])
    gray_still = load_image(still / still_row["path"])
    dark = (gray_still < 150).sum()
    assert all((f < 150).sum() < 0.9 * dark for f in frames)  # no frame shows all the text
    assert (load_image(fade / row["path"], frames="ink") < 150).sum() > 0.9 * dark
    noise = make("movenoise", tmp_path / "c")
    frames = load_frames(noise / read_rows(noise / "train.csv")[0]["path"])
    assert len(frames) >= 8 and not all(np.array_equal(frames[0], f) for f in frames[1:])  # the noise moves
