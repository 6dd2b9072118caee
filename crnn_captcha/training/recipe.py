"""The recipe of a training run (:class:`TrainConfig`), the choices made from the data, and
the resume rule."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..data.labels import Sample, listing
from ..errors import LabelError, OptionError
from ..read.charset import Charset
from ..read.ctc import frames_needed
from ..read.frames import FRAME_MODES
from ..read.model import FEATURE_ROWS, PIXELS_PER_FRAME, CRNNConfig
from ..read.shipped import default_start
from .frame_choice import choose_frames
from .input_choice import choose_input
from .transfer import source_architecture

#: An epoch draws at least this many images (small sets are passed over several times), so that
#: validation and checkpoints come at a steady pace whatever the set's size.
MIN_EPOCH_SAMPLES = 512


#: The default batch on a GPU, from ``GPU_BATCH_FROM`` training images; below that, 16 as on the
#: CPU. A larger batch keeps a GPU busier but, with the rate scaled to it, reads less after
#: training on few images, and as well or better from 1,000 (docs/results.md, "On a GPU").
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
    rate from scratch: it has no all-blank start to leave and read best at the higher rate (docs/
    results.md, "Recipe changes measured"). From scratch it stays 1e-3, the rate all the scratch
    results were measured at."""
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
        height, width, color, resize: the model's input (see :mod:`crnn_captcha.training.input_choice`);
            color is "auto", "rgb" or "gray"; resize "pad" (keep the aspect ratio) or "stretch";
            max_aspect_error: how far an image's width/height ratio may stray from the typical one
            before it is refused as the wrong shape (None: a factor of 3, or more where a stretched
            input was widened for long labels); x_scale: for "pad", how many times wider than its
            ratio the text is drawn (None: as chosen with the width, so the typical image fills an
            input widened for long labels; 1 where --width is given); frames: how an animated
            image's frames become one picture (None: measured on the training images, see
            :mod:`crnn_captcha.training.frame_choice`).
        aug_strength: scale of the augmentation (0: none); strike_line: add random strike lines.
        splice_prob: share of items spliced from two captchas where their characters meet (0: off);
            new strings keep a small set from being memorised (measured in docs/results.md).
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
            ``GPU_BATCH_FROM`` training images, where small batches leave it idle, else 16); views:
            versions of each batch trained on, all but the first changed on the device (pretraining's,
            see :mod:`crnn_captcha.training.views`; 1: the batch as it is); lr
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
    frames: str | None = None
    aug_strength: float = 1.0
    strike_line: bool = True
    splice_prob: float = 0.5
    plain_finish: float = 0.1
    init: str = "auto"
    channels: tuple[int, ...] | None = None
    hidden: int | None = None
    lstm_layers: int | None = None
    dropout: float = CRNNConfig.dropout
    epochs: int | None = None
    epoch_samples: int | None = None
    batch_size: int | None = None
    views: int = 1
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
        if "mix_prob" in d and "splice_prob" not in d:  # its older name
            kept["splice_prob"] = d["mix_prob"]
        if "plain_finish" not in d:  # before the plain finish: augmented to the end
            kept["plain_finish"] = 0.0
        if "x_scale" not in d:  # before widened inputs stretched the text: padded
            kept["x_scale"] = 1.0
        if "frames" not in d:  # before animated images were read whole: their first frame
            kept["frames"] = "first"
        return cls(**kept)


# ----- choosing what was left to the data --------------------------------------------------------
def resolve(config: TrainConfig, train: list[Sample], val: list[Sample], cuda: bool) -> tuple[TrainConfig, list[str]]:
    """``config`` with every "auto" value chosen, and one log line per choice."""
    notes = []
    if config.charset is not None:
        check_labels(train, field_charset(config.charset),
                     f"--charset {config.charset!r} lacks characters of the training labels", OptionError)
    longest = max(len(s.label) for s in train + val)
    changes: dict[str, Any] = architecture(config, notes)
    if config.frames is None:  # first: the input is chosen from the pictures the frames make
        changes["frames"], why = choose_frames(train, changes["init"], seed=config.seed)
        notes.append(why)
    frames = changes.get("frames", config.frames)
    if config.height is None or config.width is None or config.color == "auto":
        choice = choose_input([s.path for s in train], longest, seed=config.seed, frames=frames)
        notes.append(f"input: {choice.why}")
        height = config.height or choice.height
        width = config.width or (choice.width if config.height is None else
                                 PIXELS_PER_FRAME * max(1, round(choice.width * height / choice.height / PIXELS_PER_FRAME)))
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
    notes.append(f"input {out.width}x{out.height} {out.color}, resize {out.resize}{stretched}, frames {out.frames}; batch {out.batch_size}, "
                 f"lr {out.lr:g}, {out.epochs} epochs, patience {out.patience or 'off'}")
    return out, notes


def architecture(config: TrainConfig, notes: list[str]) -> dict[str, Any]:
    """``init`` resolved, and the model settings the start model fixes (a clash is an error)."""
    init = config.init
    if init == "auto":
        init = default_start() or "scratch"
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


def field_charset(chars: str) -> Charset:
    try:
        return Charset(chars)
    except LabelError as e:
        raise OptionError(f"--charset {chars!r}: {e}") from None


def check_config(config: TrainConfig, longest: int) -> None:
    """Values the model cannot use, as one-line option errors."""
    if config.height % (16 * FEATURE_ROWS):
        raise OptionError(f"--height {config.height}: the model needs a multiple of {16 * FEATURE_ROWS} (e.g. 32 or 64)")
    if config.width % PIXELS_PER_FRAME:
        raise OptionError(f"--width {config.width}: the model needs a multiple of {PIXELS_PER_FRAME}")
    frames, need = config.width // PIXELS_PER_FRAME, frames_needed(longest)
    if frames < need:
        raise OptionError(f"--width {config.width} gives {frames} frames, fewer than the {need} "
                          f"a {longest}-character label can need; use at least {PIXELS_PER_FRAME * need}")
    if config.frames not in FRAME_MODES:
        raise OptionError(f"--frames must be one of {', '.join(FRAME_MODES)}, got {config.frames!r}")
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
    clashes = [f"--{k.replace('_', '-')} {v!r} (the run has {have[k]!r})" for k, v in wanted.items()
               if k not in RESUMABLE_CHANGES and v != have[k]]
    if clashes:
        raise OptionError(f"--resume keeps the run's saved settings, but these differ: {'; '.join(clashes)}; drop "
                          "them, or start a new run in another --out")
    return replace(stored, **{k: wanted[k] for k in RESUMABLE_CHANGES if wanted.get(k) is not None})


def check_labels(samples: list[Sample], charset: Charset, what: str, error: type = LabelError) -> None:
    chars, count = charset.missing(s.label for s in samples)
    if count:
        bad = [s.path.name for s in samples if charset.unknown(s.label)]
        raise error(f"{what}: {chars!r} in {count} label(s), e.g. {listing(bad, 3)}")


