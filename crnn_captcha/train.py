"""Train the CRNN on whole captchas with CTC loss.

    python scripts/split_data.py --src ../shared/data/captcha_v2 --out data/splits
    python -m crnn_captcha.train --splits data/splits --out runs/base
    python -m crnn_captcha.train --train T.csv --val V.csv --out runs/mine     # any captcha family
    python -m crnn_captcha.train --out runs/base --resume                      # after a stop or a kill
    torchrun --nproc_per_node=2 -m crnn_captcha.train --splits data/splits --out runs/ddp

What is not given is chosen from the data and printed with the reason: the input height and width
(the typical aspect ratio, padded rather than squashed) and gray or colour, from the training
images; the alphabet, from the training labels; the length of training, from the number of
training images (small sets train for many passes, large ones for few). The same command trains on
CUDA (mixed precision, pinned memory) when a GPU is there and on the CPU otherwise. Under torchrun
it trains with DistributedDataParallel (gloo on the CPU, nccl on GPUs); rank 0 logs and saves.

Writes to ``--out``: ``best.pt`` (best val accuracy), ``last.pt`` (resumable; a resumed run keeps
its saved settings, and on the CPU continues exactly as if it had not stopped), ``metrics.jsonl``
(one line per epoch) and ``curves.png``. Ctrl-C stops after saying what was kept.

From Python, build a :class:`TrainConfig` (the recipe, stored in the checkpoints) and call
:func:`run`::

    from crnn_captcha.train import TrainConfig, run
    run(TrainConfig(train="data/splits/train.csv", val="data/splits/val.csv"), "runs/mine")
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset
from tqdm import tqdm

from . import cli
from .augment import Augmenter
from .charset import Charset
from .checkpoint import atomic_save, build_crnn, load_checkpoint, make_checkpoint, pretrained_checkpoint
from .ctc import ctc_loss, greedy_texts
from .data import CaptchaDataset, Sample, collate_ctc, listing, load_samples, overlap
from .errors import CaptchaWarning, LabelError, OptionError, OverwriteError, TrainingError
from .geometry import choose_input
from .images import PreprocessConfig
from .metrics import score, summarize
from .model import CRNN, CRNNConfig, count_parameters
from .plot import line_chart
from .transfer import source_architecture, start_from
from .runtime import Dist, default_threads, default_workers, log, rng_state, seed_everything, set_rng_state

__all__ = ["TrainConfig", "run", "main", "TrainingError"]

#: An epoch draws at least this many images (small sets are passed over several times), so that
#: validation and checkpoints come at a steady pace whatever the set's size.
MIN_EPOCH_SAMPLES = 512
#: Backbone feature rows per frame: fixed, so the LSTM's input does not depend on the input height and
#: a (pretrained) model carries over between heights.
FEATURE_ROWS = 2
#: The default batch on a GPU, from ``GPU_BATCH_FROM`` training images; below that, 16 as on the
#: CPU. A larger batch keeps a GPU busier but, with the rate scaled to it, read less from few
#: images: at 250 ImageCaptcha 0-9a-z images batch 64 read 89.3%, 88.6% and 87.8% (seeds 0-2)
#: against 91.4%, 89.8% and 90.5% at 16; captcha v2's 750 98.4% against 99.2%; at 1,000 it was
#: level (97.8% / 97.7%) or ahead (62 symbols: 83.3% / 81.9%).
GPU_BATCH, GPU_BATCH_FROM = 64, 1000
#: Settings a resumed run may change: how long it goes on.
RESUMABLE_CHANGES = ("epochs", "patience")


def auto_steps(n: int, pretrained: bool = False) -> int:
    """Optimizer steps for ``n`` training images when --epochs is not given: a fixed part that
    gets a small set out of CTC's all-blank start (a pretrained start has none to leave), plus a
    part that grows with the set."""
    return int(min(60_000, (2000 if pretrained else 4000) + 4 * n))


def auto_lr(pretrained: bool) -> float:
    """Learning rate at batch 16 when --lr is not given. A pretrained start takes four times the
    rate from scratch: at 250 ImageCaptcha 0-9a-z images it read 90.1% and 89.6% of the test set
    (seeds 0 and 1) at 4e-3 against 87.5% and 87.7% at 2e-3 and 82.2% at 1e-3 (the 62-symbol family:
    61.5% against 58.5% and 53.7%). From scratch it stays 1e-3, the rate all the scratch results
    were measured at."""
    return 4e-3 if pretrained else 1e-3


@dataclass
class TrainConfig:
    """The recipe of a training run: its data, input, model and optimisation. Stored in every
    checkpoint of the run (as ``train_args``), with every "auto" value resolved, so a resumed run
    continues with the same recipe. ``None`` means "choose from the data".

    Attributes:
        train, val: manifest (CSV/TSV/JSON lines) or folder of labelled images.
        skip_invalid: leave out files whose names are not valid labels, with a warning.
        label_from, label_regex: for folders, how a file name gives its label (stem, prefix, regex).
        charset: the characters to read (default: those of the train labels).
        height, width, color, resize: the model's input (see :mod:`crnn_captcha.geometry`);
            color is "auto", "rgb" or "gray"; resize "pad" (keep the aspect ratio) or "stretch";
            max_aspect_error: how far an image's width/height ratio may stray from the typical one
            before it is refused as the wrong shape (None: a factor of 3, or more where a stretched
            input was widened for long labels); x_scale: for "pad", how many times wider than its
            ratio the text is drawn (None: as chosen with the width, so the typical image fills an
            input widened for long labels; 1 where --width is given).
        aug_strength: scale of the augmentation (0: none); strike_line: add random strike lines.
        mix_prob: share of items spliced from two captchas where their characters meet (0: off);
            new strings keep a small set from being memorised (250 ImageCaptcha images: 0% without,
            65% with 0.5).
        plain_finish: the share of the last epochs trained on the images as they are, without
            augmentation or splicing (0: none): the model settles on the real images after
            learning from the varied ones.
        init: where the weights start: "pretrained" (the shipped pretrained model), "scratch"
            (random), a path to a checkpoint (a whole CRNN, or a glyph backbone), or "auto"
            (pretrained when it is installed, else scratch).
        channels, hidden, lstm_layers, dropout: the model (see :class:`CRNNConfig`); None: those of
            the start model, or the defaults from scratch.
        epochs: passes over the training set (None: from its size, each pass at least
            ``MIN_EPOCH_SAMPLES`` images); batch_size (None: 16 on the CPU; on a GPU 64 from
            ``GPU_BATCH_FROM`` training images, where small batches leave it idle, else 16); lr
            (None: :func:`auto_lr` at batch 16, times the square root of the batch's growth),
            weight_decay: AdamW, lr held for half the steps, then cosine-decayed; patience: stop
            after this many epochs without a better val score (0, the default: never, as the
            schedule is made to be run to its end); seed: the random
            seed (CPU runs are repeatable, resumed ones too).
    """

    train: str = ""
    val: str = ""
    skip_invalid: bool = False
    label_from: str = "stem"
    label_regex: str | None = None
    charset: str | None = None
    height: int | None = None
    width: int | None = None
    color: str = "auto"
    resize: str = "pad"
    max_aspect_error: float | None = None
    x_scale: float | None = None
    aug_strength: float = 1.0
    strike_line: bool = True
    mix_prob: float = 0.5
    plain_finish: float = 0.1
    init: str = "auto"
    channels: tuple[int, ...] | None = None
    hidden: int | None = None
    lstm_layers: int | None = None
    dropout: float = CRNNConfig.dropout
    epochs: int | None = None
    epoch_samples: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 1e-2
    patience: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.channels is not None:
            self.channels = tuple(int(c) for c in self.channels)
        self.train, self.val = str(self.train), str(self.val)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels) if self.channels is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """The config stored in a checkpoint (older checkpoints stored the command's arguments)."""
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in d.items() if k in known and v is not None}
        if "no_strike_line" in d:
            kept["strike_line"] = not d["no_strike_line"]
        if d.get("splits") and not d.get("train"):
            kept["train"], kept["val"] = (str(Path(d["splits"]) / f"{n}.csv") for n in ("train", "val"))
        if "no_strike_line" in d and "resize" not in d:  # before the input was chosen from the data
            kept.update(resize="stretch", color="gray", epoch_samples=None)
        if "init" not in d:  # before --init: from scratch, or from a glyph backbone
            kept["init"] = d.get("pretrained_backbone") or "scratch"
        if "plain_finish" not in d:  # before the plain finish: augmented to the end
            kept["plain_finish"] = 0.0
        if "x_scale" not in d:  # before widened inputs stretched the text: padded
            kept["x_scale"] = 1.0
        return cls(**kept)


# ----- choosing what was left to the data --------------------------------------------------------
def resolve(config: TrainConfig, train: list[Sample], val: list[Sample], cuda: bool) -> tuple[TrainConfig, list[str]]:
    """``config`` with every "auto" value chosen, and one log line per choice."""
    notes = []
    if config.charset is not None:
        check_labels(train, _field_charset(config.charset),
                     f"--charset {config.charset!r} lacks characters of the training labels", OptionError)
    longest = max(len(s.label) for s in train + val)
    changes: dict[str, Any] = {}
    if config.height is None or config.width is None or config.color == "auto":
        choice = choose_input([s.path for s in train], longest, seed=config.seed)
        notes.append(f"input: {choice.why}")
        height = config.height or choice.height
        width = config.width or (choice.width if config.height is None else
                                 4 * max(1, round(choice.width * height / choice.height / 4)))
        color = {1: "gray", 3: "rgb"}[choice.channels] if config.color == "auto" else config.color
        changes.update(height=height, width=width, color=color)
        if config.x_scale is None:  # a width chosen wider than the ratio: the text is stretched to fill it
            changes["x_scale"] = choice.x_scale if config.width is None and config.resize == "pad" else 1.0
        if config.max_aspect_error is None:  # a widened input still takes the typical image
            x_scale = changes.get("x_scale", config.x_scale)
            changes["max_aspect_error"] = round(3.0 * max(1.0, width / (height * choice.aspect * x_scale)), 2)
    changes.setdefault("x_scale", config.x_scale or 1.0)
    if config.max_aspect_error is None and "max_aspect_error" not in changes:
        changes["max_aspect_error"] = 3.0
    changes.update(_architecture(config, notes))
    n = len(train)
    if config.batch_size is None:
        few_for_gpu = cuda and n < GPU_BATCH_FROM
        changes["batch_size"] = GPU_BATCH if cuda and not few_for_gpu else 16
        if few_for_gpu:
            notes.append(f"batch 16 on the GPU too: {n} training images, fewer than {GPU_BATCH_FROM:,} "
                         f"(batch {GPU_BATCH} read less from few images; --batch-size sets it)")
    batch = changes.get("batch_size", config.batch_size)
    pretrained = changes["init"] != "scratch"
    if config.lr is None:
        changes["lr"] = round(auto_lr(pretrained) * math.sqrt(batch / 16), 6)
    if config.epochs is None:
        epoch_samples = max(n, MIN_EPOCH_SAMPLES)
        epochs = math.ceil(auto_steps(n, pretrained) / max(epoch_samples // batch, 1))
        changes.update(epochs=epochs, epoch_samples=epoch_samples)
        notes.append(f"length: {epochs} epochs of {epoch_samples} images ({epochs * (epoch_samples // batch):,} steps "
                     f"of {batch}) for {n} training images")
    out = replace(config, **changes)
    check_config(out, longest)
    stretched = f" (text {out.x_scale:g}x across)" if out.x_scale != 1 else ""
    notes.append(f"input {out.width}x{out.height} {out.color}, resize {out.resize}{stretched}; batch {out.batch_size}, "
                 f"lr {out.lr:g}, {out.epochs} epochs, patience {out.patience or 'off'}")
    return out, notes


def _architecture(config: TrainConfig, notes: list[str]) -> dict[str, Any]:
    """``init`` resolved, and the model settings the start model fixes (a clash is an error)."""
    init = config.init
    if init == "auto":
        init = "pretrained" if pretrained_checkpoint().exists() else "scratch"
        if init == "scratch":
            notes.append("start: no pretrained model is installed, so from scratch")
    fixed = source_architecture(init) or {}
    out: dict[str, Any] = {"init": init}
    defaults = {"channels": CRNNConfig.channels, "hidden": CRNNConfig.hidden, "lstm_layers": CRNNConfig.lstm_layers}
    for name, default in defaults.items():
        given = getattr(config, name)
        if given is not None and name in fixed and _differs(given, fixed[name]):
            raise OptionError(f"--{name.replace('_', '-')} {given} differs from the start model's {fixed[name]} "
                              f"({init}); drop it, or train with --init scratch")
        out[name] = given if given is not None else fixed.get(name, default)
    return out


def _differs(a: Any, b: Any) -> bool:
    return (tuple(a) != tuple(b)) if isinstance(a, (list, tuple)) else a != b


def _field_charset(chars: str) -> Charset:
    try:
        return Charset(chars)
    except LabelError as e:
        raise OptionError(f"--charset {chars!r}: {e}") from None


def check_config(config: TrainConfig, longest: int) -> None:
    """Values the model cannot use, as one-line option errors."""
    if config.height % (16 * FEATURE_ROWS):
        raise OptionError(f"--height {config.height}: the model needs a multiple of {16 * FEATURE_ROWS} (e.g. 32 or 64)")
    if config.width % 4:
        raise OptionError(f"--width {config.width}: the model needs a multiple of 4")
    if config.width // 4 < 2 * longest - 1:
        raise OptionError(f"--width {config.width} gives {config.width // 4} frames, fewer than the {2 * longest - 1} "
                          f"a {longest}-character label can need; use at least {4 * (2 * longest - 1)}")
    if config.color not in ("rgb", "gray") or config.resize not in ("pad", "stretch"):
        raise OptionError(f"--color must be auto, rgb or gray and resize pad or stretch, got {config.color}, {config.resize}")


def resumed_config(stored: TrainConfig, given: TrainConfig | dict[str, Any] | None) -> TrainConfig:
    """The config a resumed run continues with: the stored one, with only the settings a resume may
    change (:data:`RESUMABLE_CHANGES`) taken from ``given`` (a full config, or a dict of the
    settings given explicitly).

    Raises:
        OptionError: ``given`` differs from the stored run in another setting (naming both values).
    """
    if given is None:
        return stored
    wanted = given.to_dict() if isinstance(given, TrainConfig) else dict(given)
    have = stored.to_dict()
    for key in ("train", "val"):  # the same data, however the path is written
        if wanted.get(key) and have.get(key) and Path(wanted[key]).resolve() == Path(have[key]).resolve():
            wanted[key] = have[key]
    unknown = set(wanted) - set(have)
    if unknown:
        raise OptionError(f"unknown training settings: {', '.join(sorted(unknown))}")
    clashes = [f"{k} {v!r} (the run has {have[k]!r})" for k, v in wanted.items()
               if k not in RESUMABLE_CHANGES and v != have[k]]
    if clashes:
        raise OptionError(f"--resume keeps the run's saved settings, but these differ: {'; '.join(clashes)}; drop "
                          "them, or start a new run in another --out")
    return replace(stored, **{k: wanted[k] for k in RESUMABLE_CHANGES if wanted.get(k) is not None})


# ----- the run folder --------------------------------------------------------------------------
class Checkpointer:
    """Owns a run folder's ``best.pt``, ``last.pt`` and ``metrics.jsonl``, and the rule that says
    which epoch is best: highest val accuracy, then lowest CER, then lowest val loss (on a small val
    set many epochs tie at the top, and the later, lower-loss one is the more settled model). Early
    stopping (``patience``, off by default) counts the epochs since the best by the same rule.

    A settled epoch (one of the plain finish: the rate decayed, no augmentation) replaces the best
    whatever its val score: an epoch at the full rate that reads a val image or two more is luck more
    often than a better model (on 4,000 held-out images of three families, 18 runs, the last epoch read
    as well as the val-best one or better in 16, by up to 4 points, and one image less in 2)."""

    def __init__(self, out: str | Path, writer: bool = True):
        self.out = Path(out)
        self.writer = writer  # only rank 0 writes under DDP
        self.last, self.best_path, self.metrics = self.out / "last.pt", self.out / "best.pt", self.out / "metrics.jsonl"
        self.best = {"accuracy": -1.0, "cer": math.inf, "loss": math.inf, "epoch": 0}
        self.since_best = 0
        self.history: list[dict[str, Any]] = []

    def previous(self, resume: bool) -> dict[str, Any] | None:
        """The resumable checkpoint when resuming; refuses to overwrite an earlier run otherwise."""
        cli.check_out_folder(self.out)
        if resume:
            if not self.last.exists():
                raise OptionError(f"--resume: {self.last} does not exist; start without --resume")
            return load_checkpoint(self.last)
        if self.last.exists():  # every process checks, so none is left waiting for the others
            raise OverwriteError(f"{self.out} already holds a run ({self.last}); pass --resume to continue it or choose another --out")
        return None

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
                                    history=self.history, rng=rng_state(), **state), self.last)
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
        log(f"best.pt holds epoch {self.best['epoch']} (val accuracy {self.best['accuracy']:.4f}); {seconds:.0f}s; "
            f"wrote {self.best_path}, {self.last}, {self.metrics}")


def finished(ckpt: dict[str, Any], config: TrainConfig) -> str | None:
    """Why a saved run has nothing left to do, or None."""
    epoch, since_best = int(ckpt["epoch"]), int(ckpt.get("since_best", 0))
    best = ckpt.get("best", {}).get("epoch")
    if config.patience and since_best >= config.patience:
        return (f"it stopped early at epoch {epoch} (no better val score for {config.patience} epochs); best.pt holds "
                f"epoch {best}. --patience or --epochs with a larger value continues it")
    if epoch >= config.epochs:
        return f"it ran all {config.epochs} epochs; best.pt holds epoch {best}. --epochs N (more than {epoch}) continues it"
    return None


# ----- parts of a run --------------------------------------------------------------------------
def load_data(config: TrainConfig) -> tuple[list[Sample], list[Sample]]:
    if not (config.train and config.val):
        raise OptionError("give the training and validation data (--splits DIR, or --train and --val)")
    opts = dict(length=None, skip_invalid=config.skip_invalid, label_from=config.label_from, label_regex=config.label_regex)
    train = load_samples(config.train, **opts)
    val = load_samples(config.val, **opts)
    if not train or not val:
        raise OptionError(f"no training or validation images ({config.train}: {len(train)}, {config.val}: {len(val)})")
    shared = overlap(train, val)
    if shared:
        warnings.warn(f"{shared} of the {len(val)} val images are also training images: val accuracy will read high",
                      CaptchaWarning, stacklevel=2)
    return train, val


def build_model(config: TrainConfig, samples: list[Sample], val: list[Sample], resumed: dict | None, where: Path
                ) -> tuple[CRNN, Charset, PreprocessConfig]:
    """The model, charset and preprocessing: restored from ``resumed``, or new for ``config``."""
    if resumed is not None:
        model, charset, pre = build_crnn(resumed, where)
        check_labels(samples, charset, f"the training labels cannot be read by the resumed model {where}")
    else:
        charset = _field_charset(config.charset) if config.charset is not None else \
            Charset.from_labels(s.label for s in samples)
        try:
            pre = PreprocessConfig(height=config.height, width=config.width, channels=3 if config.color == "rgb" else 1,
                                   resize=config.resize, max_aspect_error=config.max_aspect_error,
                                   x_scale=config.x_scale)
            model = CRNN(CRNNConfig(
                num_classes=charset.num_classes, height=config.height, width=config.width, channels=config.channels,
                hidden=config.hidden, lstm_layers=config.lstm_layers, dropout=config.dropout,
                max_label_length=max(len(s.label) for s in samples), in_channels=pre.channels, rows=FEATURE_ROWS,
            ))
        except ValueError as e:  # a size or model setting the model cannot be built with
            raise OptionError(f"cannot build the model: {e}") from None
        for note in start_from(model, charset, config.init):
            log(note)
    chars, count = charset.missing(s.label for s in val)
    if count:
        warnings.warn(f"{count} val label(s) hold character(s) {chars!r} that no training label has; the model "
                      "cannot read them, so they count as misreads", CaptchaWarning, stacklevel=2)
    return model, charset, pre


def check_labels(samples: list[Sample], charset: Charset, what: str, error: type = LabelError) -> None:
    chars, count = charset.missing(s.label for s in samples)
    if count:
        bad = [s.path.name for s in samples if charset.unknown(s.label)]
        raise error(f"{what}: {chars!r} in {count} label(s), e.g. {listing(bad, 3)}")


def _worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    ds = info.dataset.dataset if isinstance(info.dataset, Subset) else info.dataset
    ds.reseed(info.seed % 2**31)  # each worker its own splicing and augmentation stream


def build_loaders(config: TrainConfig, train: list[Sample], val: list[Sample], charset: Charset,
                  pre: PreprocessConfig, dist_: Dist, workers: int, progress: bool) -> tuple[DataLoader, DataLoader]:
    """Shuffled, augmented training batches (``epoch_samples`` a pass) and plain validation batches.

    Under DDP every val sample is read exactly once: process r takes r, r+W, r+2W, ... (no padding,
    unlike the default distributed sampler, which would count some samples twice).
    """
    seed = config.seed + dist_.rank
    augment = Augmenter(config.aug_strength, config.strike_line, seed=seed) if config.aug_strength > 0 else None
    train_ds = CaptchaDataset(train, charset, pre, augment, mix_prob=config.mix_prob, seed=seed, progress=progress)
    val_ds = CaptchaDataset(val, charset, pre, unknown="drop", progress=progress)
    cuda = dist_.device.type == "cuda"
    gen = torch.Generator().manual_seed(config.seed)
    if dist_.world > 1:
        sampler = DistributedSampler(train_ds, dist_.world, dist_.rank, shuffle=True, seed=config.seed)
    else:
        sampler = RandomSampler(train_ds, num_samples=config.epoch_samples or len(train_ds), generator=gen)
    train_loader = DataLoader(
        train_ds, batch_size=config.batch_size, sampler=sampler, drop_last=len(sampler) > config.batch_size,
        collate_fn=collate_ctc, num_workers=workers, pin_memory=cuda, generator=gen,
        worker_init_fn=_worker_init if workers else None, persistent_workers=workers > 0,
    )
    val_part = Subset(val_ds, list(range(dist_.rank, len(val_ds), dist_.world)))
    val_loader = DataLoader(val_part, batch_size=128, collate_fn=collate_ctc, pin_memory=cuda)
    return train_loader, val_loader


def first_plain_epoch(config: TrainConfig) -> int | None:
    """The epoch from which training sees the plain images (``plain_finish``), or None."""
    if not config.plain_finish:
        return None
    return config.epochs - math.ceil(config.epochs * config.plain_finish) + 1


def plain_loader(loader: DataLoader) -> DataLoader:
    """The same batches (sampler, shuffle stream, workers) of the plain training images."""
    return DataLoader(loader.dataset.plain(), batch_size=loader.batch_size, sampler=loader.sampler,
                      drop_last=loader.drop_last, collate_fn=loader.collate_fn, num_workers=loader.num_workers,
                      pin_memory=loader.pin_memory, generator=loader.generator, worker_init_fn=loader.worker_init_fn,
                      persistent_workers=loader.persistent_workers)


def data_state(loader: DataLoader) -> dict[str, Any]:
    """Where the data stream stands: the shuffle generator, augmentation and splicing RNGs."""
    ds = loader.dataset
    rng, augment = getattr(ds, "rng", None), getattr(ds, "augment", None)
    return {"generator": loader.generator.get_state() if loader.generator is not None else None,
            "splice": rng.bit_generator.state if rng is not None else None,  # splicing
            "augment": augment.state() if augment is not None else None}


def restore_data_state(loader: DataLoader, state: dict[str, Any]) -> None:
    ds = loader.dataset
    if loader.generator is not None and state.get("generator") is not None:
        loader.generator.set_state(state["generator"])
    if getattr(ds, "rng", None) is not None and state.get("splice") is not None:
        ds.rng.bit_generator.state = state["splice"]
    if getattr(ds, "augment", None) is not None and state.get("augment"):
        ds.augment.restore(state["augment"])


def lr_factor(step: int, total: int, flat: float = 0.5, floor: float = 0.02) -> float:
    """1.0 for the first ``flat`` part of training, then a cosine decay down to ``floor``.

    A flat rate first: a CTC model spends its first epochs emitting only blanks, and a warm-up at a
    low rate makes that plateau longer.
    """
    start = flat * total
    if step <= start:
        return 1.0
    progress = min(1.0, (step - start) / max(total - start, 1))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class Optimisation:
    """AdamW, the step schedule and the mixed-precision scaler, saved and restored together."""

    def __init__(self, model: nn.Module, config: TrainConfig, steps_per_epoch: int, cuda: bool):
        # fused on a GPU: the update in one kernel, and a step the scaler skips (an fp16 overflow) still
        # goes through the optimizer, so the scheduler does not warn that it stepped first
        self.fused = True if cuda else None
        self.opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                     fused=self.fused)
        total = config.epochs * max(steps_per_epoch, 1)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: lr_factor(step, total))
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda)
        self.cuda = cuda

    def step(self, model: nn.Module, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def state(self) -> dict[str, Any]:
        return {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "scaler": self.scaler.state_dict() if self.cuda else {}}

    def restore(self, ckpt: dict[str, Any]) -> None:
        saved = ckpt["optimizer"]  # fused or not is this device's choice, not the saved run's (and it
        # decides where the loaded step counts go)
        self.opt.load_state_dict({**saved, "param_groups": [{**g, "fused": self.fused} for g in saved["param_groups"]]})
        self.sched.load_state_dict(ckpt["scheduler"])
        if self.cuda and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])


