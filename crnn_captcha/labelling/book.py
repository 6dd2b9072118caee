"""The labels of one folder of captchas, given one answer at a time.

    book = LabelBook("captchas/", reader=CaptchaReader("runs/mine/best.pt"))
    item = book.queue(1)[0]                 # the next image and the model's proposal for it
    book.answer(item.name, item.proposal)   # accepted as proposed (or another label: typed)
    book.skip(item.name); book.unreadable(name); book.undo()

Every answer is appended to a journal (``<manifest>.log``, one JSON line each, flushed to disk)
and the manifest (``path,label``, the labelled images only) is rewritten in place atomically, so a
crash, a closed tab or a killed process loses nothing already answered, and a new LabelBook on
the same folder and manifest goes on where the last one stopped. The images are only read: never
moved, renamed or written. One process at a time holds the manifest (a lock beside it).

The order is the model's least confident proposals first by default: where the model is unsure is
where a person's answer teaches it most, and where a proposal most needs checking. With ``checks``,
every so many images of that order is instead one drawn at random from those not yet answered: a
check. The least confident images say little about how well the model reads the rest; checks do,
and they are what the labelling loop validates its retrainings on.
"""
from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..data.labels import IMAGE_SUFFIXES, Sample, is_hidden, label_problem, read_manifest, write_manifest
from ..errors import LabelError, OptionError
from ..files import atomic_write, hold_lock

ORDERS = ("confidence", "name", "random")
#: The running estimate of the model's accuracy: the share of the last this-many proposals that were
#: accepted unchanged.
RECENT = 50
#: A rate of checks to suggest (``crnn-captcha label --checks 5``): every fifth image of the confidence
#: order drawn at random. Not the default: on a railway's captchas it needed more typed labels.
CHECK_EVERY = 5
#: Labels per minute are counted over the answers of the last this-many seconds.
PACE_SECONDS = 300.0
KINDS = ("accepted", "typed", "skipped", "unreadable")


@dataclass
class Item:
    """One image to label: its file name in the folder, the model's proposal and the confidence of
    each of its characters (empty where there is no model), or why the image cannot be read."""

    name: str
    proposal: str = ""
    confidence: float = 0.0
    char_confidences: tuple[float, ...] = ()
    error: str | None = None


