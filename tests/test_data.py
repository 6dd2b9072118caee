import hashlib
import json
import warnings
from pathlib import Path

import pytest

from crnn_captcha.read.charset import Charset
from crnn_captcha.data.datasets import CaptchaDataset, collate_ctc
from crnn_captcha.data.glyphs import GlyphDataset
from crnn_captcha.errors import LabelError
from crnn_captcha.data.labels import load_samples, read_manifest, scan_folder, write_manifest
from crnn_captcha.read.images import PreprocessConfig
from conftest import CAPTCHA_V2, GLYPHS_TAR, need
from synth import make_folder, render


def test_scan_folder_reads_labels(tmp_path):
    labels = make_folder(tmp_path, 6)
    samples = scan_folder(tmp_path)
    assert sorted(s.label for s in samples) == sorted(labels)


def test_invalid_name_stops_with_report_or_skips_with_count(tmp_path):
    make_folder(tmp_path, 3)
    render("3bfnd").save(tmp_path / "3bnfnd.png")  # the old download's 6-character name
    with pytest.raises(LabelError, match="3bnfnd.png") as e:
        scan_folder(tmp_path)
    assert "6 characters" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.warns(UserWarning, match="skipped 1 file") as w:
        samples = scan_folder(tmp_path, skip_invalid=True)
    assert len(samples) == 3
    assert "\n" not in str(w[0].message) and "skip_invalid" not in str(e.value)


def test_characters_outside_alphabet(tmp_path):
    make_folder(tmp_path, 2, alphabet="abc")
    render("abczz").save(tmp_path / "abczz.png")
    with pytest.raises(LabelError, match="'z'"):
        scan_folder(tmp_path, alphabet="abc")


def test_manifest_paths_survive_moves(tmp_path):
    # images inside the manifest's folder: relative, so the folder can move as a whole
    make_folder(tmp_path / "m" / "imgs", 4)
    inside = scan_folder(tmp_path / "m" / "imgs")
    manifest = tmp_path / "m" / "x.csv"
    write_manifest(manifest, inside)
    back = read_manifest(manifest)
    assert [(s.path.resolve(), s.label) for s in back] == [(s.path.resolve(), s.label) for s in inside]
    text = manifest.read_text()
    assert "imgs/" in text and str(tmp_path) not in text and ".." not in text
    moved = tmp_path / "elsewhere"
    (tmp_path / "m").rename(moved)
    assert [s.label for s in read_manifest(moved / "x.csv")] == [s.label for s in inside]
    # images elsewhere (data beside the project): absolute, so moving the project breaks nothing
    make_folder(tmp_path / "data", 3, seed=2)
    outside = scan_folder(tmp_path / "data")
    (tmp_path / "project" / "splits").mkdir(parents=True)
    write_manifest(tmp_path / "project" / "splits" / "t.csv", outside)
    assert ".." not in (tmp_path / "project" / "splits" / "t.csv").read_text()
    (tmp_path / "project").rename(tmp_path / "project2")
    back = read_manifest(tmp_path / "project2" / "splits" / "t.csv")
    assert [s.path.resolve() for s in back] == [s.path.resolve() for s in outside] and all(s.path.exists() for s in back)


def test_captcha_dataset_items_and_collate(tmp_path):
    labels = make_folder(tmp_path, 4)
    samples = load_samples(tmp_path)
    cs = Charset.from_labels(labels)
    ds = CaptchaDataset(samples, cs, PreprocessConfig())
    x, y, lbl = ds[0]
    assert x.shape == (1, 32, 128) and y.tolist() == cs.encode(lbl)
    images, targets, lengths, lbls = collate_ctc([ds[i] for i in range(4)])
    assert images.shape == (4, 1, 32, 128) and lengths.tolist() == [5] * 4 and targets.numel() == 20


def test_glyphs_flat_folder(tmp_path):
    for i, ch in enumerate("abcab"):
        render(ch, size=(32, 52)).save(tmp_path / f"{ch}_{i}.png")
    ds = GlyphDataset(tmp_path, PreprocessConfig(height=32, width=24))
    assert len(ds) == 5 and ds.charset.chars == "abc"
    for i, name in enumerate(ds.names):
        x, k = ds[i]
        assert x.shape == (1, 32, 24)
        assert ds.charset.chars[k] == Path(name).name[0]


def test_real_captcha_v2_folder():
    folder = need(CAPTCHA_V2)
    samples = scan_folder(folder)
    assert len(samples) == 1000
    assert Charset.from_labels(s.label for s in samples).chars == "2345678bcdefgmnpwxy"


