"""The labelling loop: every so many new labels, fine-tune on the labels so far in a background
process, then propose anew with the model it made.

    loop = Retrainer(book, work="runs/labelling", start=None, every=50)
    loop.step()          # call after each answer: starts a retraining when enough new labels are in
    loop.status()        # one line for the page: what the training is doing, or what it gave
    loop.wait()          # (scripts) until a running retraining ends; its proposals are then in the book

A retraining runs ``python -m crnn_captcha.train`` on the labels so far, less those that check it (the
book's random checks where it has :data:`MIN_CHECKS` of them, else every tenth label; or a validation
manifest of one's own), starting from the last retraining's model (the first from ``start``: a
checkpoint, or the shipped general reader), into ``work/retrain_N``. With ``unlabelled``, each
retraining after the first also learns from the images nobody has answered yet: the last retraining's
model reads them, and its confident readings (at most :data:`MAX_PSEUDO`) join the labels (``train
--unlabelled FOLDER --teacher MODEL``). Training runs in its own process, so the page stays quick and a
crash of a retraining harms no label. When it ends well, the book's unanswered images get the new
model's proposals, least confident first.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ..data.labels import Sample, write_manifest
from ..errors import OptionError
from .book import Item, LabelBook

#: The least number of labels a retraining trains on (below it, a validation set means nothing).
MIN_LABELS = 20
#: Every this-many labels go to the retraining's validation set, where the book has too few checks.
VAL_EVERY = 10
#: The fewest random checks (see :class:`~.book.LabelBook`) that make a validation set: below it, every
#: tenth label does.
MIN_CHECKS = 5
#: The most readings of unanswered images one retraining learns from (``train --max-pseudo``): a
#: retraining's time grows with the images it trains on, and this holds a folder of tens of thousands
#: to the time of the folders measured (none of their retrainings, on 3,500-3,750 captchas, kept more
#: than 3,600, so the cap changed none of them).
MAX_PSEUDO = 4000


class Retrainer:
    """Fine-tuning in the background for a :class:`LabelBook` (see the module notes).

    Args:
        book: the labels.
        work: a folder for the retrainings' runs and manifests.
        start: the first retraining's start (a checkpoint path; None: the shipped general reader).
        every: new labels between retrainings (0: never by itself; :meth:`start_round` still starts one).
        propose_with: a checkpoint path -> a ``propose`` function for the book.
        train_args: more options for ``train`` (e.g. ``["--threads", "1"]``).
        val: a validation manifest for every retraining, instead of the book's checks or every tenth label.
        unlabelled: let retrainings after the first learn from the unanswered images too (see the module
            notes; the default, as on the labelling page).
    """

    def __init__(self, book: LabelBook, work: str | Path, start: str | None, every: int,
                 propose_with: Callable[[str], Callable[[list[Path]], list[Item]]], train_args: list[str] = (),
                 val: str | None = None, unlabelled: bool = True):
        if every < 0:
            raise OptionError(f"--retrain-every must be 0 (off) or more, got {every}")
        self.book, self.work, self.every = book, Path(work), every
        self.model, self.propose_with, self.train_args, self.val = start, propose_with, list(train_args), val
        self.unlabelled = unlabelled
        self.retraining, self.trained_on, self.process, self.note = 0, 0, None, ""
        self.retrainings: list[dict] = []  # per finished retraining: labels, seconds, val accuracy, its model

    def step(self) -> None:
        """Look after the retrainings: take a finished one's model, start the next where it is due."""
        if self.process is not None and self.process.poll() is not None:
            self._finish()
        if self.process is None and self.every and len(self.book.labels) - self.trained_on >= self.every:
            self.start_round()

    def start_round(self) -> bool:
        """Start a retraining on the labels so far; False where one runs already or there are too few."""
        labels = sorted(self.book.labels.items())
        if self.process is not None or len(labels) < MIN_LABELS:
            return False
        self.retraining += 1
        out = self.work / f"retrain_{self.retraining}"
        out.mkdir(parents=True, exist_ok=True)
        rows = [Sample(self.book.folder / name, label) for name, label in labels]
        train, val = self._split(rows)
        write_manifest(out / "train.csv", train)
        if not self.val:
            write_manifest(out / "val.csv", val)
        command = [sys.executable, "-m", "crnn_captcha.train", "--train", str(out / "train.csv"), "--val",
                   self.val or str(out / "val.csv"), "--out", str(out / "run"), "--no-progress", *self.train_args]
        self_training = self.unlabelled and bool(self.retrainings)  # a model of these captchas reads the rest
        if self_training:
            command += ["--unlabelled", str(self.book.folder), "--teacher", self.model, "--max-pseudo", str(MAX_PSEUDO)]
        elif self.model:
            command += ["--init", self.model]
        self.log = (out / "train.log").open("w")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        self.started, self.trained_on, self.out = time.monotonic(), len(labels), out
        self.note = (f"retraining {self.retraining} on {len(train)} labels" + (f" ({len(val)} to check it)" if val else "")
                     + (" and the last model's confident readings of the rest" if self_training else ""))
        return True

    def _split(self, rows: list[Sample]) -> tuple[list[Sample], list[Sample]]:
        """(train, val) of the labels: val from the book's checks where there are enough, else every tenth."""
        if self.val:
            return rows, []
        checked = set(self.book.checked)
        if len(checked) >= MIN_CHECKS:
            return [r for r in rows if r.path.name not in checked], [r for r in rows if r.path.name in checked]
        return [r for k, r in enumerate(rows) if k % VAL_EVERY], rows[::VAL_EVERY]

    def wait(self) -> None:
        """Until the running retraining (if any) ends and its proposals are in the book."""
        if self.process is not None:
            self.process.wait()
            self._finish()

    def close(self) -> None:
        """Stop a running retraining (its labels are safe in the manifest; its run is left unfinished)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
            self.log.close()

    def status(self) -> str:
        """One line for the page."""
        if self.process is None:
            return self.note
        epochs = _epochs(self.out / "run" / "metrics.jsonl")
        return f"{self.note}: epoch {epochs[-1]['epoch']}, val accuracy {epochs[-1]['val_accuracy']:.0%}" if epochs \
            else f"{self.note}: starting"

    def _finish(self) -> None:
        process, self.process = self.process, None
        self.log.close()
        seconds = time.monotonic() - self.started
        best = self.out / "run" / "best.pt"
        if process.returncode != 0 or not best.exists():
            tail = (self.out / "train.log").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            self.note = f"retraining {self.retraining} failed ({tail[0]}); the proposals stay as they were"
            return
        epochs = _epochs(self.out / "run" / "metrics.jsonl")
        accuracy = max((e["val_accuracy"] for e in epochs), default=0.0)
        self.model = str(best)
        self.book.repropose(self.propose_with(self.model))
        self.retrainings.append({"retraining": self.retraining, "labels": self.trained_on, "seconds": round(seconds, 1),
                            "val_accuracy": accuracy, "model": self.model})
        self.note = (f"retraining {self.retraining}: trained on {self.trained_on} labels{_readings(self.out)} in "
                     f"{seconds / 60:.1f} min, val accuracy {accuracy:.0%}; proposals renewed")


def _readings(out: Path) -> str:
    """What a retraining took from the unanswered images, for its note ('' where it did not try)."""
    try:
        record = json.loads((out / "run" / "self_training.json").read_text())
    except (OSError, ValueError):
        return ""
    if record.get("threshold") is None:
        return " (no readings of the rest: their bound could not be measured yet)"
    return f" and {record['pseudo_labels']:,} confident readings of the rest"


def _epochs(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []
