"""train --unlabelled: the teacher's confident readings join the labels; the threshold is measured."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from crnn_captcha.data.labels import Sample
from crnn_captcha.read.reader import Prediction
from crnn_captcha.training import self_training
from synth import make_folder


class FakeReader:
    """Reads each path as the table says: (text, confidence)."""

    def __init__(self, table):
        self.table = table

    def predict_batch(self, paths, errors="raise"):
        return [Prediction(*self.table[Path(p).name]) for p in paths]


def test_the_threshold_is_where_the_teacher_was_right_often_enough():
    val = [Sample(Path(f"v{k}.png"), "abc") for k in range(40)]
    # the 30 most confident are right but one (at confidence 0.6); below 0.5 it is mostly wrong
    table = {f"v{k}.png": ("abc" if k != 29 else "abd", 0.99 - k * 0.013) for k in range(30)}
    table.update({f"v{k}.png": ("xyz", 0.3) for k in range(30, 40)})
    threshold, why = self_training.measured_threshold(FakeReader(table), val)
    assert threshold == pytest.approx(0.99 - 28 * 0.013) and "right (100.0%)" in why
    threshold, why = self_training.measured_threshold(FakeReader({f"v{k}.png": ("no", 0.9) for k in range(40)}), val)
    assert threshold is None and "read 0 of 40 right" in why  # sure and wrong: no reading is used
    threshold, why = self_training.measured_threshold(FakeReader(table), val[:19])
    assert threshold is None and "fewer than the 20" in why  # too few to measure a bound on
    all_right = {f"v{k}.png": ("abc", 0.9 - k * 0.02) for k in range(40)}  # down to 0.12, every one right
    threshold, _ = self_training.measured_threshold(FakeReader(all_right), val)
    assert threshold == self_training.MIN_THRESHOLD  # a reading its model gives under even odds is no label


def test_pseudo_labels_keep_confident_readings_of_plausible_length_not_the_labelled():
    labelled = [Sample(Path("a.png"), "abcd"), Sample(Path("b.png"), "abcde")]
    table = {"a.png": ("abcd", 1.0), "u1.png": ("wxyz", 0.97), "u2.png": ("wxyz", 0.5), "u3.png": ("toolongtext", 0.99),
             "u4.png": ("xy", 0.99)}
    kept, seen = self_training.pseudo_labels(FakeReader(table), [Path(n) for n in table], labelled, 0.9)
    assert [(s.path.name, s.label) for s in kept] == [("u1.png", "wxyz")] and seen == 4
    kept, seen = self_training.pseudo_labels(FakeReader(table), [Path(n) for n in table], labelled, 0.9,
                                             val=[Sample(Path("u1.png"), "wxyz")])
    assert kept == [] and seen == 3  # a validation image is never trained on


def test_at_most_keeps_a_seeded_choice_in_order():
    kept = [Sample(Path(f"u{k}.png"), "abc") for k in range(10)]
    assert self_training.at_most(kept, None) == kept and self_training.at_most(kept, 10) == kept
    few = self_training.at_most(kept, 4, seed=1)
    assert len(few) == 4 and few == sorted(few, key=lambda s: int(s.path.stem[1:]))  # in their order
    assert few == self_training.at_most(kept, 4, seed=1) and set(few) < set(kept)


def test_max_pseudo_goes_with_unlabelled(tmp_path, capsys):
    from crnn_captcha.train import main as train_main

    code = train_main(["--train", str(tmp_path), "--val", str(tmp_path), "--out", str(tmp_path / "x"), "--max-pseudo", "5"])
    assert code == 2 and "--max-pseudo goes with --unlabelled" in capsys.readouterr().err


@pytest.mark.slow
def test_train_unlabelled_writes_teacher_pseudo_labels_and_student(tmp_path):
    from crnn_captcha.train import main as train_main

    labelled, val, unlabelled = tmp_path / "train", tmp_path / "val", tmp_path / "unlabelled"
    make_folder(labelled, 24, seed=1)
    make_folder(val, 24, seed=2)
    make_folder(unlabelled, 20, seed=3)  # their names are labels, but only the images are used
    out = tmp_path / "run"
    code = train_main(["--train", str(labelled), "--val", str(val), "--unlabelled", str(unlabelled), "--out", str(out),
                       "--epochs", "2", "--no-progress", "--pseudo-threshold", "0.0", "--max-pseudo", "7"])
    assert code == 0
    record = json.loads((out / "self_training.json").read_text())
    assert record["images"] == 20 and record["threshold"] == 0.0
    assert record["pseudo_labels"] == min(7, record["confident"]) and record["max_pseudo"] == 7
    with open(out / "student_train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 + record["pseudo_labels"]
    assert (out / "teacher" / "best.pt").exists() and (out / "best.pt").exists()
    assert train_main(["--train", str(labelled), "--val", str(val), "--out", str(tmp_path / "x"),
                       "--pseudo-threshold", "0.5"]) == 2  # the threshold goes with --unlabelled


@pytest.mark.slow
def test_a_given_teacher_reads_the_unlabelled_and_no_first_model_is_trained(tmp_path):
    from crnn_captcha.read.shipped import pretrained_checkpoint
    from crnn_captcha.train import main as train_main

    labelled, pool = tmp_path / "train", tmp_path / "pool"
    make_folder(labelled, 24, seed=1)
    names = make_folder(pool, 20, seed=3)
    val = tmp_path / "val.csv"  # six of the pool's images are the validation set
    val.write_text("path,label\n" + "".join(f"{pool / name}.png,{name}\n" for name in names[:6]))
    out = tmp_path / "run"
    common = ["--train", str(labelled), "--val", str(val), "--epochs", "1", "--no-progress"]
    assert train_main([*common, "--unlabelled", str(pool), "--teacher", str(pretrained_checkpoint()), "--out",
                       str(out), "--pseudo-threshold", "0.0"]) == 0
    record = json.loads((out / "self_training.json").read_text())
    assert record["teacher"] == str(pretrained_checkpoint()) and record["images"] == 14
    assert not (out / "teacher").exists() and (out / "best.pt").exists()
    with open(out / "pseudo.csv", newline="") as f:
        assert {Path(r["path"]).stem for r in csv.DictReader(f)}.isdisjoint(names[:6])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert train_main([*common, "--unlabelled", str(pool), "--teacher", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert train_main([*common, "--teacher", str(bad), "--out", str(tmp_path / "c")]) == 2  # --teacher needs --unlabelled


def _ranking_script():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "confidence_ranking.py"
    spec = importlib.util.spec_from_file_location("confidence_ranking", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_ranking_script_scores_how_well_confidence_separates_right_from_wrong():
    ranking = _ranking_script()
    assert ranking.auroc([0.9, 0.8, 0.3, 0.2], [True, True, False, False]) == 1.0
    assert ranking.auroc([0.9, 0.8, 0.3, 0.2], [False, False, True, True]) == 0.0
    assert ranking.auroc([0.5, 0.5], [True, False]) == 0.5  # a tie counts half
    assert ranking.auroc([0.9], [True]) != ranking.auroc([0.9], [True])  # nan: nothing wrong to rank against
    scores = [1 - k / 200 for k in range(60)]
    right = [k != 40 for k in range(60)]  # one wrong among the first 60: 59/60 is 98.3%, 40/41 is 97.6%
    assert self_training.confidence_bound(zip(scores, right)) == pytest.approx(scores[59])  # what the script prints
    assert self_training.confidence_bound(zip(scores[:10], right[:10])) is None  # under 20 readings


@pytest.mark.slow
def test_without_a_measured_bound_the_student_learns_from_the_labels_alone(tmp_path, capsys):
    from crnn_captcha.read.shipped import pretrained_checkpoint
    from crnn_captcha.train import main as train_main

    labelled, val, pool = tmp_path / "train", tmp_path / "val", tmp_path / "pool"
    make_folder(labelled, 24, seed=1)
    make_folder(val, 6, seed=2)  # too few to measure a bound on
    make_folder(pool, 12, seed=3)
    out = tmp_path / "run"
    assert train_main(["--train", str(labelled), "--val", str(val), "--unlabelled", str(pool), "--teacher",
                       str(pretrained_checkpoint()), "--out", str(out), "--epochs", "1", "--no-progress"]) == 0
    record = json.loads((out / "self_training.json").read_text())
    assert record["threshold"] is None and record["pseudo_labels"] == 0 and record["images"] == 12
    assert "no reading of the unlabelled images is used" in capsys.readouterr().err
    with open(out / "student_train.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 24
    assert (out / "best.pt").exists()
