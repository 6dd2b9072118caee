"""Loading a run's samples, building its model, and the data loaders (with their resumable state)."""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

from ..data.augment import Augmenter
from ..data.datasets import CaptchaDataset, collate_ctc
from ..data.labels import Sample, load_samples, overlap
from ..errors import CaptchaWarning, OptionError
from ..read.charset import Charset
from ..read.checkpoint import build_crnn
from ..read.images import PreprocessConfig
from ..read.model import CRNN, FEATURE_ROWS, CRNNConfig
from .recipe import TrainConfig, check_labels, field_charset
from .runtime import Dist, leave_interrupts_to_main, log
from .transfer import start_from


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
        charset = field_charset(config.charset) if config.charset is not None else \
            Charset.from_labels(s.label for s in samples)
        try:
            pre = PreprocessConfig(height=config.height, width=config.width, channels=3 if config.color == "rgb" else 1,
                                   resize=config.resize, max_aspect_error=config.max_aspect_error,
                                   x_scale=config.x_scale, frames=config.frames)
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


def _worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    ds = info.dataset.dataset if isinstance(info.dataset, Subset) else info.dataset
    ds.reseed(info.seed % 2**31)  # each worker its own splicing and augmentation stream
    leave_interrupts_to_main()


def build_loaders(config: TrainConfig, train: list[Sample], val: list[Sample], charset: Charset,
                  pre: PreprocessConfig, dist_: Dist, workers: int, progress: bool) -> tuple[DataLoader, DataLoader]:
    """Shuffled, augmented training batches (``epoch_samples`` a pass) and plain validation batches.

    Under DDP every val sample is read exactly once: process r takes r, r+W, r+2W, ... (no padding,
    unlike the default distributed sampler, which would count some samples twice).
    """
    seed = config.seed + dist_.rank
    augment = Augmenter(config.aug_strength, config.strike_line, seed=seed) if config.aug_strength > 0 else None
    train_ds = CaptchaDataset(train, charset, pre, augment, splice_prob=config.splice_prob, seed=seed, progress=progress)
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