def batch_loss(net: nn.Module, images: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor,
               device: torch.device) -> torch.Tensor:
    """The CTC loss of one training batch: the forward pass in fp16 mixed precision on a GPU."""
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()
    with amp:
        logits = net(images.to(device, non_blocking=True))  # (N, T, C)
    return ctc_loss(logits, targets, lengths)


def train_one_epoch(net: nn.Module, model: nn.Module, loader: DataLoader, optim: Optimisation,
                    device: torch.device, epoch: int, bar_desc: str, show_bar: bool, last: Path) -> tuple[float, int]:
    """One pass over the training batches; returns (summed loss, images seen).

    Raises:
        TrainingError: the loss stopped being finite (names the last good checkpoint).
    """
    net.train()
    loss_sum, seen = torch.zeros((), device=device), 0
    bar = tqdm(loader, desc=bar_desc, leave=False, file=sys.stderr, disable=not show_bar)
    for step, (images, targets, lengths, _) in enumerate(bar):
        loss = batch_loss(net, images, targets, lengths, device)
        if device.type == "cpu" or step % 50 == 0:  # on a GPU, reading the loss waits for it: not every step
            value = float(loss.detach())
            if not math.isfinite(value):
                raise not_finite(value, f"at epoch {epoch}, step {step + 1}", last, optim)
            bar.set_postfix(loss=f"{value:.3f}", lr=f"{optim.lr:.2e}")
        optim.step(model, loss)
        loss_sum += loss.detach() * images.shape[0]
        seen += images.shape[0]
    total = float(loss_sum)
    if not math.isfinite(total):  # on a GPU, where not every step's loss is read
        raise not_finite(total, f"during epoch {epoch}", last, optim)
    return total, seen


def not_finite(value: float, when: str, last: Path, optim: Optimisation) -> TrainingError:
    """The error for a loss gone to nan or inf: when, what was kept, what to try."""
    kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
    return TrainingError(f"loss became {value} {when}; stopping ({kept}). "
                         f"Try a lower --lr (now {optim.opt.defaults['lr']}).")


def validate(model: nn.Module, loader: DataLoader, charset: Charset, device: torch.device, dist_: Dist) -> dict:
    """Greedy-decoded metrics over the loader's samples, summed over processes; also the mean CTC
    loss (each sample's divided by its label length, as the training loss is)."""
    model.eval()
    preds: list[str] = []
    truths: list[str] = []
    loss_sum = 0.0
    with torch.inference_mode():
        for images, targets, lengths, labels in loader:
            logits = model(images.to(device, non_blocking=True)).float()  # (N, T, C)
            losses = ctc_loss(logits, targets, lengths, reduction="none").cpu()
            loss_sum += float((losses / lengths.clamp(min=1)).sum())
            preds += greedy_texts(logits.log_softmax(2).argmax(2).cpu().numpy(), charset)
            truths += labels
    c = score(preds, truths)
    keys = ["n", "correct", "chars", "char_correct", "edits"]
    summed = {k: int(v) for k, v in zip(keys, dist_.sum([float(c[k]) for k in keys]))}
    out = summarize(summed)
    out["loss"] = dist_.sum([loss_sum])[0] / max(summed["n"], 1)
    return out