class LabelBook:
    """The labels of the images in ``folder`` (see the module notes).

    Args:
        folder: the captchas, read only (its image files, not its subfolders).
        manifest: where the labels go (default ``folder/labels.csv``).
        propose: image paths -> one :class:`Item` each (the model's proposals), or None for none.
        order: "confidence" (least confident first), "name" or "random".
        seed: for "random", and for the checks' draw.
        checks: every this-many-th image of the "confidence" order is a random one, a check (0: none;
            e.g. :data:`CHECK_EVERY`).

    Raises:
        OptionError: no images in the folder, a manifest of another folder, a bad order or checks.
        LabelError: a manifest or journal that cannot be read.
        CaptchaError: another process labels with this manifest.
    """

    def __init__(self, folder: str | Path, manifest: str | Path | None = None,
                 propose: Callable[[list[Path]], list[Item]] | None = None, order: str = "confidence", seed: int = 0,
                 checks: int = 0):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise OptionError(f"{self.folder}: no such folder of captchas")
        if order not in ORDERS:
            raise OptionError(f"--order must be one of {', '.join(ORDERS)}, got {order!r}")
        if not isinstance(checks, int) or checks < 0:
            raise OptionError(f"checks must be 0 (none) or a positive whole number, got {checks!r}")
        self.order_kind, self.seed, self.check_every = order, seed, checks
        self.checks: set[str] = set()  # the images of the present order drawn at random
        self.manifest = Path(manifest) if manifest is not None else self.folder / "labels.csv"
        self.journal = self.manifest.with_name(self.manifest.name + ".log")
        self.names = sorted(p.name for p in self.folder.iterdir()
                            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not is_hidden(p))
        if not self.names:
            raise OptionError(f"{self.folder}: no images to label ({', '.join(IMAGE_SUFFIXES)})")
        self._lock = hold_lock(
            self.manifest.with_name(f".{self.manifest.name}.lock"), str(self.manifest),
            lambda holder: OptionError(f"{self.manifest} is being labelled by another process ({holder}); "
                                       "use that page, or another --manifest"),
            "two pages on it at once could each overwrite the other's answers")
        self.answers: list[dict[str, Any]] = []  # in order, undone ones removed
        self._replay()
        self.skipped = [a["name"] for a in self.answers if a["kind"] == "skipped"]  # shown again after the rest
        self.items = {name: Item(name) for name in self.names}
        self.failed: dict[str, str] = {}  # images that cannot be read, and why: listed, never shown
        self.repropose(propose)

    # ----- state -----------------------------------------------------------------------------------
    @property
    def done(self) -> dict[str, dict[str, Any]]:
        """Each answered image's last answer (labelled or marked unreadable)."""
        return {a["name"]: a for a in self.answers if a["kind"] != "skipped"}

    @property
    def labels(self) -> dict[str, str]:
        return {name: a["label"] for name, a in self.done.items() if a["kind"] in ("accepted", "typed")}

    @property
    def checked(self) -> list[str]:
        """The labelled images that were random checks when they were answered."""
        return [name for name, a in self.done.items() if a.get("check") and a["kind"] in ("accepted", "typed")]

    def queue(self, n: int = 6) -> list[Item]:
        """The next ``n`` images to label, in order; skipped ones come again after all the others."""
        done = self.done
        fresh = [name for name in self.order if name not in done and name not in self.skipped and name not in self.failed]
        again = [name for name in self.skipped if name not in done]
        return [self.items[name] for name in (fresh + again)[:n]]

    def figures(self) -> dict[str, Any]:
        """Counts, the pace, and the share of recent proposals accepted unchanged."""
        labels, now = self.labels, time.time()
        given = [a for a in self.answers if a["kind"] in ("accepted", "typed")]
        proposed = [a for a in given if a.get("proposal")][-RECENT:]
        checks = [a for a in given if a.get("check") and a.get("proposal")][-RECENT:]
        recent = [a for a in given if now - a["time"] <= PACE_SECONDS]
        span = max(60.0, now - recent[0]["time"]) if recent else 60.0
        unreadable = sum(a["kind"] == "unreadable" for a in self.done.values())
        return {
            "images": len(self.names), "labelled": len(labels), "unreadable": unreadable,
            "left": len(self.names) - len(self.done) - len(self.failed),
            "per_minute": round(len(recent) * 60.0 / span, 1),
            "accepted_share": round(sum(a["kind"] == "accepted" for a in proposed) / len(proposed), 3) if proposed else None,
            "accepted_of": len(proposed),
            "checks_right": sum(a["kind"] == "accepted" for a in checks), "checks_of": len(checks),
            "cannot_read": sorted(self.failed),
        }

    # ----- answers ---------------------------------------------------------------------------------
    def answer(self, name: str, label: str) -> dict[str, Any]:
        """Label ``name``: "accepted" where ``label`` is the proposal, else "typed".

        Raises:
            LabelError: an unknown image, or a label that cannot be a file's label.
        """
        label = label.strip()
        problem = label_problem(label, None, None) if label else "an empty label (skip it, or mark it unreadable)"
        if problem:
            raise LabelError(f"{name}: {problem}")
        proposal = self._known(name).proposal
        return self._record(name, "accepted" if proposal and label == proposal else "typed", label)

    def skip(self, name: str) -> dict[str, Any]:
        """Leave ``name`` for later: it comes again after the others."""
        return self._record(name, "skipped", "")

    def unreadable(self, name: str) -> dict[str, Any]:
        """Mark ``name`` as unreadable: never shown again, never in the manifest."""
        return self._record(name, "unreadable", "")

    def undo(self) -> dict[str, Any] | None:
        """Take back the last answer (its image comes first again); None when there is none."""
        if not self.answers:
            return None
        last = self.answers.pop()
        self._append({"undo": True, "name": last["name"], "time": time.time()})
        if last["kind"] == "skipped" and last["name"] in self.skipped:
            self.skipped.remove(last["name"])
        self.order.remove(last["name"])
        self.order.insert(0, last["name"])
        self._write_manifest()
        return last

    def repropose(self, propose: Callable[[list[Path]], list[Item]] | None) -> None:
        """Proposals (from ``propose``: a model, a newly trained one) for the images not yet answered,
        and the order they come in by them."""
        if propose is not None:
            todo = [n for n in self.names if n not in self.done and n not in self.failed]
            for item in propose([self.folder / n for n in todo]):
                self.items[item.name] = item
            self.failed = {n: i.error for n, i in self.items.items() if i.error}
        self.order = self._ordered()

    # ----- inside ----------------------------------------------------------------------------------
    def _known(self, name: str) -> Item:
        if name not in self.items or name in self.failed:
            raise LabelError(f"{name}: not an image of {self.folder} to label")
        return self.items[name]

    def _record(self, name: str, kind: str, label: str) -> dict[str, Any]:
        item = self._known(name)
        entry = {"name": name, "kind": kind, "label": label, "proposal": item.proposal, "time": time.time()}
        if name in self.checks:
            entry["check"] = True
        self._append(entry)
        self.answers.append(entry)
        if kind == "skipped":
            self.skipped.append(name)
        else:
            self._write_manifest()
        return entry

    def _append(self, entry: dict[str, Any]) -> None:
        with self.journal.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _write_manifest(self) -> None:
        rows = [Sample(self.folder / name, label) for name, label in sorted(self.labels.items())]
        atomic_write(self.manifest, lambda tmp: write_manifest(tmp, rows))  # beside it: the same relative paths

    def _replay(self) -> None:
        """The answers of earlier runs: from the journal, or from a manifest written without one."""
        if self.journal.exists():
            lines = self.journal.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, 1):
                try:
                    entry = json.loads(line)
                    name = entry["name"]
                except (ValueError, KeyError, TypeError):
                    if number == len(lines):
                        continue  # a last line cut short by a crash: that answer was never confirmed
                    raise LabelError(f"{self.journal}: line {number} is not an answer this tool wrote") from None
                if entry.get("undo"):
                    for k in range(len(self.answers) - 1, -1, -1):
                        if self.answers[k]["name"] == name:
                            del self.answers[k]
                            break
                elif name in self.names:
                    self.answers.append(entry)
        elif self.manifest.exists():
            for s in read_manifest(self.manifest, length=None):
                if s.path.parent.resolve() != self.folder.resolve() or s.path.name not in self.names:
                    raise OptionError(f"{self.manifest} lists {s.path}, which is not an image of {self.folder}: a "
                                      "manifest of another folder; give this folder its own --manifest")
                self.answers.append({"name": s.path.name, "kind": "typed", "label": s.label, "proposal": "",
                                     "time": 0.0})

    def _ordered(self) -> list[str]:
        self.checks = set()
        if self.order_kind == "name":
            return list(self.names)
        if self.order_kind == "random":
            names = list(self.names)
            random.Random(self.seed).shuffle(names)
            return names
        ranked = sorted(self.names, key=lambda n: (self.items[n].confidence if self.items[n].proposal else 0.0, n))
        return self._with_checks(ranked) if self.check_every else ranked

    def _with_checks(self, ranked: list[str]) -> list[str]:
        """``ranked`` with every ``check_every``-th image not yet answered drawn at random from those left."""
        done = self.done
        todo = [n for n in ranked if n not in done and n not in self.failed]
        drawn = list(todo)
        random.Random(f"{self.seed}:{len(self.answers)}").shuffle(drawn)  # a new draw after each retraining
        ranked_left, drawn_left, order = iter(todo), iter(drawn), []
        placed: set[str] = set()
        while len(order) < len(todo):
            check = len(order) % self.check_every == self.check_every - 1
            name = next(n for n in (drawn_left if check else ranked_left) if n not in placed)
            order.append(name)
            placed.add(name)
            if check:
                self.checks.add(name)
        return order + [n for n in ranked if n not in placed]


def reader_proposals(reader, batch_size: int = 64) -> Callable[[list[Path]], list[Item]]:
    """A ``propose`` for :class:`LabelBook` from a :class:`~crnn_captcha.CaptchaReader`: its reading of
    each image (an image it cannot read is marked with why)."""

    def propose(paths: list[Path]) -> list[Item]:
        read = reader.predict_batch(paths, batch_size=batch_size, errors="mark")
        return [Item(path.name, p.text, p.confidence, tuple(p.char_confidences), p.error) for path, p in zip(paths, read)]

    return propose
