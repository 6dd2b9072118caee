"""Make labelled development captcha families: TEST data for the training recipe, never pretraining data.

    python scripts/make_family.py --list
    python scripts/make_family.py --family all                      # 5000 / 500 / 1000 images each
    python scripts/make_family.py --family ic36 --family colour --train 250 --val 100 --test 200
    python scripts/make_family.py --family warped --out /tmp/families --seed 1 --force

Each family goes to <out>/<family>/ (default out: data/families, git-ignored):

    images/<index>.png|.gif  index-named (labels are case-sensitive and repeat): train, then val, then test
    train.csv val.csv test.csv    manifests with the header path,label (paths relative to the folder)
    train_250.csv train_1000.csv  the first 250 / 1000 rows of train.csv (all of it when train is smaller)
    family.json               description, size, alphabet, lengths, seed, counts, generator and version

Every image has its own seed, drawn from (family, split, index in the split, --seed), so the splits never
share a seed, the output does not depend on the worker count, and any image can be made again alone.
The same seed, fonts and package versions give byte-identical PNGs.

Families (--list prints them; family.json holds the full description):
    ic36    captcha.ImageCaptcha 160x60 RGB, 0-9a-z, length 4-6
    ic62    captcha.ImageCaptcha 200x70 RGB, 0-9A-Za-z (case-sensitive), length 6
    colour  own PIL drawing, 256x144 RGBA, 4 characters of 0-9A-Z less 0 1 I O; each differs from the colour
            under it strongly in hue but by < 10/255 in Rec.601 luma (a grayscale copy loses the text)
    fade, perchar, movenoise    own PIL drawing, 160x60 animated GIFs, 0-9a-z less look-alikes, length 4-6:
            characters fading in and out so no frame shows them all; one character per frame; still text
            under noise drawn anew in each frame. Each has a <name>_still family: the same images as
            still PNGs (the same labels and drawing, every character shown; for movenoise, one frame)
    warped  wheezy.captcha 240x75 RGB: per-character perspective warp, rotation and offset, a bezier curve
            and noise dots; 4-5 characters of 0-9a-z less 0 1 i l o

Options: --subsets N [N ...] sets the train_<N>.csv sizes; --workers 1|2 processes (default 2); --force
replaces an earlier run's images, manifests and family.json; bad options exit 2 with one `error:` line.
"""
from __future__ import annotations

import argparse
import colorsys
import csv
import hashlib
import json
import multiprocessing
import random
import shutil
import string
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "data" / "families"
SPLITS = ("train", "val", "test")
DEFAULT_COUNTS = {"train": 5000, "val": 500, "test": 1000}
DEFAULT_SUBSETS = (250, 1000)
MAX_WORKERS = 2
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
             Path("/usr/share/fonts/TTF"), Path("/usr/local/share/fonts"))
BOLD_FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSansCondensed-Bold.ttf", "DejaVuSerif-Bold.ttf",
              "DejaVuSansMono-Bold.ttf")
#: 0-9 and A-Z without the look-alike pairs 0/O and 1/I.
UPPER_NO_CONFUSABLES = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
#: 0-9 and a-z without 0/o and 1/l/i.
LOWER_NO_CONFUSABLES = "23456789abcdefghjkmnpqrstuvwxyz"
#: The colour family: largest Rec.601 luma gap between a character and the background under it (0-255).
LUMA_GAP = 10.0


@dataclass(frozen=True)
class Family:
    name: str
    summary: str
    description: str
    size: tuple[int, int]
    mode: str
    alphabet: str
    lengths: tuple[int, int]
    package: str  # the distribution whose code draws the images
    render: Callable[[random.Random, str], "Image.Image | list[Image.Image]"]
    animated: bool = False  # render gives frames, saved as an animated GIF
    seeds_of: str = ""  # draw with another family's seeds: a still family's image i is its animated one's, still

    @property
    def suffix(self) -> str:
        return ".gif" if self.animated else ".png"


class UsageError(Exception):
    """A bad option: reported as one `error: ...` line and exit status 2."""


# ----------------------------------------------------------------------------- seeding and fonts

