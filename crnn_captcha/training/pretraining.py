"""Pretraining on synthetic captchas: the start every ``train`` fine-tunes by default.

Two stages, each optional: the **glyph** stage trains the backbone as a classifier of single
characters (synthetic ones, or a glyph set of your own in the Kaggle 118K format) and writes
``OUT/backbone.pt``; the **sequence** stage trains the whole CRNN with CTC on synthetic captchas,
from that backbone, and writes ``OUT/sequence/`` and ``OUT/pretrained.pt``. Both go through the one
training loop (:func:`crnn_captcha.training.loop.run_epochs`). The images are drawn on the fly by a
seeded renderer, a fresh set every epoch, so a stopped run resumes on the same images.

    from crnn_captcha.training import PretrainConfig, pretrain
    pretrain(PretrainConfig(epochs=10), "runs/pretrain")

The command, its options and the warning about the Kaggle 118K set: ``python -m crnn_captcha.pretrain``.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Collection

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data.augment import Augmenter
from ..data.datasets import collate_ctc
from ..data.glyphs import GlyphDataset
from ..errors import INTERRUPTED, OptionError
from ..files import atomic_write, check_out_folder
from ..read.charset import Charset
from ..read.checkpoint import atomic_save, load_checkpoint, make_checkpoint
from ..read.images import PreprocessConfig
from ..read.model import CRNN, FEATURE_ROWS, PIXELS_PER_FRAME, CRNNConfig, GlyphClassifier
from ..read.shipped import MODELS
from .loop import autocast, ctc_task, run_epochs
from .recipe import TrainConfig, architecture, resumed_config
from .run_folder import Checkpointer, MemoryRun
from .runtime import Dist, default_threads, default_workers, log, seed_everything
from .synthetic_data import (
    FreshSampler,
    SynthCaptchas,
    SynthGlyphs,
    synthetic_loader,
    worker_options,
)
from .transfer import start_from
from .views import check_views

STAGES = ("glyph", "sequence")
#: The pretrained model's input: colour, ``SEQUENCE_ASPECT`` times as wide as high (a fine-tuned
#: model adapts its first convolution to gray and reads any width, and any height that is a
#: multiple of 32).
SEQUENCE_ASPECT = 4
PRE_HEIGHT, PRE_WIDTH = 32, 32 * SEQUENCE_ASPECT
GLYPH_HEIGHT, GLYPH_WIDTH = 32, 20
#: The val set's renderer is seeded this far from the training renderer, so they never share an image.
VAL_SEED_OFFSET = 1_000_003
#: The settings a resumed sequence stage is checked against (the others do not shape it).
#: Where a run keeps the settings it started with (in its out folder), for ``--resume``.
SETTINGS_FILE = "pretrain.json"
#: The settings a resume may change; any other it is given must be the run's own.
RESUME_CHANGES = ("epochs", "views")
SEQUENCE_SETTINGS = ("height", "width", "channels", "hidden", "lstm_layers", "batch_size", "lr", "epoch_samples",
                     "seed", "epochs", "x_scale")


@dataclass(frozen=True)
class PretrainConfig:
    """The recipe of a pretraining run (``python -m crnn_captcha.pretrain`` builds one from its options).

    Attributes:
        stages: which stages run, in order; () chooses: glyph and sequence, the glyph stage alone
            with ``glyphs``, the sequence stage alone with ``init``.
        glyphs, val_glyphs, subfolder, skip_invalid: a glyph set of your own (Kaggle 118K format)
            instead of synthetic glyphs, held-out glyphs to score it on, the part of it to use, and
            leaving out files whose names are not one character.
        height: input height of both stages (a multiple of 16); width: the glyph stage's input
            width.
        sequence_width: the sequence stage's input width (None: ``SEQUENCE_ASPECT`` times the height).
        x_scale: the sequence stage draws each image this many times as wide (its text stretched
            across) before padding it to the input, and the pretrained model reads every image so:
            characters that touch span more frames (docs/results.md, "Text drawn one and a half
            times as wide").
        x_spread: the sequence stage's training images are drawn at ``x_scale`` times a factor
            from 1/x_spread to x_spread (validation and reading at ``x_scale``): text of every
            width a site draws, read at one.
        aug_strength: augmentation of a glyph set of your own (0: off).
        channels, hidden, lstm_layers: the model's size.
        init: start the sequence stage from this model (a shipped one's name, "scratch" or a path)
            instead of a glyph stage.
        epochs, glyph_epochs: epochs of the sequence and glyph stages.
        epoch_samples: synthetic images per epoch (a fresh set each epoch); val_samples: the size
            of the fixed synthetic val set.
        views: each rendered batch of the sequence stage is trained on in this many versions, all
            but the first changed on the device (:mod:`crnn_captcha.training.views`); 1: as drawn only.
        batch_size, lr, seed: as in training.
    """

    stages: tuple[str, ...] = ()
    glyphs: str | None = None
    val_glyphs: str | None = None
    subfolder: str | None = None
    skip_invalid: bool = False
    height: int = GLYPH_HEIGHT
    width: int = GLYPH_WIDTH
    sequence_width: int | None = None
    x_scale: float = 1.0
    x_spread: float = 1.0
    aug_strength: float = 0.0
    channels: tuple[int, ...] = CRNNConfig.channels
    hidden: int = CRNNConfig.hidden
    lstm_layers: int = CRNNConfig.lstm_layers
    init: str | None = None
    epochs: int = 40
    glyph_epochs: int = 3
    epoch_samples: int = 20_000
    val_samples: int = 2000
    views: int = 1
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self) -> None:
        check_views(self.views)
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "stages", tuple(self.stages))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channels": list(self.channels), "stages": list(self.stages)}

    def chosen_stages(self) -> list[str]:
        """The stages to run, checked against ``glyphs`` and ``init``."""
        stages = list(self.stages) or (["glyph"] if self.glyphs else ["sequence"] if self.init else list(STAGES))
        if self.glyphs and "glyph" not in stages:
            raise OptionError("--glyphs feeds the glyph stage, but --stages leaves it out")
        if self.init and stages != ["sequence"]:
            raise OptionError(f"--init {self.init} starts the sequence stage; it cannot follow a glyph stage "
                              "(give --stages sequence, or leave --init out)")
        return stages

    def given(self) -> set[str]:
        """The settings that differ from the defaults: what a caller who names none chose."""
        return {f.name for f in fields(self) if getattr(self, f.name) != f.default}


def sequence_input(height: int, width: int | None = None, x_scale: float = 1.0) -> PreprocessConfig:
    """The sequence stage's input: colour, ``width`` wide (None: ``SEQUENCE_ASPECT`` times the
    height), each image drawn ``x_scale`` times as wide and padded to it. Whatever the width and
    scale, it takes every shape the default input takes (width/height from 4/3 to 12), so a
    wider input refuses no captcha the shipped reader reads."""
    width = width or SEQUENCE_ASPECT * height
    typical = width / (height * x_scale)  # width/height of an image that fills the input unpadded
    error = max(3.0, typical * 3 / SEQUENCE_ASPECT, SEQUENCE_ASPECT * 3 / typical)
    return PreprocessConfig(height=height, width=width, channels=3, resize="pad", x_scale=x_scale,
                            max_aspect_error=round(error, 2))


SEQUENCE_INPUT = sequence_input(PRE_HEIGHT)


def sequence_model(charset: Charset, renderer, channels, hidden: int, lstm_layers: int,
                   pre: PreprocessConfig = SEQUENCE_INPUT) -> CRNN:
    """The CRNN the sequence stage trains, reading colour at ``pre``'s size."""
    return CRNN(CRNNConfig(num_classes=charset.num_classes, height=pre.height, width=pre.width, channels=channels,
                           hidden=hidden, lstm_layers=lstm_layers, max_label_length=renderer.config.max_length,
                           in_channels=3, rows=FEATURE_ROWS))


def make_renderer(seed: int):
    from ..synthetic import SynthRenderer  # the renderer is only needed here

    return SynthRenderer(seed=seed)


# ----- the glyph stage -------------------------------------------------------------------------------
def glyph_accuracy(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, int]:
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in loader:
            pred = model(x.to(device)).argmax(1).cpu()
            correct += int((pred == y).sum())
            total += len(y)
    return correct / max(total, 1), total


class GlyphTask:
    """Single characters: cross-entropy over the classes; val scored by accuracy."""

    def __init__(self, charset: Charset, pre: PreprocessConfig):
        self.charset, self.pre = charset, pre

    def loss(self, net: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        x, y = batch
        with autocast(device):
            logits = net(x.to(device, non_blocking=True))
        return nn.functional.cross_entropy(logits.float(), y.to(device, non_blocking=True)), len(y)

    def validate(self, model: nn.Module, loader: DataLoader | None, device: torch.device, dist_: Dist) -> dict[str, Any]:
        if loader is None:
            return {}
        accuracy, n = glyph_accuracy(model, loader, device)
        return {"accuracy": accuracy, "n": n}


def glyph_data(config: PretrainConfig, cuda: bool, workers: int, progress: bool
               ) -> tuple[Dataset | None, Charset, PreprocessConfig, DataLoader]:
    """The glyph stage's data: a user's glyph set (``glyphs``) or synthetic glyphs."""
    if config.glyphs:
        pre = PreprocessConfig(height=config.height, width=config.width, max_aspect_error=0.0)
        augment = Augmenter(config.aug_strength, strike_line=False, seed=config.seed) if config.aug_strength > 0 else None
        train = GlyphDataset(config.glyphs, pre, augment=augment, subfolder=config.subfolder,
                             skip_invalid=config.skip_invalid, progress=progress)
        val = GlyphDataset(config.val_glyphs, pre, charset=train.charset, skip_invalid=True, progress=progress) \
            if config.val_glyphs else None
        if val is not None and not len(val):
            raise OptionError(f"--val-glyphs {config.val_glyphs}: no glyph there is one character of the training "
                              f"glyphs' alphabet {train.charset.chars!r}")
        loader = DataLoader(train, batch_size=config.batch_size, shuffle=True, pin_memory=cuda,
                            generator=torch.Generator().manual_seed(config.seed))
        return val, train.charset, pre, loader
    renderer = make_renderer(config.seed)
    charset = Charset(renderer.config.alphabet)
    pre = PreprocessConfig(height=config.height, width=config.width, max_aspect_error=0.0, channels=3)
    val = SynthGlyphs(make_renderer(config.seed + VAL_SEED_OFFSET), charset, pre, cache=2000)
    loader = DataLoader(SynthGlyphs(renderer, charset, pre), batch_size=config.batch_size,
                        sampler=FreshSampler(config.epoch_samples), pin_memory=cuda, **worker_options(workers))
    return val, charset, pre, loader


def glyph_stage(config: PretrainConfig, out: Path, dist_: Dist, workers: int, progress: bool) -> Path | None:
    """Train the backbone as a glyph classifier, in this process alone, through the training loop;
    returns the backbone's path (None when interrupted)."""
    seed_everything(config.seed)
    val, charset, pre, loader = glyph_data(config, dist_.device.type == "cuda", workers, progress)
    log(f"glyph stage: {len(charset)} classes, device {dist_.device}" + (f", val {len(val)}" if val is not None else ""))
    model = GlyphClassifier(len(charset), config.channels, in_channels=pre.channels)
    recipe = TrainConfig(train="glyphs", val="glyphs", epochs=config.glyph_epochs, batch_size=config.batch_size,
                         lr=config.lr, patience=0, seed=config.seed, plain_finish=0.0)
    run = MemoryRun()
    val_loader = DataLoader(val, batch_size=512) if val is not None else None
    if run_epochs(model, GlyphTask(charset, pre), (loader, val_loader), recipe, dist_.alone(), run,
                  progress=progress) != 0:
        return None
    metrics = run.history[-1]
    path = out / "backbone.pt"
    atomic_save(make_checkpoint(model, charset, pre, metrics, config.to_dict()), path)
    print(f"wrote {path}" + (f"; val glyph accuracy {metrics['val_accuracy']:.4f} (n={metrics['val_n']})"
                             if val is not None else ""))
    return path


# ----- the sequence stage ----------------------------------------------------------------------------
def sequence_recipe(config: PretrainConfig, backbone: Path | None, given: Collection[str]) -> TrainConfig:
    """The sequence stage's training recipe: from the glyph stage's backbone, the model ``init``
    names, or scratch (a further run keeps the size of the model it starts from, as train does)."""
    size = {"init": str(backbone) if backbone else "scratch", "channels": config.channels,
            "hidden": config.hidden, "lstm_layers": config.lstm_layers}
    if config.init:
        chosen = {name: size[name] if name in given else None for name in size}
        size = architecture(TrainConfig(**{**chosen, "init": config.init}), [])
    pre = sequence_input(config.height, config.sequence_width, config.x_scale)
    return TrainConfig(train="synthetic", val="synthetic", height=pre.height, width=pre.width, x_scale=pre.x_scale,
                       max_aspect_error=pre.max_aspect_error, color="rgb", init=size["init"],
                       channels=size["channels"], hidden=size["hidden"], lstm_layers=size["lstm_layers"],
                       epochs=config.epochs, epoch_samples=config.epoch_samples, batch_size=config.batch_size,
                       lr=config.lr, patience=0, seed=config.seed, aug_strength=0.0, plain_finish=0.0,
                       views=config.views)


def sequence_stage(config: PretrainConfig, out: Path, backbone: Path | None, dist_: Dist, *, resume: bool,
                   given: Collection[str], workers: int, progress: bool) -> Path | None:
    """Train the whole CRNN on synthetic captchas through the training loop; returns the path of
    the pretrained model (None when interrupted)."""
    recipe = sequence_recipe(config, backbone, given)
    saver = Checkpointer(out / "sequence", writer=dist_.main)
    resumed = saver.previous(resume)
    try:
        return _sequence_epochs(config, recipe, out, saver, resumed, dist_, given=given, workers=workers,
                                progress=progress)
    finally:
        saver.release()


def _sequence_epochs(config: PretrainConfig, recipe: TrainConfig, out: Path, saver: Checkpointer,
                     resumed: dict | None, dist_: Dist, *, given: Collection[str], workers: int,
                     progress: bool) -> Path | None:
    """:func:`sequence_stage` once its run folder is taken."""
    if resumed is not None:  # the run's own settings (size of batch and epoch, seed); only epochs and views may change
        stored = TrainConfig.from_dict(resumed.get("train_args", {}))
        # the recipe's width is --sequence-width (--width is the glyph stage's)
        chosen = {"width" if name == "sequence_width" else name for name in given if name != "width"}
        recipe = resumed_config(stored, {k: v for k, v in recipe.to_dict().items()
                                         if k in SEQUENCE_SETTINGS and k in chosen})
        if "views" in given:  # how the renders are used, not what the run is: a machine may choose its own
            recipe = replace(recipe, views=config.views)
    check_epoch(recipe.epoch_samples, recipe.batch_size, dist_.world)
    seed_everything(recipe.seed + dist_.rank)
    renderer = make_renderer(recipe.seed)
    charset = Charset(renderer.config.alphabet)
    pre = sequence_input(recipe.height, recipe.width, recipe.x_scale)
    model = sequence_model(charset, renderer, recipe.channels, recipe.hidden, recipe.lstm_layers, pre)
    if resumed is not None:
        model.load_state_dict(resumed["state_dict"])
    else:
        for note in start_from(model, charset, recipe.init):
            if dist_.main:
                log(note)
    train = synthetic_loader(renderer, charset, pre, recipe.batch_size,
                             FreshSampler(recipe.epoch_samples // dist_.world, dist_.rank, dist_.world),
                             dist_.device.type == "cuda", workers, recipe.seed, config.x_spread)
    val_set = SynthCaptchas(make_renderer(recipe.seed + VAL_SEED_OFFSET), charset, pre, cache=config.val_samples)
    val = DataLoader(torch.utils.data.Subset(val_set, list(range(dist_.rank, len(val_set), dist_.world))),
                     batch_size=256, collate_fn=collate_ctc)
    views = f", each trained on in {recipe.views} views" if recipe.views > 1 else ""
    widths = f", drawn {recipe.x_scale / config.x_spread:.3g}-{recipe.x_scale * config.x_spread:.3g}x as wide" \
        if config.x_spread != 1 else ""
    if dist_.main:
        log(f"sequence stage: {len(charset)} characters, {recipe.epochs} epochs of {recipe.epoch_samples} images"
            f"{views}{widths}, val {len(val_set)}, device {dist_.device}, processes {dist_.world}")
    task = ctc_task(charset, pre, recipe.views, recipe.seed + dist_.rank)
    if run_epochs(model, task, (train, val), recipe, dist_, saver, resumed, progress) != 0:
        return None
    final = out / "pretrained.pt"
    if dist_.main:
        shutil.copyfile(saver.best_path, final)
        print(f"wrote {final} (best val epoch of {saver.best_path})")
    return final


def check_epoch(epoch_samples: int, batch_size: int, processes: int) -> None:
    """An epoch of the sequence stage must give every process at least one whole batch (a part
    batch is dropped, so a smaller epoch would train on nothing)."""
    if epoch_samples // processes < batch_size:
        each = f" for each of {processes} processes" if processes > 1 else ""
        raise OptionError(f"--epoch-samples {epoch_samples}: less than one batch of {batch_size}{each}; "
                          f"give at least {batch_size * processes} or a smaller --batch-size")


# ----- a run -------------------------------------------------------------------------------------------
def resumed_settings(config: PretrainConfig, out: Path, given: Collection[str]) -> PretrainConfig:
    """The settings a resumed run goes on with: those it started with (``OUT/pretrain.json``), with
    the command's epochs and views where it gives them. A run from before that file was kept goes on
    with the command's settings, its sequence stage checked against its last checkpoint as ever.

    Raises:
        OptionError: the command gives another setting that differs from the run's own.
    """
    path = out / SETTINGS_FILE
    if not path.exists():
        return config
    saved = json.loads(path.read_text())
    stored = PretrainConfig(**{f.name: saved[f.name] for f in fields(PretrainConfig) if f.name in saved})
    clashes = [f"--{name.replace('_', '-')} {getattr(config, name)!r} (the run has {getattr(stored, name)!r})"
               for name in sorted(given) if name not in RESUME_CHANGES and hasattr(stored, name)
               and getattr(config, name) != getattr(stored, name)]
    if clashes:
        raise OptionError(f"--resume keeps the run's settings ({path}), but these differ: {'; '.join(clashes)}; "
                          "drop them, or start a new run in another --out")
    return replace(stored, **{name: getattr(config, name) for name in RESUME_CHANGES if name in given})


def check_paths(config: PretrainConfig, out: Path, resume: bool) -> None:
    """Every path the run needs, checked before the long loads."""
    for option, value in (("--glyphs", config.glyphs), ("--val-glyphs", config.val_glyphs)):
        if value and not Path(value).exists():
            raise OptionError(f"{option} {value}: no such folder or archive")
    if config.init and config.init not in (*MODELS, "scratch") and not Path(config.init).exists():
        raise OptionError(f"--init {config.init}: no such checkpoint")
    check_out_folder(out)
    if config.height % 16:
        raise OptionError(f"--height {config.height}: the backbone needs a multiple of 16 (e.g. 32)")
    if "sequence" in config.chosen_stages() and config.height % (16 * FEATURE_ROWS):
        raise OptionError(f"--height {config.height}: the sequence stage's model needs a multiple of "
                          f"{16 * FEATURE_ROWS} (e.g. 32 or 64)")
    if resume and not (out / "sequence" / "last.pt").exists():
        raise OptionError(f"--resume: {out / 'sequence' / 'last.pt'} does not exist; start without --resume")
    check_sequence_input(config)


def check_sequence_input(config: PretrainConfig) -> None:
    """``--sequence-width``, ``--x-scale`` and ``--x-spread``, checked before any work."""
    width = config.sequence_width
    if width is not None and (width < config.height or width % PIXELS_PER_FRAME):
        raise OptionError(f"--sequence-width {width}: give a multiple of {PIXELS_PER_FRAME} at least --height "
                          f"({config.height}), e.g. {SEQUENCE_ASPECT * config.height} (the default) or "
                          f"{6 * config.height}")
    if not 0.25 <= config.x_scale <= 4:
        raise OptionError(f"--x-scale {config.x_scale:g}: give a factor from 0.25 to 4 (1: as drawn)")
    if not 1 <= config.x_spread <= 4:
        raise OptionError(f"--x-spread {config.x_spread:g}: give a factor from 1 (every image at --x-scale) to 4")
    if config.x_scale / config.x_spread < 0.1:  # the narrowest drawing an input takes
        raise OptionError(f"--x-scale {config.x_scale:g} with --x-spread {config.x_spread:g} draws images "
                          f"{config.x_scale / config.x_spread:.3g} times as wide: keep --x-scale / --x-spread at 0.1 or more")


def pretrain(config: PretrainConfig = PretrainConfig(), out: str | Path = "runs/pretrain", *, resume: bool = False,
             device: str = "auto", workers: int | None = None, threads: int = 0, progress: bool = True,
             given: Collection[str] | None = None) -> int:
    """Run the stages of ``config`` into ``out``; returns 0, or 130 when interrupted.

    Args:
        resume: continue the sequence stage in ``out/sequence`` with its saved settings.
        workers: processes rendering images (None: 1 on the CPU; on a GPU all cores but two).
        given: the settings the caller chose (None: those that differ from the defaults): a resumed
            run refuses a chosen setting that differs from its own, and a run from ``init`` takes
            the start model's size unless it is chosen.
    """
    out = Path(out)
    check_paths(config, out, resume)
    given = config.given() if given is None else set(given)
    if resume:
        config = resumed_settings(config, out, given)
    stages = config.chosen_stages()
    dist_ = Dist(device)
    return dist_.run(lambda: _pretrain(config, stages, out, dist_, resume, workers, threads, progress, given))


def _pretrain(config: PretrainConfig, stages: list[str], out: Path, dist_: Dist, resume: bool, workers: int | None,
              threads: int, progress: bool, given: set[str]) -> int:
    """:func:`pretrain` once its processes are joined up: the stages in order."""
    if dist_.device.type == "cpu":
        torch.set_num_threads(threads or default_threads())
    if workers is None:
        workers = default_workers(dist_.device.type == "cuda", cpu=1)
    backbone = out / "backbone.pt" if "glyph" in stages else None
    if "sequence" in stages and not resume:  # before the glyph stage's work, not after it
        check_epoch(config.epoch_samples, config.batch_size, dist_.world)
    if dist_.main:  # a resume rewrites it: the epochs or views it was given hold for the next resume too
        settings = json.dumps(config.to_dict(), indent=1)
        atomic_write(out / SETTINGS_FILE, lambda tmp: Path(tmp).write_text(settings + "\n"))
    if backbone is not None and not resume:
        done = True
        if dist_.main:  # one process trains the glyph stage; the others wait for its backbone
            out.mkdir(parents=True, exist_ok=True)
            done = glyph_stage(config, out, dist_, workers, progress) is not None
        if dist_.sum([float(done)])[0] < dist_.world:  # waits for it, and tells every process how it went
            return INTERRUPTED
    elif backbone is not None:
        load_checkpoint(backbone, kind="glyph")
    if "sequence" not in stages:
        return 0
    finished = sequence_stage(config, out, backbone, dist_, resume=resume, given=given, workers=workers,
                              progress=progress)
    return 0 if finished is not None else INTERRUPTED