def epoch_record(epoch: int, train_loss: list[float], val: dict, lr: float, seconds: float) -> dict[str, Any]:
    return {
        "epoch": epoch, "train_loss": train_loss[0] / max(train_loss[1], 1), "val_loss": val["loss"],
        "val_accuracy": val["accuracy"], "val_char_accuracy": val["char_accuracy"], "val_cer": val["cer"],
        "val_n": val["n"], "lr": lr, "epoch_seconds": seconds,
        "train_samples_per_s": train_loss[1] / max(seconds, 1e-9),
    }


def log_epoch(rec: dict[str, Any], improved: bool) -> None:
    log(f"epoch {rec['epoch']:3d}  loss {rec['train_loss']:.4f}  val loss {rec['val_loss']:.4f}  "
        f"val acc {rec['val_accuracy']:.4f} (n={rec['val_n']})  char acc {rec['val_char_accuracy']:.4f}  "
        f"CER {rec['val_cer']:.4f}  {rec['epoch_seconds']:.1f}s" + ("  *best" if improved else ""))


# ----- the run ---------------------------------------------------------------------------------
def run(config: TrainConfig | dict[str, Any] | None, out: str | Path = "runs/train", *, resume: bool = False,
        device: str = "auto",
        workers: int = -1, threads: int = 0, progress: bool = True) -> int:
    """Train ``config`` into the folder ``out``; returns 0, or 130 when interrupted (errors raise
    :class:`TrainingError` and the other library errors).

    Args:
        config: the recipe; with ``resume`` it may be None (the run's saved recipe is used) or a
            dict of settings, and may change only ``epochs`` and ``patience``.
        resume: continue the run in ``out`` from its last.pt.
        device: "auto", "cpu" or "cuda". workers: data loader workers (-1: 0 on the CPU; on a GPU
            all cores but two, shared among torchrun's processes, at most 12 each).
        threads: CPU threads for torch (0: :func:`default_threads`). progress: progress bars.
    """
    dist_ = Dist(device)
    return dist_.run(lambda: _run(config, out, resume, dist_, workers, threads, progress))


