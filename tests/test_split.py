import csv
import hashlib
from pathlib import Path

import pytest

from crnn_captcha.data.split import split_samples
from crnn_captcha.split import main
from crnn_captcha.data.labels import read_manifest, scan_folder
from conftest import CAPTCHA_V2, SHARED_DATA, need
from synth import make_folder


def folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_split_deterministic_disjoint_covering(tmp_path):
    src = tmp_path / "src"
    make_folder(src, 40)
    before = folder_digest(src)
    assert main(["--src", str(src), "--out", str(tmp_path / "a")]) == 0
    assert main(["--src", str(src), "--out", str(tmp_path / "b")]) == 0
    for name in ("train", "val", "test"):
        assert (tmp_path / "a" / f"{name}.csv").read_text() == (tmp_path / "b" / f"{name}.csv").read_text()
    parts = {n: {s.path.resolve() for s in read_manifest(tmp_path / "a" / f"{n}.csv")} for n in ("train", "val", "test")}
    assert len(parts["train"]) == 30 and len(parts["val"]) == 5 and len(parts["test"]) == 5
    assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"]) and not (parts["val"] & parts["test"])
    assert parts["train"] | parts["val"] | parts["test"] == {p.resolve() for p in src.iterdir()}
    assert folder_digest(src) == before  # the source is only read


def test_split_seed_changes_and_ratios(tmp_path):
    src = tmp_path / "src"
    make_folder(src, 40)
    samples = scan_folder(src)
    a, b = split_samples(samples, seed=0), split_samples(samples, seed=1)
    assert [s.label for s in a["test"]] != [s.label for s in b["test"]]
    c = split_samples(samples, ratios=(0.5, 0.25, 0.25))
    assert [len(c[k]) for k in ("train", "val", "test")] == [20, 10, 10]
    # order of the input does not matter
    assert split_samples(list(reversed(samples)), seed=0) == a


def test_split_refuses_overwrite(tmp_path, capsys):
    src = tmp_path / "src"
    make_folder(src, 10)
    out = tmp_path / "out"
    assert main(["--src", str(src), "--out", str(out)]) == 0
    first = (out / "train.csv").read_text()
    assert main(["--src", str(src), "--out", str(out), "--seed", "5"]) == 1
    assert "--force" in capsys.readouterr().err
    assert (out / "train.csv").read_text() == first
    assert main(["--src", str(src), "--out", str(out), "--seed", "5", "--force"]) == 0