def image_seed(family: str, split: str, index: int, seed: int) -> int:
    """The seed of one image; distinct for every (family, split, index, seed)."""
    digest = hashlib.sha256(f"{family}|{split}|{index}|{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class SeededSource(random.Random):
    """A seeded stand-in for the `secrets` / `random` modules a generator package draws from."""

    def randbelow(self, n: int) -> int:
        return self.randrange(n)

    randbits = random.Random.getrandbits


@contextmanager
def seeded_module(module, rng: SeededSource):
    """Point `module.secrets` and `module.random` (where present) at `rng` for the duration."""
    saved = {name: getattr(module, name) for name in ("secrets", "random") if hasattr(module, name)}
    try:
        for name in saved:
            setattr(module, name, rng)
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def font_paths(names: tuple[str, ...] = BOLD_FONTS) -> list[Path]:
    """The named system fonts that exist here (possibly none)."""
    found = []
    for name in names:
        path = next((d / name for d in FONT_DIRS if (d / name).is_file()), None)
        if path is not None:
            found.append(path)
    return found


class FontBytes:
    """A file-like font that can be read again and again (PIL's truetype reads what it is given)."""

    def __init__(self, data: bytes):
        self.data = data

    def read(self, *_args) -> bytes:
        return self.data


def font_sources() -> list:
    """System font paths, or PIL's built-in scalable font when none is installed."""
    paths = font_paths()
    if paths:
        return [str(p) for p in paths]
    return [FontBytes(ImageFont.load_default(size=40).font_bytes)]


def font_names() -> list[str]:
    return [p.name for p in font_paths()] or ["PIL load_default (Aileron Regular)"]


@lru_cache(maxsize=None)
def loaded_fonts(size: int) -> tuple:
    fonts = [ImageFont.truetype(str(p), size) for p in font_paths()]
    return tuple(fonts) or (ImageFont.load_default(size=size),)


# ----------------------------------------------------------------------------- ImageCaptcha (ic36, ic62)

@lru_cache(maxsize=None)
def image_captcha(width: int, height: int):
    from captcha.image import ImageCaptcha

    return ImageCaptcha(width=width, height=height)


def render_image_captcha(rng: random.Random, text: str, size: tuple[int, int]) -> Image.Image:
    """captcha.ImageCaptcha with its randomness (module `secrets`, or `random` in old versions) seeded."""
    import captcha.image

    source = SeededSource(rng.getrandbits(64))
    with seeded_module(captcha.image, source):
        image = image_captcha(*size).generate_image(text)
    return image.convert("RGB")


# ----------------------------------------------------------------------------- colour (own drawing)

def luma(rgb) -> float:
    """Rec.601 luma of an 8-bit RGB colour (0-255)."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def colour_at_luma(hue: float, saturation: float, target: float):
    """The RGB colour of this hue and saturation whose luma is `target`, or None outside the gamut."""
    unit = colorsys.hsv_to_rgb(hue, saturation, 1.0)
    value = target / (255.0 * luma(unit))
    if value > 1.0:
        return None
    return tuple(int(round(255 * value * c)) for c in unit)


def matched_colour(rng: random.Random, background) -> tuple[int, int, int]:
    """A colour of strongly different hue (120-240 degrees away) but luma within LUMA_GAP of `background`."""
    hue = colorsys.rgb_to_hsv(*(c / 255 for c in background))[0]
    for _ in range(1000):
        target = luma(background) + rng.uniform(-LUMA_GAP, LUMA_GAP)
        colour = colour_at_luma((hue + rng.uniform(1 / 3, 2 / 3)) % 1.0, rng.uniform(0.55, 1.0), target)
        if colour is not None and abs(luma(colour) - luma(background)) < LUMA_GAP:
            return colour
    raise RuntimeError(f"no luma-matched colour for {background}")


def colour_in_gamut(rng: random.Random, saturation: tuple[float, float], lumas: tuple[float, float]):
    """A colour of random hue, saturation in `saturation` and luma in `lumas`."""
    while True:
        colour = colour_at_luma(rng.random(), rng.uniform(*saturation), rng.uniform(*lumas))
        if colour is not None:
            return colour


def background_colour(rng: random.Random) -> tuple[int, int, int]:
    """A fairly saturated colour of middle luma (every hue can then match it)."""
    return colour_in_gamut(rng, (0.35, 0.85), (75, 165))


def glyph_mask(rng: random.Random, char: str, height: int, max_width: int) -> Image.Image:
    """An L mask of one character: a random bold font, rotated a little, scaled to `height` pixels."""
    font = rng.choice(loaded_fonts(96))
    left, top, right, bottom = font.getbbox(char)
    layer = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(layer).text((4 - left, 4 - top), char, font=font, fill=255)
    layer = layer.rotate(rng.uniform(-12, 12), Image.Resampling.BICUBIC, expand=True)
    layer = layer.crop(layer.getbbox())
    width = round(layer.width * height / layer.height * rng.uniform(0.85, 1.15))
    return layer.resize((max(1, min(width, max_width)), height), Image.Resampling.LANCZOS)


def colour_sample(rng: random.Random, text: str) -> tuple[Image.Image, Image.Image, list]:
    """The colour captcha of `text`: (RGBA image, L mask of the text, per-character boxes).

    Half the images put each character on its own coloured tile, half draw coloured characters on one
    background colour; either way each character's luma is within LUMA_GAP of the colour under it.
    """
    width, height = 256, 144
    margin, slot = 12, (256 - 2 * 12) / len(text)
    tiles = rng.random() < 0.5
    base = background_colour(rng)
    canvas = Image.new("RGB", (width, height), base)
    text_mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    boxes = []
    for i, char in enumerate(text):
        glyph = glyph_mask(rng, char, rng.randint(42, 52), int(slot) - 12)
        x_room = int(slot) - glyph.width
        x0 = round(margin + slot * i + rng.uniform(0.25, 0.75) * x_room)
        y0 = round((height - glyph.height) / 2 + rng.uniform(-6, 6))
        under = base
        if tiles:
            under = background_colour(rng)
            pad = rng.randint(5, 9)
            draw.rounded_rectangle((round(margin + slot * i) + 1, y0 - pad, round(margin + slot * (i + 1)) - 2,
                                    y0 + glyph.height + pad), radius=rng.randint(0, 8), fill=under)
        boxes.append((x0, y0, x0 + glyph.width, y0 + glyph.height, char, under))
        canvas.paste(matched_colour(rng, under), boxes[-1][:4], glyph)
        text_mask.paste(glyph, (x0, y0), glyph)
    add_colour_noise(rng, canvas, base)
    return canvas.convert("RGBA"), text_mask, boxes


def add_colour_noise(rng: random.Random, canvas: Image.Image, background) -> None:
    """Light noise, in place: two or three thin arcs luma-matched to `background`, grey speckles on 3% of pixels."""
    draw = ImageDraw.Draw(canvas)
    w, h = canvas.size
    for _ in range(rng.randint(2, 3)):
        x0, y0 = rng.uniform(-w / 2, w / 2), rng.uniform(0, h / 2)
        box = (x0, y0, x0 + rng.uniform(w / 2, w * 1.5), y0 + rng.uniform(h / 3, h))
        draw.arc(box, rng.uniform(0, 360), rng.uniform(0, 360), fill=matched_colour(rng, background), width=2)
    # speckles, not grain on every pixel: dense grain made the PNGs 5x larger and 4x slower to write
    noise = np.random.default_rng(rng.getrandbits(64))
    pixels = np.asarray(canvas, dtype=np.float32).copy()
    speckled = noise.random((h, w)) < 0.03
    pixels[speckled] += noise.normal(0.0, 12.0, (int(speckled.sum()), 1)).astype(np.float32)
    canvas.paste(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"))


def render_colour(rng: random.Random, text: str) -> Image.Image:
    return colour_sample(rng, text)[0]


# ----------------------------------------------------------------------------- warped (wheezy.captcha)

class WheezyWarped:
    """wheezy.captcha's pipeline at 240x75 with per-image colours; build once per process."""

    def __init__(self):
        from wheezy.captcha import image as wz

        self.module = wz
        self.background = (255, 255, 255)
        self.ink = (0, 0, 0)
        self.draw = wz.captcha(width=240, height=75, drawings=[
            lambda image, _text: Image.new("RGB", image.size, self.background),
            wz.text(fonts=font_sources(), font_sizes=(44, 50, 56), color=lambda: self.ink,
                    drawings=[wz.warp(dx_factor=0.3, dy_factor=0.3), wz.rotate(angle=20), wz.offset()],
                    squeeze_factor=0.85),
            wz.curve(color=lambda: self.ink, width=3, number=5),
            wz.noise(number=40, color=lambda: self.ink, level=2),
            wz.smooth(),
        ])

    def __call__(self, rng: random.Random, text: str) -> Image.Image:
        source = SeededSource(rng.getrandbits(64))
        # wheezy pastes a glyph through its own luma x 1.97, so ink needs luma >= ~130 to be opaque
        self.background = colour_in_gamut(source, (0.0, 0.2), (225, 245))
        self.ink = colour_in_gamut(source, (0.4, 0.9), (130, 160))
        with seeded_module(self.module, source):
            return self.draw(text)


@lru_cache(maxsize=None)
def wheezy_warped() -> WheezyWarped:
    return WheezyWarped()


def render_warped(rng: random.Random, text: str) -> Image.Image:
    return wheezy_warped()(rng, text)


# ----------------------------------------------------------------------------- animated (own drawing)

#: The animated families' frame delay (ms) and frame count range.
FRAME_MS, FRAME_COUNT = 100, (8, 12)


def animated_scene(rng: random.Random, text: str) -> tuple[Image.Image, list[tuple[Image.Image, tuple, tuple]]]:
    """The still parts of an animated captcha: (background with its fixed noise, per character
    (mask, colour, top-left)); 160x60, bold DejaVu characters in dark colours on a pale background."""
    width, height = 160, 60
    background = colour_in_gamut(rng, (0.0, 0.25), (215, 245))
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    slot = (width - 16) / len(text)
    glyphs = []
    for i, char in enumerate(text):
        mask = glyph_mask(rng, char, rng.randint(26, 34), int(slot) + 4)
        x0 = round(8 + slot * i + rng.uniform(-0.2, 0.6) * max(0, slot - mask.width))
        y0 = round((height - mask.height) / 2 + rng.uniform(-6, 6))
        glyphs.append((mask, colour_in_gamut(rng, (0.4, 1.0), (40, 110)), (x0, y0)))
    for _ in range(rng.randint(1, 2)):  # thin arcs in a text colour, on every frame
        x0, y0 = rng.uniform(-40, 60), rng.uniform(0, 30)
        draw.arc((x0, y0, x0 + rng.uniform(80, 200), y0 + rng.uniform(20, 60)), rng.uniform(0, 360),
                 rng.uniform(0, 360), fill=rng.choice(glyphs)[1], width=1)
    for _ in range(60):  # dark speckles
        x, y = rng.randrange(width), rng.randrange(height)
        draw.point((x, y), fill=rng.choice(glyphs)[1])
    return canvas, glyphs


def draw_glyphs(canvas: Image.Image, glyphs: list, opacities: list[float]) -> Image.Image:
    """A copy of `canvas` with each glyph laid on at its opacity (0: not drawn)."""
    frame = canvas.copy()
    for (mask, colour, at), opacity in zip(glyphs, opacities):
        if opacity > 0.02:
            frame.paste(colour, (*at, at[0] + mask.width, at[1] + mask.height),
                        mask.point(lambda v, o=opacity: round(v * o)))
    return frame


def moving_noise(rng: random.Random, frame: Image.Image, colours: list) -> Image.Image:
    """`frame` under a layer of noise of its own: thick strokes and blots in the text's colours."""
    draw = ImageDraw.Draw(frame)
    w, h = frame.size
    for _ in range(rng.randint(4, 6)):
        points = [(rng.uniform(0, w), rng.uniform(0, h)) for _ in range(2)]
        draw.line(points, fill=rng.choice(colours), width=rng.randint(2, 3))
    for _ in range(rng.randint(10, 16)):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1.5, 3.5)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=rng.choice(colours))
    return frame