def _run(config: TrainConfig | dict[str, Any] | None, out: str | Path, resume: bool, dist_: Dist, workers: int,
         threads: int, progress: bool) -> int:
    """:func:`run` once its processes are joined up."""
    if dist_.device.type == "cpu":
        torch.set_num_threads(threads or default_threads())
    saver = Checkpointer(out, writer=dist_.main)
    resumed = saver.previous(resume)
    if resumed is not None:
        config = resumed_config(TrainConfig.from_dict(resumed.get("train_args", {})), config)
        why = finished(resumed, config)
        if why:
            log(f"{saver.out} is finished: {why}")
            return 0
    if not isinstance(config, TrainConfig):
        raise OptionError("give a TrainConfig (a dict of settings or None only when resuming)")
    seed_everything(config.seed + dist_.rank)
    train_samples, val_samples = load_data(config)
    cuda = dist_.device.type == "cuda"
    if resumed is None:
        config, notes = resolve(config, train_samples, val_samples, cuda)
        for note in notes if dist_.main else []:
            log(note)
        config = replace(config, train=str(Path(config.train).resolve()), val=str(Path(config.val).resolve()))
    model, charset, pre = build_model(config, train_samples, val_samples, resumed, saver.last)
    if dist_.main:
        log(f"alphabet ({len(charset)}): {charset.chars}")
        log(f"train {len(train_samples)}  val {len(val_samples)}  device {dist_.device}  processes {dist_.world}  "
            f"parameters {count_parameters(model):,}  frames {model.config.frames}")
    workers = default_workers(cuda, cpu=0, cap=12) if workers < 0 else workers
    loaders = build_loaders(config, train_samples, val_samples, charset, pre, dist_, workers, progress and dist_.main)
    return _train(config, model, charset, pre, loaders, dist_, saver, resumed, progress)