def test_split_reports_invalid_file(tmp_path, capsys):
    src = tmp_path / "src"
    make_folder(src, 8)
    (src / "3bnfnd.png").write_bytes((src / next(iter(sorted(p.name for p in src.iterdir())))).read_bytes())
    assert main(["--src", str(src), "--out", str(tmp_path / "o"), "--length", "5"]) == 1
    assert "3bnfnd.png" in capsys.readouterr().err
    assert main(["--src", str(src), "--out", str(tmp_path / "o"), "--length", "5", "--skip-invalid"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    skipped = [line for line in err if line.startswith("warning: skipped")]
    assert len(skipped) == 1 and "3bnfnd.png" in skipped[0] and "Traceback" not in "".join(err)
    assert all(line.startswith("warning: ") for line in err)
    assert sum(len(rows(tmp_path / "o" / f"{n}.csv")) for n in ("train", "val", "test")) == 8


def test_split_real_captcha_v2(tmp_path, capsys):
    src = need(CAPTCHA_V2)
    assert main(["--src", str(src), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "alphabet (19): 2345678bcdefgmnpwxy" in out
    assert [len(rows(tmp_path / f"{n}.csv")) for n in ("train", "val", "test")] == [750, 125, 125]


# ----- careless splits ---------------------------------------------------------------------------
def test_split_refuses_the_data_folder_and_files_as_out(tmp_path, capsys):
    src = tmp_path / "src"
    make_folder(src, 10)
    before = sorted(p.name for p in src.iterdir())
    for out in (src, src / "splits"):
        assert main(["--src", str(src), "--out", str(out)]) == 2
        assert "data folder" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["--src", str(src), "--out", str(tmp_path / "afile")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert sorted(p.name for p in src.iterdir()) == before  # nothing written into the data folder


@pytest.mark.parametrize("ratios", [["inf", "1", "1"], ["nan", "1", "1"], ["-1", "1", "1"], ["1e308", "1e308", "1e308"]])
def test_split_bad_ratios_are_usage_errors(tmp_path, ratios):
    src = tmp_path / "src"
    make_folder(src, 10)
    with pytest.raises(SystemExit) as e:
        main(["--src", str(src), "--out", str(tmp_path / "o"), "--ratios", *ratios])
    assert e.value.code == 2


def test_split_warns_about_repeats_hidden_files_and_refuses_broken_images(tmp_path, capsys):
    src = tmp_path / "src"
    labels = make_folder(src, 12)
    (src / f"{labels[0]}.jpg").write_bytes((src / f"{labels[0]}.png").read_bytes())  # the same label twice
    (src / "._x.png").write_bytes(b"\x00\x05\x16\x07")  # a macOS companion file
    (src / ".hidden.png").write_bytes(b"")
    assert main(["--src", str(src), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "left out 2 hidden file(s)" in err and "1 label(s) name more than one file" in err
    (src / "7777x.png").write_bytes((src / f"{labels[1]}.png").read_bytes()[:100])  # truncated, valid name
    assert main(["--src", str(src), "--out", str(tmp_path / "o2")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: 1 image(s) cannot be read") and "7777x.png" in err[-1]
    assert main(["--src", str(src), "--out", str(tmp_path / "o3"), "--skip-invalid"]) == 0


def test_split_too_few_images_says_so(tmp_path, capsys):
    src = tmp_path / "src"
    make_folder(src, 4)
    assert main(["--src", str(src), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "too few" in err and "val and test would be empty" in err
    assert not (tmp_path / "o").exists()


def test_split_a_manifest_such_as_the_labelling_page_writes(tmp_path, capsys):
    src = tmp_path / "caps"
    labels = make_folder(src, 24)
    renamed = {}
    for k, label in enumerate(labels):  # names that say nothing; the labels are in the manifest alone
        (src / f"{label}.png").rename(src / f"img{k:02d}.png")
        renamed[f"img{k:02d}.png"] = label.upper() if k % 2 else label
    manifest = src / "labels.csv"
    manifest.write_text("path,label\n" + "".join(f"{name},{label}\n" for name, label in renamed.items()))
    before = folder_digest(src)
    assert main(["--src", str(manifest), "--out", str(tmp_path / "splits")]) == 0
    got = {s.path.resolve(): s.label for n in ("train", "val", "test") for s in read_manifest(tmp_path / "splits" / f"{n}.csv")}
    assert got == {(src / name).resolve(): label for name, label in renamed.items()}
    assert folder_digest(src) == before
    assert main(["--src", str(manifest), "--out", str(src / "splits")]) == 2  # not inside the images' folder
    assert main(["--src", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "inside the data folder" in err and "missing.csv: no such folder or manifest" in err


def _real_splits():
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "scripts" / "real_splits.py"
    spec = importlib.util.spec_from_file_location("real_splits", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_splits_cut_each_set_75_12_5_12_5_the_same_way_every_time(tmp_path, capsys):
    real_splits = _real_splits()
    src = tmp_path / "real"
    for name, n in (("site_a", 40), ("site_b", 9)):
        (src / name).mkdir(parents=True)
        rows = "".join(f"images/{i:03d}.png,L{i}\n" for i in range(n))
        (src / name / "all.csv").write_text("path,label\n" + rows)
    assert real_splits.main(["--src", str(src), "--out", str(tmp_path / "out")]) == 0
    first = {p.relative_to(tmp_path / "out"): p.read_text() for p in (tmp_path / "out").rglob("*.csv")}
    assert real_splits.main(["--src", str(src), "--out", str(tmp_path / "again")]) == 0
    assert first == {p.relative_to(tmp_path / "again"): p.read_text() for p in (tmp_path / "again").rglob("*.csv")}

    def rows(name, part):
        lines = (tmp_path / "out" / name / f"{part}.csv").read_text().splitlines()
        assert lines[0] == "path,label"
        return [tuple(line.split(",")) for line in lines[1:]]

    train, val, test = rows("site_a", "train"), rows("site_a", "val"), rows("site_a", "test")
    assert (len(train), len(val), len(test)) == (30, 5, 5)
    assert sorted(train + val + test) == sorted((str((src / "site_a" / f"images/{i:03d}.png").resolve()), f"L{i}")
                                                for i in range(40))
    assert train != sorted(train)  # shuffled, not cut in file order
    assert rows("site_a", "train_250") == train and rows("site_a", "rest") == []
    assert [len(rows("site_b", p)) for p in ("train", "val", "test")] == [6, 1, 2]
    assert "site_a: train 30, val 5, test 5" in capsys.readouterr().out
    assert real_splits.main(["--src", str(src), "--out", str(src / "splits")]) == 2  # the data is only read
    assert "inside the data folder" in capsys.readouterr().err and not (src / "splits").exists()
    with pytest.raises(SystemExit):
        real_splits.main(["--src", str(tmp_path / "out" / "nothing_here"), "--out", str(tmp_path / "x")])
    assert "no folder in it holds an all.csv" in capsys.readouterr().err


def test_real_splits_of_the_shared_sets_have_the_test_sizes_the_results_quote(tmp_path):
    src = need(SHARED_DATA / "real")
    assert _real_splits().main(["--src", str(src), "--out", str(tmp_path)]) == 0
    sizes = {name: len((tmp_path / name / "test.csv").read_text().splitlines()) - 1
             for name in ("thsr_rail", "swust_univ", "lzu_digits")}
    assert sizes == {"thsr_rail": 622, "swust_univ": 587, "lzu_digits": 625}
