"""How an animated captcha's frames become the picture the model reads, chosen from the training images.

    from crnn_captcha.training.frame_choice import choose_frames
    how, why = choose_frames(samples, init="pretrained")

Still images look the same under every fusion, so a set of stills stores :data:`STILLS` (the
reader then tries two fusions on an animated image and keeps the more confident reading). For
animated images the fusions differ in what they keep: "median" drops what moves (noise drawn anew
each frame) and loses what shows in few frames; "ink" keeps every mark any frame shows (characters
that fade in and out, one character a frame) and noise as well; "mean" lies between; "first" is the
first frame alone. Which one a family needs is measured, not guessed: each fusion of up to 200
animated training images is read by the start model (the pretrained reader, or the checkpoint
``--init`` names), and the one whose pictures give the lowest CTC loss against their labels wins.
A model that reads a picture well before training is one whose picture holds the text.
"""
from __future__ import annotations

import random
from dataclasses import replace
from typing import Sequence

import numpy as np
import torch

from ..data.labels import Sample
from ..errors import CaptchaError
from ..read.checkpoint import build_crnn, load_checkpoint
from ..read.ctc import ctc_loss
from ..read.frames import FRAME_FUSIONS, fuse_frames
from ..read.images import PreprocessConfig, count_frames, load_frames, resize_image, to_array
from .transfer import source_path

#: The frames stored for a model trained on stills: an animated image given to it later is read as
#: the fusions that keep every mark ("ink") and that drop what moves ("median"), and the more
#: confident reading kept (docs/results.md, "Animated captchas").
STILLS = "confident"
#: Without a start model to measure with, animated images are read with this fusion.
UNMEASURED = "ink"
#: The least number of animated training images (whose labels the start model can spell) to measure on.
MIN_MEASURED = 10


def is_animated(path) -> bool:
    """Whether the image at ``path`` holds more than one frame (False where it cannot be read)."""
    try:
        return count_frames(path) > 1
    except CaptchaError:  # reported where training reads its images
        return False


def choose_frames(samples: Sequence[Sample], init: str, sample: int = 200, seed: int = 0) -> tuple[str, str]:
    """(the fusion, one line saying why) for training images ``samples`` and a start ``init``
    (a shipped model's name, "scratch" or a checkpoint path)."""
    pool = list(samples)
    picked = random.Random(seed).sample(pool, min(sample, len(pool)))
    animated = [s for s in picked if is_animated(s.path)]
    if not animated:
        return STILLS, f"frames: {STILLS} (the training images are stills; an animated image read later is read " \
                       "with every mark its frames show and with what stays in them, the more confident reading kept)"
    share = f"{len(animated)} of {len(picked)} sampled training images are animated"
    path = source_path(init)
    ckpt = load_checkpoint(path, kind=None) if path is not None else None
    if ckpt is None or ckpt.get("kind", "crnn") != "crnn":
        return UNMEASURED, f"frames: {UNMEASURED} ({share}; no start model to measure the fusions with)"
    model, charset, pre = build_crnn(ckpt, path)
    model.eval()
    items = [(s, _spelt(s.label, charset)) for s in animated]
    items = [(s, label) for s, label in items if label is not None]
    if len(items) < MIN_MEASURED:
        return UNMEASURED, (f"frames: {UNMEASURED} ({share}; the start model's alphabet spells only {len(items)} of "
                            "their labels, too few to measure the fusions on)")
    pictures: dict[str, list[np.ndarray]] = {how: [] for how in FRAME_FUSIONS}
    targets, any_shape = [], _any_shape(pre)
    for s, label in items:
        try:
            frames = load_frames(s.path, str(s.path), color=pre.color)
        except CaptchaError:
            continue  # reported where training reads its images
        targets.append(charset.encode(label))
        for how in FRAME_FUSIONS:
            pictures[how].append(to_array(resize_image(fuse_frames(frames, how), any_shape), pre))
    if len(targets) < MIN_MEASURED:  # the rest could not be read
        return UNMEASURED, (f"frames: {UNMEASURED} ({share}; only {len(targets)} of them could be read, too few to "
                            "measure the fusions on)")
    losses = {how: _mean_loss(model, np.stack(x), targets) for how, x in pictures.items()}
    best = min(FRAME_FUSIONS, key=lambda how: losses[how])  # ties go to the earlier, simpler fusion
    listed = ", ".join(f"{how} {losses[how]:.2f}" for how in FRAME_FUSIONS)
    return best, (f"frames: {best} ({share}; the start model's CTC loss on {len(targets)} of them under each "
                  f"fusion: {listed}; the lowest reads best)")


def _spelt(label: str, charset) -> str | None:
    """``label`` as the start model's alphabet writes it (in the other case where only that one is
    there), or None."""
    for text in (label, label.lower(), label.upper()):
        if not charset.unknown(text):
            return text
    return None


def _any_shape(pre: PreprocessConfig) -> PreprocessConfig:
    return replace(pre, max_aspect_error=0.0)  # the start model was made for other captchas' shapes


@torch.no_grad()
def _mean_loss(model, x: np.ndarray, targets: list[list[int]], batch: int = 64) -> float:
    total = 0.0
    for at in range(0, len(targets), batch):
        logits = model(torch.from_numpy(x[at:at + batch]))
        part = targets[at:at + batch]
        flat = torch.tensor([c for t in part for c in t], dtype=torch.long)
        total += float(ctc_loss(logits, flat, torch.tensor([len(t) for t in part]), reduction="sum"))
    return total / len(targets)