def _train(config: TrainConfig, model: CRNN, charset: Charset, pre: PreprocessConfig,
           loaders: tuple[DataLoader, DataLoader], dist_: Dist, saver: Checkpointer, resumed: dict | None,
           progress: bool) -> int:
    """The epochs of a run, from the first or from where ``resumed`` stopped."""
    train_loader, val_loader = loaders
    cuda = dist_.device.type == "cuda"
    model.to(dist_.device)
    net: nn.Module = model
    if dist_.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dist_.device.index] if cuda else None)
    optim = Optimisation(model, config, len(train_loader), cuda)
    start = 1
    if resumed is not None:
        optim.restore(resumed)
        start = int(resumed["epoch"]) + 1
        if "rng" in resumed and dist_.world == 1:
            set_rng_state(resumed["rng"])
        if resumed.get("data") and dist_.world == 1:
            restore_data_state(train_loader, resumed["data"])
        if dist_.main:
            log(f"resuming {saver.last} after epoch {start - 1}")
    saver.open(resumed)
    dist_.barrier()
    t_start, epoch = time.time(), start
    plain_from = first_plain_epoch(config)
    try:
        for epoch in range(start, config.epochs + 1):
            if plain_from is not None and epoch == max(start, plain_from):  # the first plain epoch of this run
                train_loader = plain_loader(train_loader)
                if dist_.main:
                    log(f"epochs {epoch}-{config.epochs}: the training images as they are (no augmentation or "
                        "splicing)")
            if hasattr(train_loader.sampler, "set_epoch"):  # DDP's shuffle, or a fresh synthetic stretch
                train_loader.sampler.set_epoch(epoch)
            t0 = time.time()
            loss = train_one_epoch(net, model, train_loader, optim, dist_.device, epoch,
                                   f"epoch {epoch}/{config.epochs}", progress and dist_.main, saver.last)
            val = validate(model, val_loader, charset, dist_.device, dist_)  # unwrapped: ranks may see unequal batches
            rec = epoch_record(epoch, dist_.sum(list(loss)), val, optim.lr, time.time() - t0)
            improved = saver.record(rec, settled=plain_from is not None and epoch >= plain_from)
            saver.save(model, charset, pre, config, improved,
                       {"epoch": epoch, "data": data_state(train_loader), **optim.state()})
            if dist_.main:
                log_epoch(rec, improved)
            if config.patience and saver.since_best >= config.patience:
                if dist_.main:
                    log(f"early stop after epoch {epoch}: no better val score for {config.patience} epochs; "
                        f"best.pt holds epoch {saver.best['epoch']}")
                break
    except KeyboardInterrupt:
        if dist_.main:
            if saver.history:
                log(f"stopped during epoch {epoch}; the last whole epoch, {epoch - 1}, is in {saver.last}; "
                    "continue with --resume")
                saver.finish(time.time() - t_start)
            else:
                log(f"stopped during epoch {epoch}, before any epoch finished: nothing was kept; start again "
                    "(without --resume)")
        return cli.INTERRUPTED
    saver.finish(time.time() - t_start)
    return 0


