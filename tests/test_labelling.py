"""The labelling engine: answers on disk at once, resumable, ordered by the model's doubt; the loop."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crnn_captcha.errors import LabelError, OptionError
from crnn_captcha.labelling.book import Item, LabelBook
from crnn_captcha.labelling.loop import MAX_PSEUDO
from conftest import ROOT
from synth import render

TEXTS = ["2b4c6", "3d5e7", "4f6g8", "5m7n2", "6p8w3", "7x2y4"]


def folder_of(tmp_path: Path, n: int = 6) -> Path:
    folder = tmp_path / "caps"
    folder.mkdir()
    for i in range(n):
        render(TEXTS[i % len(TEXTS)], seed=i).save(folder / f"c{i}.png")
    return folder


def fake_propose(paths):
    """Proposals with made-up confidences: c3 least sure, then c1, ..."""
    sure = {"c0.png": 0.9, "c1.png": 0.2, "c2.png": 0.8, "c3.png": 0.1, "c4.png": 0.7, "c5.png": 0.6}
    return [Item(p.name, "abc", sure.get(p.name, 0.5), (sure.get(p.name, 0.5),) * 3) for p in paths]


def rows(path: Path) -> dict[str, str]:
    with path.open(newline="") as f:
        return {r["path"]: r["label"] for r in csv.DictReader(f)}


def test_least_confident_first_answers_on_disk_and_resumed(tmp_path):
    folder = folder_of(tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    book = LabelBook(folder, propose=fake_propose)
    assert [i.name for i in book.queue(6)] == ["c3.png", "c1.png", "c5.png", "c4.png", "c2.png", "c0.png"]
    assert book.answer("c3.png", "abc")["kind"] == "accepted"
    assert book.answer("c1.png", "xyz")["kind"] == "typed"
    book.skip("c5.png")
    book.unreadable("c4.png")
    assert rows(folder / "labels.csv") == {"c3.png": "abc", "c1.png": "xyz"}  # written at once
    assert [i.name for i in book.queue(6)] == ["c2.png", "c0.png", "c5.png"]  # the skipped one after the rest
    figures = book.figures()
    assert (figures["labelled"], figures["unreadable"], figures["left"], figures["accepted_share"]) == (2, 1, 3, 0.5)
    book._lock.close()  # as when the process ends
    again = LabelBook(folder, propose=fake_propose)  # a new process goes on where this one stopped
    assert again.labels == {"c3.png": "abc", "c1.png": "xyz"}
    assert [i.name for i in again.queue(6)] == ["c2.png", "c0.png", "c5.png"]
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in before} == before  # images untouched


def test_undo_takes_the_last_answer_back_everywhere(tmp_path):
    folder = folder_of(tmp_path)
    book = LabelBook(folder, propose=fake_propose)
    book.answer("c3.png", "abc")
    book.answer("c1.png", "xyz")
    assert book.undo()["name"] == "c1.png"
    assert rows(folder / "labels.csv") == {"c3.png": "abc"} and book.queue(1)[0].name == "c1.png"
    book._lock.close()
    assert LabelBook(folder, propose=fake_propose).labels == {"c3.png": "abc"}  # the undo is in the journal


def test_a_crash_mid_line_loses_only_that_answer(tmp_path):
    folder = folder_of(tmp_path)
    book = LabelBook(folder, propose=fake_propose)
    book.answer("c3.png", "abc")
    book._lock.close()
    with (folder / "labels.csv.log").open("a") as f:
        f.write('{"name": "c1.png", "ki')  # cut short
    assert LabelBook(folder, propose=fake_propose).labels == {"c3.png": "abc"}


def test_bad_inputs_are_one_line_and_lose_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OptionError, match="no images to label"):
        LabelBook(empty)
    folder = folder_of(tmp_path)
    other = tmp_path / "other.csv"
    other.write_text(f"path,label\n{tmp_path / 'elsewhere' / 'x.png'},abc\n")
    with pytest.raises(OptionError, match="a manifest of another folder"):
        LabelBook(folder, manifest=other)
    book = LabelBook(folder, propose=fake_propose)
    with pytest.raises(OptionError, match="being labelled by another process"):
        LabelBook(folder, propose=fake_propose)  # a second page on the same manifest
    with pytest.raises(LabelError, match="not an image of"):
        book.answer("../secret.png", "abc")
    with pytest.raises(LabelError, match="control characters"):
        book.answer("c0.png", "ab\tc")
    book.answer("c0.png", "abc")
    assert rows(folder / "labels.csv") == {"c0.png": "abc"}


def ranked_propose(paths):
    """Proposals whose confidence grows with the image's number: c0 least sure."""
    return [Item(p.name, "abc", int(p.stem[1:]) / 100, (0.5,) * 3) for p in paths]


