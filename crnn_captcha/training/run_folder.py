"""A run folder: best.pt, the resumable last.pt, metrics.jsonl and curves.png, and the rule that
says which epoch is best."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import OptionError, OverwriteError, TrainingError
from .. import files
from ..files import check_out_folder
from ..read.charset import Charset
from ..read.checkpoint import atomic_save, load_checkpoint, make_checkpoint
from ..read.images import PreprocessConfig
from .plot import line_chart
from .recipe import TrainConfig
from .runtime import log, rng_state


def hold_lock(out: Path):
    """Take the run folder's lock (see :func:`crnn_captcha.files.hold_lock`), so a second run into the
    same folder is refused instead of mixing its epochs into this one's files.

    Raises:
        TrainingError: another process holds it.
    """
    return files.hold_lock(
        out / ".lock", str(out),
        lambda holder: TrainingError(f"{out} is in use by another training run ({holder}); wait for it to end, or "
                                     "choose another --out"),
        "two runs into it at once would mix their files")


# ----- the run folder --------------------------------------------------------------------------
class Checkpointer:
    """Owns a run folder's ``best.pt``, ``last.pt`` and ``metrics.jsonl``, and the rule that says
    which epoch is best: highest val accuracy, then lowest CER, then lowest val loss (on a small val
    set many epochs tie at the top, and the later, lower-loss one is the more settled model). Early
    stopping (``patience``, off by default) counts the epochs since the best by the same rule.

    An epoch of the plain finish (the last epochs: the rate decayed, no augmentation) replaces the
    best whatever its val score: an epoch at the full rate that reads a val image or two more is
    luck more often than a better model, as held-out images showed (docs/results.md, "Recipe
    changes measured")."""

    def __init__(self, out: str | Path, writer: bool = True):
        self.out = Path(out)
        self.writer = writer  # only rank 0 writes under DDP
        self.last, self.best_path, self.metrics = self.out / "last.pt", self.out / "best.pt", self.out / "metrics.jsonl"
        self.best = {"accuracy": -1.0, "cer": math.inf, "loss": math.inf, "epoch": 0}
        self.since_best = 0
        self.history: list[dict[str, Any]] = []
        self._lock = None  # the open lock file while this process writes the folder (see hold_lock)
        #: What the run's data was, kept in last.pt (a resume compares it with the data it finds).
        self.data: dict[str, Any] = {}

    def previous(self, resume: bool) -> dict[str, Any] | None:
        """The resumable checkpoint when resuming; refuses to overwrite an earlier run otherwise. The
        writing process takes the folder's lock here, before any long work (see :func:`hold_lock`)."""
        check_out_folder(self.out)
        resumed = None
        if resume:
            if not self.last.exists():
                raise OptionError(f"--resume: {self.last} does not exist; start without --resume")
            resumed = load_checkpoint(self.last)
        elif self.last.exists():  # every process checks, so none is left waiting for the others
            raise OverwriteError(f"{self.out} already holds a run ({self.last}); pass --resume to continue it or choose another --out")
        if self.writer and self._lock is None:
            self.out.mkdir(parents=True, exist_ok=True)
            self._lock = hold_lock(self.out)
        return resumed

    def release(self) -> None:
        """Let go of the folder's lock (a later run in this process may use the folder)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def open(self, resumed: dict[str, Any] | None) -> None:
        """Take over the history of a resumed run; start metrics.jsonl afresh from it; clear the
        temporary files a killed run left behind."""
        if resumed is not None:
            self.history = list(resumed.get("history", []))
            self.best = dict(resumed.get("best", self.best))
            self.since_best = int(resumed.get("since_best", 0))
        if self.writer:
            self.out.mkdir(parents=True, exist_ok=True)
            for stale in self.out.glob(".*.pt.*.tmp"):
                stale.unlink(missing_ok=True)
            # rewritten from the checkpoint, so an epoch that was cut short is not kept
            self.metrics.write_text("".join(json.dumps(h) + "\n" for h in self.history))

    def record(self, rec: dict[str, Any], settled: bool = False) -> bool:
        """Add an epoch's record; True when it is the best so far, or a settled epoch."""
        self.history.append(rec)
        key = (rec["val_accuracy"], -rec["val_cer"], -rec["val_loss"])
        improved = settled or key > (self.best["accuracy"], -self.best["cer"], -self.best.get("loss", math.inf))
        self.since_best = 0 if improved else self.since_best + 1
        if improved:
            self.best = {"accuracy": rec["val_accuracy"], "cer": rec["val_cer"], "loss": rec["val_loss"],
                         "epoch": rec["epoch"]}
        return improved

    def save(self, model: nn.Module, charset: Charset, pre: PreprocessConfig, config: TrainConfig,
             improved: bool, state: dict[str, Any]) -> None:
        """Write best.pt (when improved), the resumable last.pt and the epoch's metrics line."""
        if not self.writer:
            return
        rec, args = self.history[-1], config.to_dict()
        if improved:
            atomic_save(make_checkpoint(model, charset, pre, rec, args), self.best_path)
        atomic_save(make_checkpoint(model, charset, pre, rec, args, best=self.best, since_best=self.since_best,
                                    history=self.history, rng=rng_state(), run_data=self.data, **state), self.last)
        with self.metrics.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    def finish(self, seconds: float) -> None:
        """curves.png and the closing line."""
        if not self.writer:
            return
        h = self.history
        if h:
            line_chart(self.out / "curves.png", [
                ("CTC loss", {"train": [r["train_loss"] for r in h], "val": [r["val_loss"] for r in h]}),
                ("val accuracy", {"full string": [r["val_accuracy"] for r in h],
                                  "character": [r["val_char_accuracy"] for r in h]}),
            ])
        # only the files that are there: a run resumed and stopped before its first epoch has no best.pt
        written = [p for p in (self.best_path, self.last, self.metrics, self.out / "curves.png") if p.exists()]
        log(f"best.pt holds epoch {self.best['epoch']} (val accuracy {self.best['accuracy']:.4f}); {seconds:.0f}s; "
            f"wrote " + ", ".join(map(str, written)))

    def interrupted(self, epoch: int, seconds: float) -> None:
        """Ctrl-C during ``epoch``: say what was kept (and keep curves.png of the whole epochs)."""
        if not self.history:
            log(f"stopped during epoch {epoch}, before any epoch finished: nothing was kept; start again "
                "(without --resume)")
            return
        log(f"stopped during epoch {epoch}; the last whole epoch, {epoch - 1}, is in {self.last}; "
            "continue with --resume")
        self.finish(seconds)


class MemoryRun:
    """A run that keeps its records in memory and writes nothing per epoch (the glyph stage, whose
    caller saves the model once at the end); the same calls as :class:`Checkpointer`. No epoch is
    marked best: the caller keeps the last."""

    last = None

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": 0}
        self.since_best = 0

    def open(self, resumed: dict[str, Any] | None) -> None:
        if resumed is not None:
            raise TrainingError("a run kept in memory cannot be resumed")

    def record(self, rec: dict[str, Any], settled: bool = False) -> bool:
        self.history.append(rec)
        return False

    def save(self, *args: Any) -> None:
        """Nothing to write each epoch."""

    def finish(self, seconds: float) -> None:
        """Nothing to write at the end either: the caller saves the model."""

    def interrupted(self, epoch: int, seconds: float) -> None:
        log(f"stopped during epoch {epoch}: nothing was kept")


def finished(ckpt: dict[str, Any], config: TrainConfig) -> str | None:
    """Why a saved run has nothing left to do, or None."""
    epoch, since_best = int(ckpt["epoch"]), int(ckpt.get("since_best", 0))
    best = ckpt.get("best", {}).get("epoch")
    if config.patience and since_best >= config.patience:
        return (f"it stopped early at epoch {epoch} (no better val score for {config.patience} epochs); best.pt holds "
                f"epoch {best}. --patience or --epochs with a larger value continues it")
    if epoch > config.epochs:
        return (f"it ran {epoch} epochs already, more than the {config.epochs} asked for; best.pt holds epoch {best}. "
                f"--epochs N (more than {epoch}) continues it")
    if epoch == config.epochs:
        return f"it ran all {config.epochs} epochs; best.pt holds epoch {best}. --epochs N (more than {epoch}) continues it"
    return None


