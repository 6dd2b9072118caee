"""The model's input, chosen from the training images: height, width and gray or colour.

    from crnn_captcha.geometry import choose_input
    choice = choose_input([s.path for s in samples], longest_label=6)
    choice.height, choice.width, choice.channels, choice.why

The rules, kept simple so a user can predict them:

- **Height**: 32 for images up to 56 px high (the captcha v2 images are 50), 64 for taller ones:
  small enough to be fast, large enough that characters keep their strokes (trained on 1,000
  ImageCaptcha images of 160x60, models read 84.1-86.7% of the test set at 32 px, 93.6-95.0% at 64).
- **Width**: the height times the typical width/height ratio, rounded to a multiple of 4, so a
  typical image is scaled, not squashed; an image of another shape is padded with its border colour.
  Widened where needed so the model has at least 2.5 frames (4 px each) per character of the longest
  label (CTC needs 2L-1 frames for a label of L characters with repeats).
- **Colour**: read RGB when the images hold colour that gray would lose: when, in the typical
  image, the spread of one colour channel is clearly larger than the spread of gray values (text and
  background of similar brightness but different hue). Gray otherwise, including colour images whose
  text stands out in brightness anyway.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .images import ImageInput, load_image

MIN_HEIGHT, MAX_HEIGHT = 32, 64
#: Images up to this height are read at MIN_HEIGHT, taller ones at MAX_HEIGHT.
SMALL_IMAGE = 56
FRAMES_PER_CHAR = 2.5
#: Colour is read when a channel's spread is this many times the gray spread in the typical image.
COLOUR_GAIN = 1.4


@dataclass(frozen=True)
class InputChoice:
    """What :func:`choose_input` chose, and why (one line for the log)."""

    height: int
    width: int
    channels: int
    why: str
    aspect: float = 4.0  # the typical image's width / height


def spreads(rgb: np.ndarray) -> tuple[float, float]:
    """(gray spread, largest channel spread) of an RGB image: the 5th to 95th percentile range of
    Rec.601 luma and of each of R, G and B."""
    x = rgb.reshape(-1, 3).astype(np.float32)
    luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
    lo, hi = np.percentile(luma, [5, 95])
    chan = np.percentile(x, [5, 95], axis=0)
    return float(hi - lo), float((chan[1] - chan[0]).max())


def choose_input(images: Sequence[ImageInput], longest_label: int, sample: int = 200, seed: int = 0) -> InputChoice:
    """Choose the input size and colour from (up to ``sample`` of) the training images."""
    pool = list(images)
    picked = random.Random(seed).sample(pool, min(sample, len(pool)))
    shapes, gains, chroma = [], [], []
    for src in picked:
        rgb = load_image(src, color=True)
        shapes.append(rgb.shape[:2])
        gray_spread, channel_spread = spreads(rgb)
        gains.append(channel_spread / max(gray_spread, 1.0))
        chroma.append(float(np.abs(rgb.astype(np.int16) - rgb.mean(axis=2, keepdims=True)).mean()))
    h = float(np.median([s[0] for s in shapes]))
    aspect = float(np.median([s[1] / s[0] for s in shapes]))
    height = MIN_HEIGHT if h <= SMALL_IMAGE else MAX_HEIGHT
    width = 4 * max(1, round(height * aspect / 4))
    need = 4 * math.ceil(FRAMES_PER_CHAR * longest_label)
    widened = width < need
    width = max(width, need)
    if widened:
        longest_label_note = f" (a {longest_label}-character label needs {need} px)"
    else:
        longest_label_note = ""
    gain, colour_level = float(np.median(gains)), float(np.median(chroma))
    colour = colour_level >= 2.0 and gain >= COLOUR_GAIN
    why = (f"typical image {round(h * aspect)}x{round(h)} (width x height, median of {len(picked)}); "
           f"height {height} ({MIN_HEIGHT} for images up to {SMALL_IMAGE} px high, else {MAX_HEIGHT}); width {width} keeps the ratio "
           f"{aspect:.2f}" + (f", widened to {FRAMES_PER_CHAR} frames per character{longest_label_note}" if widened else "")
           + "; " + (f"colour: a channel spreads {gain:.1f}x as far as gray" if colour else
                     ("gray: no colour in the images" if colour_level < 2.0 else
                      f"gray: brightness alone separates text from background (channel/gray spread {gain:.1f})")))
    return InputChoice(height, width, 3 if colour else 1, why, aspect)