def test_random_checks_take_every_fifth_place_and_validate_the_retrainings(tmp_path):
    from crnn_captcha.data.labels import Sample
    from crnn_captcha.labelling.loop import MIN_CHECKS, Retrainer

    folder = folder_of(tmp_path, 30)
    book = LabelBook(folder, propose=ranked_propose, checks=5)
    order = [i.name for i in book.queue(30)]
    assert sorted(order) == sorted(f"c{k}.png" for k in range(30))
    assert {order[k] for k in range(4, 30, 5)} == book.checks and len(book.checks) == 6
    ranked = [n for n in order if n not in book.checks]
    assert ranked == sorted(ranked, key=lambda n: int(n[1:-4]))  # the others least confident first
    assert order != sorted(order, key=lambda n: int(n[1:-4]))  # the checks are drawn, not next by rank
    for k, name in enumerate(order[:10]):
        book.answer(name, "abc" if k % 2 else "xyz")
    assert sorted(book.checked) == sorted(order[k] for k in (4, 9))
    assert (book.figures()["checks_of"], book.figures()["checks_right"]) == (2, 1)  # the tenth taken, the fifth typed over
    book._lock.close()
    again = LabelBook(folder, propose=ranked_propose, checks=5)  # the checks answered are in the journal
    assert sorted(again.checked) == sorted(book.checked)
    loop = Retrainer(again, tmp_path / "runs", None, every=0, propose_with=ranked_propose)
    rows = [Sample(folder / name, label) for name, label in sorted(again.labels.items())]
    train, val = loop._split(rows)  # two checks: fewer than MIN_CHECKS, so every tenth label checks
    assert MIN_CHECKS > 2 and len(val) == 1 and len(train) == 9
    for name in [i.name for i in again.queue(20)]:  # the 20 left, in a new draw: four more checks
        again.answer(name, "abc")
    train, val = loop._split([Sample(folder / n, lab) for n, lab in sorted(again.labels.items())])
    assert {s.path.name for s in val} == set(again.checked) and len(val) == 6 and len(train) == 24
    again._lock.close()
    with pytest.raises(OptionError, match="checks must be"):
        LabelBook(folder, propose=ranked_propose, checks=-1)


def test_new_proposals_keep_the_order_asked_for(tmp_path):
    folder = folder_of(tmp_path, 12)
    book = LabelBook(folder, propose=ranked_propose, order="random", seed=3)
    before = [i.name for i in book.queue(12)]
    assert before != sorted(before, key=lambda n: int(n[1:-4]))
    book.repropose(ranked_propose)  # as after a retraining
    assert [i.name for i in book.queue(12)] == before and not book.checks


def test_unreadable_images_are_listed_never_shown(tmp_path):
    from crnn_captcha import CaptchaReader
    from crnn_captcha.labelling.book import reader_proposals

    folder = folder_of(tmp_path, 3)
    (folder / "broken.png").write_bytes(b"not an image")
    book = LabelBook(folder, propose=reader_proposals(CaptchaReader(device="cpu")))
    assert "broken.png" in book.failed and "broken.png" not in [i.name for i in book.queue(10)]
    assert book.figures()["cannot_read"] == ["broken.png"] and book.figures()["left"] == 3
    assert all(i.proposal for i in book.queue(10))  # the model's readings