def render_fade(rng: random.Random, text: str, still: bool = False) -> "Image.Image | list[Image.Image]":
    """Each character fades in and out on its own phase (visible about a third of the frames), so no
    frame shows them all; the still shows every character."""
    canvas, glyphs = animated_scene(rng, text)
    if still:
        return draw_glyphs(canvas, glyphs, [1.0] * len(text))
    count = rng.randint(*FRAME_COUNT)
    phases = [rng.uniform(0, count) for _ in text]
    frames = []
    for f in range(count):
        opacities = []
        for phase in phases:
            distance = min(abs(f - phase), count - abs(f - phase)) / count  # 0 at the phase, 0.5 opposite
            opacities.append(min(1.0, max(0.0, (0.2 - distance) / 0.1)))  # full within 0.1, none beyond 0.2
        frames.append(draw_glyphs(canvas, glyphs, opacities))
    return frames


def render_perchar(rng: random.Random, text: str, still: bool = False) -> "Image.Image | list[Image.Image]":
    """One character per frame, in its place, after a frame with none; the still shows every character."""
    canvas, glyphs = animated_scene(rng, text)
    if still:
        return draw_glyphs(canvas, glyphs, [1.0] * len(text))
    return [canvas.copy()] + [draw_glyphs(canvas, glyphs, [float(i == k) for i in range(len(text))])
                              for k in range(len(text))]