def test_real_glyph_files_read_without_unpacking():
    tar = need(GLYPHS_TAR)
    digest = hashlib.sha256(tar.read_bytes()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = GlyphDataset(tar, PreprocessConfig(height=32, width=24), subfolder="tahabakhtari_subset")
    assert len(ds) == 506
    assert ds.charset.chars == "2345678abcdefgmnpwxy"
    counts = {c: 0 for c in ds.charset.chars}
    for k in ds.labels:
        counts[ds.charset.chars[k]] += 1
    assert counts["n"] == 57 and counts["a"] == 5
    assert hashlib.sha256(tar.read_bytes()).hexdigest() == digest  # the archive is untouched


def test_splicing_makes_consistent_new_strings(tmp_path):
    labels = make_folder(tmp_path, 8, seed=4)
    cs = Charset.from_labels(labels)
    ds = CaptchaDataset(load_samples(tmp_path), cs, PreprocessConfig(), splice_prob=1.0, seed=0)
    seen_new = False
    for i in range(len(ds)):
        x, y, label = ds[i]
        assert x.shape == (1, 32, 128)
        assert cs.decode_indices(y.tolist()) == label and 3 <= len(label) <= 7
        # a prefix of this item's own label joined to a suffix of some label (cut at a nearby place)
        k = next(k for k in range(5, 0, -1) if label[:k] == ds.samples[i].label[:k])
        assert any(other.endswith(label[k:]) for other in labels)
        seen_new |= label not in labels
    assert seen_new
    ds.reseed(3)
    first = [ds[i][2] for i in range(8)]
    ds.reseed(3)
    assert [ds[i][2] for i in range(8)] == first  # repeatable for a seed


@pytest.mark.parametrize("text,match", [
    ('{"path": 5, "label": "abcde"}\n', "string path"),
    ('{"path": "x.png", "label": 28}\n', "string label"),
    ('["x.png", "abc"]\n', "JSON object"),
    ("not json\n", "not JSON"),
])
def test_bad_json_lines_manifests_are_one_line(tmp_path, text, match):
    m = tmp_path / "m.jsonl"
    m.write_text(text)
    with pytest.raises(LabelError, match=match) as e:
        read_manifest(m)
    assert "m.jsonl" in str(e.value) and "\n" not in str(e.value)


def test_tsv_and_json_lines_manifests_with_any_characters(tmp_path):
    make_folder(tmp_path / "imgs", 3)
    files = sorted((tmp_path / "imgs").iterdir())
    labels = ["aB-3x", "é?Q!", "日本x"]
    (tmp_path / "m.tsv").write_text("path\tlabel\n" + "".join(f"imgs/{f.name}\t{l}\n" for f, l in zip(files, labels)))
    rows = [json.dumps({"path": f"imgs/{f.name}", "label": l}, ensure_ascii=False) for f, l in zip(files, labels)]
    (tmp_path / "m.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    for name in ("m.tsv", "m.jsonl"):
        samples = read_manifest(tmp_path / name)
        assert [s.label for s in samples] == labels and all(s.path.exists() for s in samples)
    cs = Charset.from_labels(labels)
    assert all(cs.decode_indices(cs.encode(l)) == l for l in labels)  # case, punctuation, other scripts


def test_huge_csv_field_is_one_line(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("path,label\n" + "x" * 200_000 + ".png,abc\n")
    with pytest.raises(LabelError, match="line 2") as e:
        read_manifest(m)
    assert "\n" not in str(e.value)


def test_labels_from_prefix_and_regex_with_repeats(tmp_path):
    from crnn_captcha.data.labels import scan_folder as scan

    for i, label in enumerate(["aB3x", "aB3x", "Zz9_"]):
        render("2345").save(tmp_path / f"{label}_{i}.png")
    assert [s.label for s in scan(tmp_path, length=None, label_from="prefix")] == ["Zz9", "aB3x", "aB3x"]
    got = scan(tmp_path, length=None, label_from="regex", label_regex=r"^(.{4})_")
    assert [s.label for s in got] == ["Zz9_", "aB3x", "aB3x"]


def test_glyph_cutting_leaves_out_characters_a_file_name_cannot_hold(tmp_path, capsys):
    from crnn_captcha.glyphs import main as glyphs_main

    make_folder(tmp_path / "imgs", 2)
    files = sorted((tmp_path / "imgs").iterdir())
    (tmp_path / "m.csv").write_text(f"path,label\nimgs/{files[0].name},a.b/c\nimgs/{files[1].name},x_y\n")
    assert glyphs_main(["--split", str(tmp_path / "m.csv"), "--out", str(tmp_path / "g"), "--copies", "0"]) == 0
    names = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert names == ["a_0.png", "b_0.png", "c_0.png", "x_0.png", "y_0.png"]
    assert "left out the glyphs of './_'" in capsys.readouterr().err  # sorted: . / _