@pytest.mark.slow
def test_a_training_round_renews_the_proposals(tmp_path):
    from crnn_captcha import CaptchaReader
    from crnn_captcha.labelling.book import reader_proposals
    from crnn_captcha.labelling.loop import Retrainer

    folder = folder_of(tmp_path, 26)
    book = LabelBook(folder, propose=reader_proposals(CaptchaReader(device="cpu")), order="name")
    loop = Retrainer(book, tmp_path / "retrainings", None, every=20,
                     propose_with=lambda model: reader_proposals(CaptchaReader(model, device="cpu")),
                     train_args=["--epochs", "1", "--threads", "1"])
    for _ in range(20):
        name = book.queue(1)[0].name
        book.answer(name, TEXTS[int(name[1:-4]) % len(TEXTS)])  # c<k>.png shows TEXTS[k % 6]
        loop.step()
    assert loop.process is not None and "retraining 1 on 18 labels (2 to check it)" in loop.status()
    loop.wait()
    assert loop.retrainings and loop.retrainings[0]["labels"] == 20, loop.note
    assert Path(loop.model).exists() and "proposals renewed" in loop.status()
    assert [i.name for i in book.queue(10)] and all(i.name not in book.labels for i in book.queue(10))


@pytest.mark.slow
def test_label_sim_prints_a_line_per_round_and_self_trains_after_the_first_by_default(tmp_path):
    folder = folder_of(tmp_path, 30)
    pool = tmp_path / "pool.csv"
    pool.write_text("path,label\n" + "".join(f"{folder / f'c{i}.png'},{TEXTS[i % 6]}\n" for i in range(24)))
    test = tmp_path / "test.csv"
    test.write_text("path,label\n" + "".join(f"{folder / f'c{i}.png'},{TEXTS[i % 6]}\n" for i in range(24, 30)))
    out = subprocess.run([sys.executable, "scripts/label_sim.py", "--pool", str(pool), "--val", str(test), "--test",
                          str(test), "--out", str(tmp_path / "sim"), "--budget", "22", "--every", "20", "--epochs",
                          "1", "--threads", "1", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["labelled"] for line in lines][0] == 20 and len(lines) == 2
    for line in lines:
        assert line["typed"] + line["accepted"] == line["labelled"] and 0.0 <= line["test_acc"] <= 1.0
    assert lines[-1]["typed"] == 22 or lines[-1]["labelled"] == 24
    assert not any((tmp_path / "caps").glob("*.csv"))  # nothing written beside the pool's images
    runs = tmp_path / "sim" / "retrainings"
    assert not (runs / "retrain_1" / "run" / "self_training.json").exists()  # the first learns from labels alone
    record = json.loads((runs / "retrain_2" / "run" / "self_training.json").read_text())
    assert record["teacher"] == str(runs / "retrain_1" / "run" / "best.pt") and record["images"] == 24 - lines[-1]["labelled"]
    assert record["max_pseudo"] == MAX_PSEUDO  # self-training is the default, its readings capped


def test_the_page_learns_from_the_unanswered_images_unless_told_not_to(tmp_path):
    from crnn_captcha.label import build_parser

    assert build_parser().parse_args([str(tmp_path)]).self_train
    assert not build_parser().parse_args([str(tmp_path), "--no-self-train"]).self_train
    assert build_parser().parse_args([str(tmp_path)]).checks == 0  # measured to cost typed labels: an option
    assert build_parser().parse_args([str(tmp_path), "--checks", "5"]).checks == 5


def test_a_bad_validation_manifest_is_named_before_the_page_starts(tmp_path, capsys):
    from crnn_captcha.label import main

    assert main([str(tmp_path), "--val", str(tmp_path / "none.csv"), "--no-browser"]) == 2
    assert "none.csv: no such manifest" in capsys.readouterr().err


def test_a_retrainings_note_says_what_it_took_from_the_unanswered_images(tmp_path):
    from crnn_captcha.labelling.loop import _readings

    assert _readings(tmp_path) == ""  # it did not learn from them
    (tmp_path / "run").mkdir()
    record = tmp_path / "run" / "self_training.json"
    record.write_text(json.dumps({"threshold": None, "pseudo_labels": 0}))
    assert "no readings of the rest" in _readings(tmp_path)
    record.write_text(json.dumps({"threshold": 0.97, "pseudo_labels": 1234}))
    assert _readings(tmp_path) == " and 1,234 confident readings of the rest"


def test_proposals_come_from_the_general_reader_unless_a_checkpoint_is_given():
    from crnn_captcha.label import proposer
    from crnn_captcha.read.shipped import default_checkpoint

    reader, _ = proposer(None)
    assert reader.checkpoint_path.name == "general.pt"
    reader, _ = proposer(str(default_checkpoint()))
    assert reader.checkpoint_path.name == "captcha_v2.pt"