def render_movenoise(rng: random.Random, text: str, still: bool = False) -> "Image.Image | list[Image.Image]":
    """Still text under a layer of heavy noise that is drawn anew in every frame; the still is one such
    frame."""
    canvas, glyphs = animated_scene(rng, text)
    text_frame = draw_glyphs(canvas, glyphs, [1.0] * len(text))
    colours = [g[1] for g in glyphs]
    if still:
        return moving_noise(rng, text_frame, colours)
    return [moving_noise(rng, text_frame.copy(), colours) for _ in range(rng.randint(*FRAME_COUNT))]


def animated_family(name: str, render: Callable, still: bool, short: str, what: str = "") -> "Family":
    kind = f"still PNG, the same design as {short}: every character shown at once" if still else \
        f"animated GIF, {FRAME_MS} ms a frame, {what}"
    return Family(name, f"own PIL drawing 160x60, {'still PNG of ' if still else 'GIF, '}{short}, length 4-6",
                  "Own PIL drawing, 160x60 RGB: bold DejaVu characters (26-34 px high, rotated +-12 degrees) in "
                  "dark colours of their own on a pale background, thin arcs and dark speckles; " + kind + ". "
                  "Alphabet 0-9a-z without 0, 1, i, l and o.",
                  (160, 60), "RGB", LOWER_NO_CONFUSABLES, (4, 6), "pillow", partial(render, still=still),
                  animated=not still, seeds_of=name.removesuffix("_still"))