# ----- command line ----------------------------------------------------------------------------
def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.train", __doc__)
    groups = cli.add_training_options(ap, out="runs/train", epochs=None, batch_size=None, lr=None, height=None,
                                      width=None, aug_strength=1.0, channels=None)
    d, m, o, r = groups["data"], groups["model"], groups["optimisation"], groups["run"]
    d.add_argument("--splits", help="folder with train.csv and val.csv (from scripts/split_data.py)")
    d.add_argument("--train", help="train manifest (CSV/TSV/JSON lines) or folder (instead of --splits)")
    d.add_argument("--val", help="val manifest or folder (instead of --splits)")
    cli.add_label_options(d, skip_invalid=False)  # --skip-invalid is a training option already
    d.add_argument("--charset", help="the characters to read (default: those of the train labels)")
    d.add_argument("--color", choices=["auto", "rgb", "gray"], default="auto",
                   help="read colour or gray (auto: colour when gray would lose the text's contrast)")
    d.add_argument("--resize", choices=["pad", "stretch"], default="pad",
                   help="pad keeps each image's aspect ratio; stretch scales width and height apart")
    d.add_argument("--no-strike-line", action="store_true", help="no random strike line in augmentation")
    d.add_argument("--mix-prob", type=cli.fraction_or_one, default=0.5,
                   help="share of training items spliced from two captchas where their characters meet: strings "
                        "the set does not hold, so the model reads characters rather than memorising labels (0: off)")
    d.add_argument("--plain-finish", type=cli.fraction, default=0.1,
                   help="share of the last epochs trained on the images as they are, without augmentation or "
                        "splicing (0: augment to the end)")
    m.add_argument("--hidden", type=cli.positive_int,
                   help=f"LSTM units per direction (default: the start model's, or {CRNNConfig.hidden})")
    m.add_argument("--lstm-layers", type=cli.positive_int,
                   help=f"stacked BiLSTM layers (default: the start model's, or {CRNNConfig.lstm_layers})")
    m.add_argument("--dropout", type=cli.fraction, default=CRNNConfig.dropout, help="dropout before the head")
    m.add_argument("--init", default="auto", metavar="pretrained|scratch|PATH",
                   help="start from the shipped pretrained model, from scratch, or from a checkpoint (a whole "
                        "model, or a glyph backbone); auto: pretrained when installed")
    m.add_argument("--pretrained-backbone", dest="init", metavar="PATH", help="the same as --init PATH")
    o.add_argument("--weight-decay", type=cli.non_negative_float, default=1e-2, help="AdamW weight decay")
    o.add_argument("--patience", type=cli.non_negative_int, default=0,
                   help="stop after this many epochs without a better val score (default 0: never; the run's length "
                        "comes from the set's size)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt, with its settings")
    r.add_argument("--workers", type=cli.non_negative_int,
                   help="data loader workers (default: 0 on the CPU; on a GPU all cores but two, at most 12: "
                        "each prepares about 1,000-2,000 images/s)")
    r.add_argument("--threads", type=cli.non_negative_int, default=0,
                   help="CPU threads for torch (0: half the cores, at most 4)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    train, val = args.train, args.val
    if args.splits:
        train, val = str(Path(args.splits) / "train.csv"), str(Path(args.splits) / "val.csv")
    return TrainConfig(
        train=train or "", val=val or "", skip_invalid=args.skip_invalid, label_from=args.label_from,
        label_regex=args.label_regex, charset=args.charset, height=args.height, width=args.width, color=args.color,
        resize=args.resize, aug_strength=args.aug_strength, strike_line=not args.no_strike_line,
        mix_prob=args.mix_prob, plain_finish=args.plain_finish, channels=args.channels, hidden=args.hidden,
        lstm_layers=args.lstm_layers, dropout=args.dropout, init=args.init, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, patience=args.patience, seed=args.seed,
    )


def resume_changes(args: argparse.Namespace, given: set[str]) -> dict[str, Any]:
    """On --resume, the training settings the command line gave explicitly."""
    full = config_from_args(args).to_dict()
    field_of = {"splits": ("train", "val"), "no_strike_line": ("strike_line",)}
    names = {name for dest in given for name in field_of.get(dest, (dest,))}
    return {k: full[k] for k in names if k in full}


def run_args(args: argparse.Namespace) -> int:
    config = resume_changes(args, args.given) if args.resume else config_from_args(args)
    return run(config, args.out, resume=args.resume, device=args.device,
               workers=-1 if args.workers is None else args.workers, threads=args.threads, progress=not args.no_progress)


RUN_OPTIONS = {"out", "resume", "device", "workers", "threads", "no_progress"}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    args.given = cli.given_options(parser, argv) - RUN_OPTIONS
    return cli.run_main(lambda: run_args(args))


if __name__ == "__main__":
    raise SystemExit(main())
