"""The model's input, chosen from the training images: height, width and gray or colour.

    from crnn_captcha.training.input_choice import choose_input
    choice = choose_input([s.path for s in samples], longest_label=6)
    choice.height, choice.width, choice.channels, choice.why

The rules, kept simple so a user can predict them:

- **Height**: 32 for images up to 56 px high (the captcha v2 images are 50), 64 for taller ones:
  small enough to be fast, large enough that characters of taller images keep their strokes
  (measured in docs/results.md).
- **Width**: the height times the typical width/height ratio, rounded to a multiple of 4, so a
  typical image is scaled, not squashed; an image of another shape is padded with its border colour.
  Widened where that leaves a character of the longest label narrower than 5/6 of the text's
  height (the rows holding the middle 90% of the ink), and the text stretched across to fill it
  (training's ``x_scale``): generators squeeze characters together, and a squeezed pair needs
  frames (4 px each) to be read as two; and never under 2.5 frames a character (CTC needs 2L-1 for
  a label of L characters with repeats). Characters drawn at their own width are about as wide as
  5/6 of the text's height or wider, so they are left as they are. The widening read better than
  the plain ratio on squeezed text (docs/results.md, "Recipe changes measured").
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

from ..data.positions import ink
from ..read.images import ImageInput, load_image
from ..read.model import PIXELS_PER_FRAME

MIN_HEIGHT, MAX_HEIGHT = 32, 64
#: Images up to this height are read at MIN_HEIGHT, taller ones at MAX_HEIGHT.
SMALL_IMAGE = 56
#: The least width of the input, per character of the longest label, as a share of the text's height.
CHAR_WIDTH = 5 / 6
#: And at least this many frames a character, whatever the text's height (CTC needs
#: 2L-1 frames for a label of L characters with repeats).
FRAMES_PER_CHAR = 2.5
#: A widened input's width is a multiple of this, so that the sample's noise in the text's height
#: seldom moves it.
WIDEN_STEP = 16
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
    x_scale: float = 1.0  # how far the typical image is stretched across to fill a widened width


def spreads(rgb: np.ndarray) -> tuple[float, float]:
    """(gray spread, largest channel spread) of an RGB image: the 5th to 95th percentile range of
    Rec.601 luma and of each of R, G and B."""
    x = rgb.reshape(-1, 3).astype(np.float32)
    luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
    lo, hi = np.percentile(luma, [5, 95])
    chan = np.percentile(x, [5, 95], axis=0)
    return float(hi - lo), float((chan[1] - chan[0]).max())


def text_height(rgb: np.ndarray) -> float:
    """The share of the image's height that holds its text: the rows between the 5th and 95th
    percentile of the ink (a thin line or scattered dots move it little); 1.0 for an image without ink."""
    rows = ink(rgb).sum(axis=1)
    if rows.sum() == 0:
        return 1.0
    share = np.cumsum(rows) / rows.sum()
    top, bottom = np.searchsorted(share, 0.05), np.searchsorted(share, 0.95)
    return float(bottom - top + 1) / rgb.shape[0]


def choose_input(images: Sequence[ImageInput], longest_label: int, sample: int = 200, seed: int = 0,
                 frames: str = "first") -> InputChoice:
    """Choose the input size and colour from (up to ``sample`` of) the training images, an animated
    one's frames fused as ``frames`` says."""
    pool = list(images)
    picked = random.Random(seed).sample(pool, min(sample, len(pool)))
    shapes, gains, chroma, texts = [], [], [], []
    for src in picked:
        rgb = load_image(src, color=True, frames=frames)
        shapes.append(rgb.shape[:2])
        texts.append(text_height(rgb))
        gray_spread, channel_spread = spreads(rgb)
        gains.append(channel_spread / max(gray_spread, 1.0))
        chroma.append(float(np.abs(rgb.astype(np.int16) - rgb.mean(axis=2, keepdims=True)).mean()))
    h = float(np.median([s[0] for s in shapes]))
    aspect = float(np.median([s[1] / s[0] for s in shapes]))
    height = MIN_HEIGHT if h <= SMALL_IMAGE else MAX_HEIGHT
    width = PIXELS_PER_FRAME * max(1, round(height * aspect / PIXELS_PER_FRAME))
    text = float(np.median(texts))
    need = max(WIDEN_STEP * math.ceil(CHAR_WIDTH * text * height * longest_label / WIDEN_STEP),
               PIXELS_PER_FRAME * math.ceil(FRAMES_PER_CHAR * longest_label))
    x_scale = 1.0
    if width >= need:
        width_why = f"width {width} keeps the ratio {aspect:.2f}"
    else:
        x_scale = round(need / (height * aspect), 3)
        width_why = (f"width {need}, not the {width} of the ratio {aspect:.2f}: each character of a {longest_label}-character "
                     f"label gets 5/6 of the text's height ({text:.0%} of the image's) and {FRAMES_PER_CHAR} frames or "
                     f"more; the text is stretched {x_scale:.2f}x across")
        width = need
    gain, colour_level = float(np.median(gains)), float(np.median(chroma))
    colour = colour_level >= 2.0 and gain >= COLOUR_GAIN
    why = (f"typical image {round(h * aspect)}x{round(h)} (width x height, median of {len(picked)}); "
           f"height {height} ({MIN_HEIGHT} for images up to {SMALL_IMAGE} px high, else {MAX_HEIGHT}); {width_why}"
           + "; " + (f"colour: a channel spreads {gain:.1f}x as far as gray" if colour else
                     ("gray: no colour in the images" if colour_level < 2.0 else
                      f"gray: brightness alone separates text from background (channel/gray spread {gain:.1f})")))
    return InputChoice(height, width, 3 if colour else 1, why, aspect, x_scale)