# ----------------------------------------------------------------------------- the families

FAMILIES = {f.name: f for f in (
    Family("ic36", "captcha.ImageCaptcha 160x60, 0-9a-z, length 4-6",
           "The captcha package's ImageCaptcha (its bundled DroidSansMono font, random colours, per-character "
           "rotation and warp, noise dots and arc), 160x60 RGB, lowercase letters and digits, 4-6 characters.",
           (160, 60), "RGB", string.digits + string.ascii_lowercase, (4, 6), "captcha",
           partial(render_image_captcha, size=(160, 60))),
    Family("ic62", "captcha.ImageCaptcha 200x70, 0-9A-Za-z case-sensitive, length 6",
           "The captcha package's ImageCaptcha, 200x70 RGB, 62 case-sensitive symbols, 6 characters.",
           (200, 70), "RGB", string.digits + string.ascii_uppercase + string.ascii_lowercase, (6, 6), "captcha",
           partial(render_image_captcha, size=(200, 70))),
    Family("colour", f"own PIL drawing, RGBA 256x144, hue contrast but luma gap < {LUMA_GAP:g}, 4 chars",
           "Own PIL drawing, RGBA 256x144 (alpha always 255): 4 bold DejaVu characters, each about a third of "
           "the height, on their own coloured tiles or on one coloured background; every character differs "
           f"from the colour under it by 120-240 degrees of hue but by less than {LUMA_GAP:g}/255 in Rec.601 "
           "luma, so a grayscale copy loses the text; thin arcs luma-matched to the background, speckles on "
           "3% of pixels. Alphabet 0-9A-Z without 0, 1, I and O.",
           (256, 144), "RGBA", UPPER_NO_CONFUSABLES, (4, 4), "pillow", render_colour),
    Family("warped", "wheezy.captcha 240x75, warped characters, curve and dots, length 4-5",
           "wheezy.captcha's pipeline, 240x75 RGB: bold DejaVu characters each perspective-warped, rotated "
           "(+-20 degrees) and offset, overlapping; a bezier curve and noise dots in the ink colour; pale "
           "random background. Alphabet 0-9a-z without 0, 1, i, l and o.",
           (240, 75), "RGB", LOWER_NO_CONFUSABLES, (4, 5), "wheezy.captcha", render_warped),
    animated_family("fade", render_fade, False, "fading characters", "8-12 frames; each character fades in and out on a phase of "
                    "its own, fully drawn for a fifth of the frames and gone for three fifths, so no frame shows them all"),
    animated_family("fade_still", render_fade, True, "fade"),
    animated_family("perchar", render_perchar, False, "one character per frame", "one frame with no character, then one frame per character "
                    "(that character only, in its place)"),
    animated_family("perchar_still", render_perchar, True, "perchar"),
    animated_family("movenoise", render_movenoise, False, "noise moving over still text", "8-12 frames of the same text under noise (4-6 thick "
                    "strokes and 10-16 blots in the text's colours) drawn anew in every frame"),
    animated_family("movenoise_still", render_movenoise, True, "movenoise (one of its frames)"),
)}


def make_label(rng: random.Random, family: Family) -> str:
    length = rng.randint(*family.lengths)
    return "".join(rng.choice(family.alphabet) for _ in range(length))


def make_image(family: Family, split: str, index: int, seed: int) -> tuple[str, Image.Image]:
    """The label and image of one sample; a pure function of its arguments."""
    rng = random.Random(image_seed(family.seeds_of or family.name, split, index, seed))
    label = make_label(rng, family)
    image = family.render(rng, label)
    for frame in (image if isinstance(image, list) else [image]):
        if frame.size != family.size or frame.mode != family.mode:
            raise RuntimeError(f"{family.name}: made a {frame.mode} {frame.size} image, not {family.mode} {family.size}")
    return label, image


def write_one(task: tuple) -> tuple[str, str]:
    """Worker: make one image, save it as <images>/<name>, return (name, label)."""
    family_name, split, index, seed, images_dir, name = task
    label, image = make_image(FAMILIES[family_name], split, index, seed)
    if isinstance(image, list):  # every frame kept whole (no frame differencing), shown once each in a loop
        image[0].save(Path(images_dir) / name, format="GIF", save_all=True, append_images=image[1:],
                      duration=FRAME_MS, loop=0, disposal=1, optimize=False)
    else:
        image.save(Path(images_dir) / name, format="PNG")
    return name, label


# ----------------------------------------------------------------------------- writing a family

def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def plan_tasks(family: Family, counts: dict, seed: int, images_dir: Path) -> list[tuple]:
    """One task per image; file names count on across train, val and test."""
    digits = max(5, len(str(sum(counts.values()) - 1)))
    tasks, start = [], 0
    for split in SPLITS:
        tasks += [(family.name, split, i, seed, str(images_dir), f"{start + i:0{digits}d}{family.suffix}")
                  for i in range(counts[split])]
        start += counts[split]
    return tasks


def run_tasks(tasks: list[tuple], workers: int) -> list[tuple[str, str]]:
    """(name, label) per task, in task order, made by `workers` processes (1: this one)."""
    if workers <= 1 or len(tasks) < 2:
        return [write_one(t) for t in tasks]
    # spawn, not fork: the caller may hold threads (torch) that a forked child would inherit half-made.
    # A spawned child imports this module by name, so its folder must be on the sys.path it copies
    # (an importer such as a test may have taken it off again).
    here = str(Path(__file__).resolve().parent)
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            return pool.map(write_one, tasks, chunksize=max(1, min(64, len(tasks) // (8 * workers))))
    finally:
        if added:
            sys.path.remove(here)


def write_manifest(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows((f"images/{name}", label) for name, label in rows)


def subset_files(subsets: list[int], n_train: int) -> dict[str, int]:
    """train_<size>.csv -> its row count: the first `size` train rows, or all of them when fewer."""
    return {f"train_{size}.csv": min(size, n_train) for size in subsets}


def describe(family: Family, counts: dict, subsets: list[int], seed: int) -> dict:
    return {
        "family": family.name,
        "description": family.description,
        "width": family.size[0], "height": family.size[1], "mode": family.mode,
        "alphabet": family.alphabet, "alphabet_size": len(family.alphabet),
        "min_length": family.lengths[0], "max_length": family.lengths[1],
        "seed": seed, "counts": dict(counts), "subsets": subset_files(subsets, counts["train"]),
        "generator": {"package": family.package, "version": package_version(family.package)},
        "pillow": package_version("pillow"), "numpy": np.__version__,
        "fonts": font_names() if family.package != "captcha" else ["captcha's DroidSansMono"],
        "images": f"images/<index>{family.suffix}, numbered across train, then val, then test",
        "per_image_seed": f"sha256('{family.seeds_of or family.name}|<split>|<index in split>|<seed>'), first 8 bytes, "
                          "big-endian",
        "use": "development TEST data for the training recipe; never pretraining data",
        "made_by": "scripts/make_family.py",
    }


def clear_family(folder: Path) -> None:
    """Remove what an earlier run wrote here (only with --force)."""
    shutil.rmtree(folder / "images", ignore_errors=True)
    for path in [*folder.glob("train*.csv"), folder / "val.csv", folder / "test.csv", folder / "family.json"]:
        path.unlink(missing_ok=True)


def make_family(family: Family, folder: Path, counts: dict, subsets: list[int], seed: int,
                workers: int) -> float:
    """Write one family into `folder`; returns the seconds it took."""
    start = time.perf_counter()
    clear_family(folder)
    images = folder / "images"
    images.mkdir(parents=True)
    rows = run_tasks(plan_tasks(family, counts, seed, images), workers)
    at = 0
    for split in SPLITS:
        write_manifest(folder / f"{split}.csv", rows[at:at + counts[split]])
        at += counts[split]
    for name, size in subset_files(subsets, counts["train"]).items():
        write_manifest(folder / name, rows[:size])
    info = describe(family, counts, subsets, seed)
    (folder / "family.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- command line

class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = Parser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--family", action="append", metavar="NAME",
                    help=f"{', '.join(FAMILIES)} or all; repeatable")
    ap.add_argument("--list", action="store_true", help="print the families and exit")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="parent folder (default: data/families)")
    ap.add_argument("--seed", type=int, default=0)
    for split in SPLITS:
        ap.add_argument(f"--{split}", type=int, default=DEFAULT_COUNTS[split], metavar="N",
                        help=f"{split} images (default {DEFAULT_COUNTS[split]})")
    ap.add_argument("--subsets", type=int, nargs="+", default=list(DEFAULT_SUBSETS), metavar="N",
                    help="nested train_<N>.csv prefixes of train.csv (default: 250 1000)")
    ap.add_argument("--workers", type=int, default=MAX_WORKERS, help=f"processes, 1-{MAX_WORKERS} (default 2)")
    ap.add_argument("--force", action="store_true", help="overwrite a non-empty family folder")
    return ap.parse_args(argv)


def chosen_families(names: list[str] | None) -> list[Family]:
    if not names:
        raise UsageError("name a family with --family NAME (or --family all); --list shows them")
    chosen = []
    for name in names:
        if name != "all" and name not in FAMILIES:
            raise UsageError(f"unknown family {name!r} (choose from {', '.join(FAMILIES)} or all)")
        for family in (FAMILIES.values() if name == "all" else [FAMILIES[name]]):
            if family not in chosen:
                chosen.append(family)
    return chosen


def check_options(args: argparse.Namespace, families: list[Family]) -> dict:
    """The split counts, once every option and output folder is known to be usable."""
    counts = {split: getattr(args, split) for split in SPLITS}
    if min(counts.values()) < 0 or sum(counts.values()) == 0:
        raise UsageError(f"--train/--val/--test must be >= 0 and not all 0 (got {counts})")
    if min(args.subsets) < 1:
        raise UsageError("--subsets sizes must be >= 1")
    if not 1 <= args.workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be 1-{MAX_WORKERS} (got {args.workers})")
    for family in families:
        folder = args.out / family.name
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder} exists and is not a folder")
        if folder.is_dir() and any(folder.iterdir()) and not args.force:
            raise UsageError(f"{folder} is not empty (use --force to overwrite it)")
        if package_version(family.package) == "not installed":
            raise UsageError(f"family {family.name} needs the {family.package} package (pip install {family.package})")
    return counts


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.list:
            for family in FAMILIES.values():
                print(f"{family.name:16s}{family.summary}")
            return 0
        families = chosen_families(args.family)
        counts = check_options(args, families)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = 0.0
    for family in families:
        folder = args.out / family.name
        seconds = make_family(family, folder, counts, sorted(set(args.subsets)), args.seed, args.workers)
        total += seconds
        n = sum(counts.values())
        print(f"{family.name}: {n} images ({counts['train']}/{counts['val']}/{counts['test']}) in {seconds:.1f} s "
              f"({n / seconds:.0f}/s), {family.package} {package_version(family.package)} -> {folder}")
    print(f"done: {len(families)} famil{'y' if len(families) == 1 else 'ies'} in {total:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
