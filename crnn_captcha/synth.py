"""Synthetic captchas and glyphs, drawn on the fly: the pretraining data.

A model is pretrained on these images and then fine-tuned on a user's own captchas, whatever their
family, so the renderer aims for breadth rather than for the look of any one generator: many fonts,
sizes, weights, rotations, spacings from gaps to overlap, colours of text and background (a share
of them told apart only by hue, at nearly equal brightness), noise dots, arcs and strike lines,
warps, blur, low resolution and JPEG artefacts, on canvases from about 30 to 150 pixels high and 1.5
to 5 times as wide. Public captcha generators (the ``captcha`` package, wheezy.captcha, ...) are
test families of this project: nothing here imports them, copies them or uses their fonts.

    from crnn_captcha.synth import SynthConfig, SynthRenderer, sample_sheet

    renderer = SynthRenderer(seed=0)                  # or SynthRenderer(SynthConfig(alphabet="0123456789"))
    image, label = renderer.sample(17)                # uint8 (H, W, 3) RGB and its text, e.g. 'k7R=q'
    glyph, char = renderer.glyph(17)                  # one centred character, 32 wide x 52 high
    image, label = renderer.sample(17, text="aB3")    # this text (glyph(17, char="Q") likewise)
    renderer.fonts                                    # FontInfo: name, source, licence, characters
    sample_sheet(renderer, 48, "sheet.png")           # a grid of samples with their labels beneath

    python -m crnn_captcha.synth --out sheet.png --n 48 --seed 0 [--glyphs]

Every random choice of ``sample(i)`` comes from a generator seeded by ``(seed, i)``, so an image
depends only on the renderer's seed, its config, the fonts found and ``i``: never on the order of
calls, the number of DataLoader workers or the process (the caches below only save time). The fonts
found depend on the machine, so two machines give the same images only where they have the same
fonts; ``SynthConfig(font_files=(), builtin_fonts=True)`` uses the built-in fonts alone, which every
machine with these dependencies has.

Fonts, and where each comes from (:data:`FONT_SOURCES`; ``python -m crnn_captcha.synth`` lists the
ones found, with each font's licence):

==================  ===========================================================================
source              what and licence
==================  ===========================================================================
system              TrueType/OpenType files in the system's font folders (:data:`SYSTEM_FONT_DIRS`,
                    searched recursively). Each font's licence is looked up by family in
                    :data:`KNOWN_LICENCES` (DejaVu: the Bitstream Vera licence, DejaVu's changes
                    in the public domain), else read from the font's own name table (IDs 13 and
                    14), else reported as not stated. CI machines may have none.
package:NAME        fonts bundled with an installed Python package (:data:`PACKAGE_FONT_DIRS`:
                    matplotlib's DejaVu, STIX (SIL OFL 1.1) and BaKoMa Computer Modern (BaKoMa
                    licence); reportlab's Bitstream Vera), found without importing the package.
                    Never required.
pillow              ``PIL.ImageFont.load_default(size=...)``: a subset of Aileron Regular by Sora
                    Sagano (dotcolon.net) embedded in Pillow's source; public domain (CC0; the
                    font's own copyright string reads "No Rights Reserved."). Pillow itself is
                    under the MIT-CMU licence. Present wherever Pillow has FreeType.
opencv              ``cv2.putText``'s eight Hershey faces (simplex, plain, duplex, complex,
                    triplex, complex small, script simplex, script complex), upright and italic.
                    OpenCV 4 draws the Hershey vector fonts (A. V. Hershey, U.S. Naval Weapons
                    Laboratory, 1967; public domain); OpenCV 5 maps the same faces to its built-in
                    Rubik and Rubik Italic (SIL OFL 1.1) at weights set by face and thickness.
                    Always present.
==================  ===========================================================================

A font is used only for the characters of the alphabet it draws, and draws distinctly: a character
the font lacks (its drawing matches the font's "missing glyph" or is empty) would come out as a box
(tofu) under a label that names something else, and two characters drawn identically in one font
(lowercase drawn as capitals, ``l`` as ``I``) would teach a label the image cannot show; both are
left out for that font. Symbol and icon fonts (a symbol-only character map, or a name like
"Wingdings") are skipped, as are the files named in ``SynthConfig.exclude_fonts``: by default
DroidSansMono, the typeface of the ``captcha`` package, a test family.

How often each effect appears is a field of :class:`SynthConfig` (``SynthConfig.plain()`` turns
them all off). Text never shrinks below :data:`MIN_PX` pixels per em where a wider canvas can hold
it, and lines, dots, blur and low resolution are sized to the text's strokes, so the labels stay
readable; a share of images is still hard on purpose, as captchas are.

Speed: glyph masks are rendered once per process and size (a bounded cache; sizes on a ladder 7%
apart, the layer then scaled to the exact size), images are drawn at their final size, and every
noise and warp is numpy or OpenCV: about 1,000-1,600 images per second on one core at heights of
32-80 pixels (``python -m crnn_captcha.synth`` measures it). Set ``cv2.setNumThreads(1)`` in
rendering workers: OpenCV's own threads only contend with the other workers.
"""
from __future__ import annotations

import argparse
import bisect
import importlib.util
import io
import math
import os
import random
import string
import struct
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import cli
from .errors import OptionError

SYMBOLS = "+-=?!@#$%&*"
#: All 62 letters and digits (case-sensitive) and common symbols.
DEFAULT_ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase + SYMBOLS
#: (width, height) of a glyph image: the size of the Kaggle "CAPTCHA Characters Dataset (118K)".
GLYPH_SIZE = (32, 52)

#: Folders searched (recursively) for the "system" fonts; missing ones are skipped.
SYSTEM_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts",
                    "/Library/Fonts", "/System/Library/Fonts", "~/Library/Fonts", "%WINDIR%/Fonts")
#: Installed packages whose bundled fonts are used (found with importlib, never imported). Captcha
#: generators (captcha, wheezy.captcha, multicolorcaptcha, ...) are test families: never listed here.
PACKAGE_FONT_DIRS = {"matplotlib": "mpl-data/fonts/ttf", "reportlab": "fonts"}
FONT_EXTENSIONS = (".ttf", ".otf", ".ttc")
FONT_SOURCES = {
    "system": "font files in the system's font folders; licence per font",
    "package": "fonts bundled with an installed Python package (matplotlib, reportlab); licence per font",
    "pillow": "Pillow's built-in font, Aileron Regular by Sora Sagano: public domain (CC0)",
    "opencv": ("OpenCV's Hershey faces: Hershey vector fonts, public domain (OpenCV 4); built-in "
               "Rubik and Rubik Italic, SIL OFL 1.1 (OpenCV 5)"),
}
#: Licences of common font families, by the start of the family name (lowercase).
KNOWN_LICENCES = (
    ("dejavu", "Bitstream Vera licence; DejaVu changes public domain"),
    ("bitstream vera", "Bitstream Vera licence"),
    ("liberation", "SIL OFL 1.1"),
    ("noto", "SIL OFL 1.1"),
    ("stix", "SIL OFL 1.1"),
    ("freesans", "GNU GPL 3 with the font exception"),
    ("freeserif", "GNU GPL 3 with the font exception"),
    ("freemono", "GNU GPL 3 with the font exception"),
    ("ubuntu", "Ubuntu Font Licence 1.0"),
    ("droid", "Apache 2.0"),
    ("roboto", "Apache 2.0"),
    ("open sans", "Apache 2.0"),
    ("lato", "SIL OFL 1.1"),
    ("cantarell", "SIL OFL 1.1"),
    ("source ", "SIL OFL 1.1"),
    ("fira", "SIL OFL 1.1"),
    ("inconsolata", "SIL OFL 1.1"),
    ("tex gyre", "GUST Font Licence"),
    *((name, "BaKoMa fonts licence (free to use and redistribute unmodified)")
      for name in ("cmb10", "cmex10", "cmmi10", "cmr10", "cmss10", "cmsy10", "cmtt10")),  # matplotlib's
)
#: Names (file or family, lowercase) of picture fonts: their "letters" are symbols or icons.
PICTURE_FONTS = ("wingding", "webding", "dingbat", "symbol", "awesome", "icons", "emoji", "marlett", "mdl2")
HERSHEY_FACES = ("SIMPLEX", "PLAIN", "DUPLEX", "COMPLEX", "TRIPLEX", "COMPLEX_SMALL",
                 "SCRIPT_SIMPLEX", "SCRIPT_COMPLEX")
PILLOW_KEY = "<pillow>"
_MISSING_PROBE = "\U0010fffd"  # a private-use code point no text font maps: draws the "missing" glyph
_PROBE_PX = 32
_GLYPH_CACHE_SIZE = 16384
_FONT_CACHE_SIZE = 512


# ----- the configuration --------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthConfig:
    """What the renderer draws, and how often each effect appears (each ``p_*`` a probability).

    Attributes:
        alphabet: the characters labels are drawn from (case-sensitive; no spaces).
        min_length, max_length: label lengths, inclusive.
        height: (lowest, highest) canvas height in pixels, drawn log-uniformly.
        aspect: (lowest, highest) width/height; long labels start from a wider lowest ratio.
        font_files: use these font files instead of looking for system and package fonts.
        builtin_fonts: also use Pillow's and OpenCV's built-in fonts.
        exclude_fonts: font files whose names contain one of these (case-insensitive) are skipped.
        source_weights: (source, weight) pairs: the share of images drawn with each font source
            present (renormalised over those found); within a source, each family is equally likely.
        backgrounds: (kind, weight) pairs: "solid", "gradient", "texture" (smooth colour noise)
            and "tiles" (a grid of colour blocks).
        max_rotation: the largest per-character rotation, in degrees.
    """

    alphabet: str = DEFAULT_ALPHABET
    min_length: int = 3
    max_length: int = 8
    height: tuple[int, int] = (30, 150)
    aspect: tuple[float, float] = (1.5, 5.0)
    font_files: tuple[str, ...] | None = None
    builtin_fonts: bool = True
    exclude_fonts: tuple[str, ...] = ("DroidSansMono",)
    source_weights: tuple[tuple[str, float], ...] = (("system", 0.5), ("package", 0.1), ("pillow", 0.12),
                                                     ("opencv", 0.28))
    backgrounds: tuple[tuple[str, float], ...] = (("solid", 0.3), ("gradient", 0.3), ("texture", 0.25),
                                                  ("tiles", 0.15))
    max_rotation: float = 30.0
    p_rotation: float = 0.6        # characters rotate (each by its own angle)
    p_shear: float = 0.2           # the text leans (a shear, like an oblique style)
    p_stretch: float = 0.3         # characters are narrowed or widened
    p_jitter: float = 0.6          # characters move up and down off the baseline
    p_wave: float = 0.15           # the baseline follows a sine curve
    p_bold: float = 0.25           # strokes thickened
    p_thin: float = 0.1            # strokes thinned (large text only)
    p_outline: float = 0.05        # hollow characters (large text only)
    p_char_warp: float = 0.12      # each character bent by its own sine warp
    p_small_text: float = 0.15     # the text fills only about the middle third of the width
    p_low_contrast: float = 0.15   # text and background of nearly equal brightness, different hue
    p_char_colours: float = 0.25   # each character its own colour
    p_gradient_text: float = 0.1   # text colour changes along the line
    p_shadow: float = 0.06         # a shifted copy of the text beneath it
    p_grid: float = 0.12           # grid, stripes or random lines behind the text
    p_dots: float = 0.45           # noise dots (pixels and small discs)
    p_arcs: float = 0.3            # arcs and ellipse segments
    p_strike: float = 0.35         # curved lines through the text
    p_affine: float = 0.2          # the whole image slightly rotated, sheared and scaled
    p_warp: float = 0.35           # the whole image warped (sine waves or a random smooth mesh)
    p_lowres: float = 0.08         # drawn small and enlarged (blocky, soft)
    p_blur: float = 0.25           # Gaussian or motion blur
    p_noise: float = 0.3           # Gaussian pixel noise
    p_jpeg: float = 0.25           # JPEG re-encoding at low quality

    def __post_init__(self) -> None:
        alphabet = self.alphabet
        if not alphabet or len(set(alphabet)) != len(alphabet):
            raise OptionError(f"alphabet {alphabet!r}: give each character once, at least one")
        if any(not ch.isprintable() or ch.isspace() for ch in alphabet):
            raise OptionError(f"alphabet {alphabet!r}: spaces and control characters cannot be labels")
        if not 1 <= self.min_length <= self.max_length:
            raise OptionError(f"lengths {self.min_length}-{self.max_length}: need 1 <= min_length <= max_length")
        if not 8 <= self.height[0] <= self.height[1] <= 1024:
            raise OptionError(f"height {self.height}: need 8 <= lowest <= highest <= 1024 pixels")
        if not 0.5 <= self.aspect[0] <= self.aspect[1] <= 20:
            raise OptionError(f"aspect {self.aspect}: need 0.5 <= lowest <= highest <= 20")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("p_") and not 0.0 <= value <= 1.0:
                raise OptionError(f"{f.name}={value}: a probability must lie in [0, 1]")
        for name in ("source_weights", "backgrounds"):
            pairs = getattr(self, name)
            if any(w < 0 for _, w in pairs) or sum(w for _, w in pairs) <= 0:
                raise OptionError(f"{name} {pairs}: weights must be non-negative, at least one positive")
        known = {"solid", "gradient", "texture", "tiles"}
        if {k for k, _ in self.backgrounds} - known:
            raise OptionError(f"backgrounds {self.backgrounds}: kinds are {', '.join(sorted(known))}")

    @classmethod
    def plain(cls, **overrides) -> "SynthConfig":
        """Dark text on a plain light background, every effect off: for checks and debugging."""
        offs = {f.name: 0.0 for f in fields(cls) if f.name.startswith("p_")}
        offs["backgrounds"] = (("solid", 1.0),)
        offs.update(overrides)
        return cls(**offs)


@dataclass(frozen=True)
class FontInfo:
    """A usable font: where it comes from, its licence, and the alphabet's characters it draws."""

    name: str
    family: str
    source: str
    licence: str
    chars: str
    path: str | None = None
    face: int | None = None  # an OpenCV font face (cv2.FONT_HERSHEY_* | cv2.FONT_ITALIC)

    @property
    def key(self) -> str:
        """Names the font in the process-wide caches."""
        return f"opencv:{self.face}" if self.face is not None else (self.path or PILLOW_KEY)


# ----- drawing one character ----------------------------------------------------------------------
_FONT_CACHE: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}
_GLYPH_CACHE: dict[tuple[str, int, str, int], tuple[np.ndarray, int]] = {}
_CAP_HEIGHT: dict[int, int] = {}
_PILLOW_BYTES: list[bytes | None] = []


def _pillow_font_bytes() -> bytes | None:
    """The bytes of Pillow's built-in scalable font, or None where Pillow has no FreeType."""
    if not _PILLOW_BYTES:
        try:
            font = ImageFont.load_default(size=_PROBE_PX)
        except (TypeError, ImportError, OSError):  # Pillow < 10.1, or no FreeType
            font = None
        _PILLOW_BYTES.append(getattr(font, "font_bytes", None))
    return _PILLOW_BYTES[0]


def _truetype(key: str, px: int) -> ImageFont.FreeTypeFont:
    """A FreeType font at a pixel size, loaded once per process (the basic layout engine, the same
    on every machine, unlike Raqm's shaping)."""
    font = _FONT_CACHE.get((key, px))
    if font is None:
        if len(_FONT_CACHE) >= _FONT_CACHE_SIZE:
            _FONT_CACHE.clear()
        source = io.BytesIO(_pillow_font_bytes() or b"") if key == PILLOW_KEY else key
        font = ImageFont.truetype(source, px, layout_engine=ImageFont.Layout.BASIC)
        _FONT_CACHE[(key, px)] = font
    return font


def _freetype_mask(key: str, px: int, ch: str) -> tuple[np.ndarray, int]:
    core, (_, top) = _truetype(key, px).getmask2(ch, mode="L", anchor="ls")
    try:
        mask = np.array(Image.Image()._new(core))
    except AttributeError:  # a Pillow without the internal constructor: draw it the public way
        box = _truetype(key, px).getbbox(ch, anchor="ls")
        img = Image.new("L", (max(1, box[2] - box[0]), max(1, box[3] - box[1])))
        ImageDraw.Draw(img).text((-box[0], -box[1]), ch, font=_truetype(key, px), fill=255, anchor="ls")
        mask, top = np.array(img), box[1]
    return mask, -top


def _opencv_mask(face: int, px: int, ch: str, thick: int) -> tuple[np.ndarray, int]:
    cap = _CAP_HEIGHT.get(face)
    if cap is None:
        cap = _CAP_HEIGHT[face] = max(1, cv2.getTextSize("H", face, 1.0, 1)[0][1])
    scale = 0.72 * px / cap  # capitals about as tall as in the FreeType fonts at this size
    (w, h), below = cv2.getTextSize(ch, face, scale, thick)
    pad = thick + 2 + h // 3
    canvas = np.zeros((h + below + 2 * pad, w + 2 * pad), np.uint8)
    cv2.putText(canvas, ch, (pad, pad + h), face, scale, 255, thick, cv2.LINE_AA)
    rows, cols = np.flatnonzero(canvas.any(axis=1)), np.flatnonzero(canvas.any(axis=0))
    if not len(rows):
        return canvas[:1, :1], 0
    return canvas[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], pad + h - int(rows[0])


def _glyph_mask(font: FontInfo, px: int, ch: str, thick: int = 1) -> tuple[np.ndarray, int]:
    """(coverage mask uint8 (h, w), baseline row counted from the top) of one character at ``px``
    pixels per em; cached per process, so the mask is read-only."""
    key = (font.key, px, ch, thick if font.face is not None else 0)
    hit = _GLYPH_CACHE.get(key)
    if hit is None:
        mask, base = _opencv_mask(font.face, px, ch, thick) if font.face is not None else \
            _freetype_mask(font.key, px, ch)
        mask.setflags(write=False)
        if len(_GLYPH_CACHE) >= _GLYPH_CACHE_SIZE:
            _GLYPH_CACHE.clear()
        hit = _GLYPH_CACHE[key] = (mask, base)
    return hit


# ----- finding fonts ------------------------------------------------------------------------------
def find_font_files() -> list[tuple[str, str]]:
    """(path, source) of the font files on this machine: the system folders, then the fonts
    bundled with the packages of :data:`PACKAGE_FONT_DIRS` that are installed; sorted."""
    found: list[tuple[str, str]] = []
    for folder in SYSTEM_FONT_DIRS:
        root = Path(os.path.expandvars(os.path.expanduser(folder)))
        if root.is_dir():
            found += [(str(p), "system") for p in sorted(root.rglob("*"))
                      if p.suffix.lower() in FONT_EXTENSIONS and p.is_file()]
    for package, sub in PACKAGE_FONT_DIRS.items():
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for base in (spec.submodule_search_locations or []) if spec else []:
            folder = Path(base) / sub
            if folder.is_dir():
                found += [(str(p), f"package:{package}") for p in sorted(folder.iterdir())
                          if p.suffix.lower() in FONT_EXTENSIONS]
    return found


def _sfnt_info(path: str) -> tuple[dict[int, str], bool]:
    """The font's English name strings (name ID -> text) and whether its only character map is a
    symbol encoding (a picture font); ({}, False) where the tables cannot be read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if head[:4] == b"ttcf":  # a collection: the first font
                fh.seek(12)  # the header's first offset table
                fh.seek(struct.unpack(">I", fh.read(4))[0])
                head = fh.read(12)
            count = struct.unpack(">H", head[4:6])[0]
            entries = fh.read(16 * count)
            tables = {entries[i:i + 4]: struct.unpack(">II", entries[i + 8:i + 16]) for i in range(0, len(entries), 16)}
            names = _name_strings(fh, *tables[b"name"]) if b"name" in tables else {}
            symbol = _symbol_only(fh, tables[b"cmap"][0]) if b"cmap" in tables else False
        return names, symbol
    except (OSError, struct.error, UnicodeDecodeError, KeyError):
        return {}, False


def _name_strings(fh, offset: int, length: int) -> dict[int, str]:
    fh.seek(offset)
    data = fh.read(length)
    _, count, strings = struct.unpack(">HHH", data[:6])
    names: dict[int, str] = {}
    for i in range(count):
        platform, _, language, name_id, size, at = struct.unpack(">6H", data[6 + 12 * i:18 + 12 * i])
        raw = data[strings + at:strings + at + size]
        if platform == 3 and language == 0x409:
            names[name_id] = raw.decode("utf-16-be", "replace")
        elif platform == 1 and language == 0 and name_id not in names:
            names[name_id] = raw.decode("latin-1")
    return names


def _symbol_only(fh, offset: int) -> bool:
    fh.seek(offset)
    _, count = struct.unpack(">HH", fh.read(4))
    maps = [struct.unpack(">HHI", fh.read(8))[:2] for _ in range(count)]
    return (3, 0) in maps and not any(p == 0 or (p, e) in ((3, 1), (3, 10)) for p, e in maps)


def font_licence(family: str, names: dict[int, str]) -> str:
    """A font's licence: known by its family, else as its name table states it."""
    low = family.lower()
    for prefix, licence in KNOWN_LICENCES:
        if low.startswith(prefix):
            return licence
    url, text = names.get(14, "").strip(), names.get(13, "").strip()
    if text:
        first = text.split("\n")[0].split(". ")[0]
        return (first[:100] + ("..." if len(first) > 100 else "")) + (f" ({url})" if url else "")
    return url or "not stated in the font file: check before publishing images made with it"


def _distinct_chars(render: Callable[[str], tuple[np.ndarray, int]], alphabet: str, probe: str) -> str:
    """The characters of ``alphabet`` that ``render`` draws with ink, unlike the missing glyph
    (what it draws for ``probe``), and unlike every other character of the alphabet."""
    def signature(ch: str) -> bytes:
        mask, base = render(ch)
        return struct.pack(">3i", *mask.shape, base) + mask.tobytes()

    missing = signature(probe)
    drawn: dict[str, bytes] = {}
    for ch in alphabet:
        if ch == probe:
            continue
        sig = signature(ch)
        if sig != missing and render(ch)[0].any():
            drawn[ch] = sig
    if probe in alphabet and render(probe)[0].any():
        drawn[probe] = missing
    counts: dict[bytes, int] = {}
    for sig in drawn.values():
        counts[sig] = counts.get(sig, 0) + 1
    return "".join(ch for ch in alphabet if ch in drawn and counts[drawn[ch]] == 1)


def _file_font(path: str, source: str, alphabet: str) -> FontInfo | None:
    names, symbol = _sfnt_info(path)
    try:
        family, style = _truetype(path, _PROBE_PX).getname()
    except OSError:  # not a font FreeType can read
        return None
    family, style = family or Path(path).stem, style or ""
    if symbol or any(word in (Path(path).name + " " + family).lower() for word in PICTURE_FONTS):
        return None
    key = FontInfo("", "", "", "", "", path=path)
    try:
        chars = _distinct_chars(lambda ch: _glyph_mask(key, _PROBE_PX, ch), alphabet, _MISSING_PROBE)
    except (OSError, ValueError):  # FreeType opened it but cannot draw from it
        return None
    return FontInfo(f"{family} {style}".strip(), family, source, font_licence(family, names), chars, path=path)


def _builtin_fonts(alphabet: str) -> list[FontInfo]:
    """Pillow's built-in font (where Pillow has FreeType) and OpenCV's faces, upright and italic."""
    fonts = []
    if _pillow_font_bytes():
        key = FontInfo("", "", "", "", "")
        chars = _distinct_chars(lambda ch: _glyph_mask(key, _PROBE_PX, ch), alphabet, _MISSING_PROBE)
        fonts.append(FontInfo("Aileron Regular (Pillow's default)", "Aileron", "pillow",
                              "public domain (CC0)", chars))
    opencv5 = int(cv2.__version__.split(".")[0]) >= 5
    licence = "SIL OFL 1.1 (Rubik, built into OpenCV 5)" if opencv5 else "public domain (Hershey fonts)"
    # OpenCV 4 draws each byte of a non-ASCII character as '?': only ASCII there
    usable = alphabet if opencv5 else "".join(ch for ch in alphabet if ord(ch) < 127)
    for name in HERSHEY_FACES:
        for italic in (False, True):
            face = getattr(cv2, f"FONT_HERSHEY_{name}") | (cv2.FONT_ITALIC if italic else 0)
            key = FontInfo("", "", "", "", "", face=face)
            chars = _distinct_chars(lambda ch: _glyph_mask(key, _PROBE_PX, ch), usable, "?")
            label = f"OpenCV HERSHEY_{name}" + (" italic" if italic else "")
            fonts.append(FontInfo(label, f"opencv:{name}", "opencv", licence, chars, face=face))
    return fonts


_DISCOVERED: dict[tuple, tuple[FontInfo, ...]] = {}


def discover_fonts(config: SynthConfig) -> tuple[FontInfo, ...]:
    """The fonts ``config`` may use: files (found, or ``config.font_files``) and the built-in ones,
    each drawing at least half the alphabet; one font per name (a package's copy of a system font
    is skipped). Raises OptionError where no font draws some character of the alphabet."""
    files = find_font_files() if config.font_files is None else [(str(p), "given") for p in config.font_files]
    excluded = tuple(x.lower() for x in config.exclude_fonts)
    files = [(p, s) for p, s in files if not any(x in Path(p).name.lower() for x in excluded)]
    key = (config.alphabet, tuple(files), config.builtin_fonts)
    if key not in _DISCOVERED:
        fonts, names = [], set()
        for path, source in files:
            info = _file_font(path, source, config.alphabet)
            if info is not None and info.name not in names and 2 * len(info.chars) >= len(config.alphabet):
                fonts.append(info)
                names.add(info.name)
        if config.builtin_fonts:
            fonts += [f for f in _builtin_fonts(config.alphabet) if 2 * len(f.chars) >= len(config.alphabet)]
        _DISCOVERED[key] = tuple(fonts)
    fonts = _DISCOVERED[key]
    lacking = sorted(set(config.alphabet) - {ch for f in fonts for ch in f.chars})
    if lacking:
        raise OptionError(f"no usable font draws {''.join(lacking)!r} distinctly ({len(fonts)} fonts found); "
                          "add a font file that does (SynthConfig.font_files) or leave them out of the alphabet")
    return fonts


# ----- random draws -------------------------------------------------------------------------------
class _Rand:
    """The random draws of one image: scalars from Python's generator (several times faster per
    draw than numpy's), arrays from numpy's; both seeded from one SeedSequence of (seed, index,
    stream), so an image depends on nothing else."""

    __slots__ = ("py", "_seq", "_np")

    def __init__(self, key: tuple[int, ...]):
        self._seq = np.random.SeedSequence(key)
        words = self._seq.generate_state(12)[8:]  # past the words numpy's generator starts from
        self.py = random.Random(int.from_bytes(words.tobytes(), "little"))
        self._np: np.random.Generator | None = None

    @property
    def np(self) -> np.random.Generator:
        if self._np is None:
            self._np = np.random.default_rng(self._seq)
        return self._np

    def u(self, low: float, high: float) -> float:
        return low + (high - low) * self.py.random()

    def i(self, low: int, high: int) -> int:
        """A whole number in [low, high)."""
        return low + int(self.py.random() * (high - low))

    def chance(self, p: float) -> bool:
        return self.py.random() < p

    def pick(self, items: Sequence):
        return items[int(self.py.random() * len(items))]

    def weighted(self, weights: Sequence[float]) -> int:
        x, acc = self.py.random() * float(sum(weights)), 0.0
        for k, w in enumerate(weights):
            acc += w
            if x < acc:
                return k
        return len(weights) - 1


# ----- colours (RGB tuples of floats 0-255) -------------------------------------------------------
Colour = tuple[float, float, float]
TAU = 2 * math.pi


def _luma(c: Colour) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _colour(luma: float, hue: float, sat: float) -> Colour:
    """A colour of about this luma (Rec. 601), hue (radians) and chroma (0 gray, ~110 vivid)."""
    u, v = sat * math.cos(hue), sat * math.sin(hue)
    c = [luma + 1.13983 * v, luma - 0.39465 * u - 0.5806 * v, luma + 2.03211 * u]
    for _ in range(3):  # clipping a channel moves the luma: shift back, clip again
        c = [min(max(x, 0.0), 255.0) for x in c]
        shift = luma - _luma(c)
        c = [x + shift for x in c]
    r, g, b = (min(max(x, 0.0), 255.0) for x in c)
    return (r, g, b)


def _distance(a: Colour, b: Colour) -> float:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2])


@dataclass
class _Scheme:
    bg: Colour           # the background's main colour
    bg2: Colour          # its second colour (gradients, textures, tiles, grids)
    text: list[Colour]   # one colour per character
    spread: float        # how far background luma may stray from bg's without hurting legibility
                         # (small where only the hue separates text from background)


def _text_luma(r: _Rand, bg_luma: float) -> float:
    """A luma at least 80 levels from the background's, darker or lighter."""
    below, above = bg_luma - 80, bg_luma + 80
    if below >= 0 and (above > 255 or r.chance(0.5)):
        return r.u(0, below)
    return r.u(above, 255)


def _colour_scheme(r: _Rand, cfg: SynthConfig, n: int) -> _Scheme:
    """Background and text colours. Usually 80+ levels of luma apart (light on dark or dark on
    light); with p_low_contrast within 16 levels, so that only the hue tells text from background."""
    per_char = r.chance(cfg.p_char_colours)
    if r.chance(cfg.p_low_contrast):
        yb, hb = r.u(70, 175), r.u(0, TAU)
        bg = _colour(yb, hb, r.u(15, 60))
        bg2 = _colour(yb + r.u(-6, 6), hb + r.u(-0.4, 0.4), r.u(15, 60))
        texts = []
        for _ in range(n if per_char else 1):
            yt, ht, sat = yb + r.u(-16, 16), hb + math.pi + r.u(-1.1, 1.1), r.u(80, 130)
            colour = _colour(yt, ht, sat)
            while _distance(colour, bg) < 140 and sat < 300:  # too close to gray: more chroma
                sat += 40
                colour = _colour(yt, ht, sat)
            texts.append(colour)
        return _Scheme(bg, bg2, texts if per_char else texts * n, 6.0)
    pick = r.py.random()
    yb = r.u(165, 250) if pick < 0.6 else r.u(5, 90) if pick < 0.85 else r.u(90, 165)
    bg = _colour(yb, r.u(0, TAU), r.u(0, 70) * r.py.random())
    bg2 = _colour(min(max(yb + r.u(-25, 25), 0), 255), r.u(0, TAU), r.u(0, 80))
    texts = [_colour(_text_luma(r, yb), r.u(0, TAU), r.u(0, 110) * r.py.random())
             for _ in range(n if per_char else 1)]
    return _Scheme(bg, bg2, texts if per_char else texts * n, 25.0)


def _ink_colour(r: _Rand, sc: _Scheme) -> tuple[int, int, int]:
    """A colour for lines and dots: the text's own (the hard case), or any contrasting one."""
    pick = r.py.random()
    if pick < 0.5:
        c = r.pick(sc.text)
    elif pick < 0.8:
        c = _colour(_text_luma(r, _luma(sc.bg)), r.u(0, TAU), r.u(0, 120))
    else:
        c = (r.u(0, 255), r.u(0, 255), r.u(0, 255))
    return (int(c[0]), int(c[1]), int(c[2]))


# ----- backgrounds --------------------------------------------------------------------------------
def _background(r: _Rand, cfg: SynthConfig, h: int, w: int, sc: _Scheme) -> np.ndarray:
    """A uint8 (h, w, 3) background of one of the configured kinds, with grid lines now and then.
    Each is drawn small and enlarged by OpenCV: a gradient from 2x2 corners, a texture from a few
    cells of colour noise, tiles from a grid of blocks."""
    kinds, weights = zip(*cfg.backgrounds)
    kind = kinds[r.weighted(weights)]
    bg, bg2 = np.array(sc.bg, np.float32), np.array(sc.bg2, np.float32)
    if kind == "solid":
        img = np.empty((h, w, 3), np.uint8)
        img[:] = (int(sc.bg[0] + 0.5), int(sc.bg[1] + 0.5), int(sc.bg[2] + 0.5))
    elif kind == "gradient":
        angle = r.u(0, TAU)
        direction = np.float32([math.cos(angle), math.sin(angle)])
        corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32) @ direction
        t = ((corners - corners.min()) / max(float(np.ptp(corners)), 1e-6)).reshape(2, 2, 1)
        small = np.clip(bg + t * (bg2 - bg) + 0.5, 0, 255).astype(np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    elif kind == "texture":
        gh, gw = r.i(2, 7), r.i(3, 16)
        mix = r.np.random((gh, gw, 1), dtype=np.float32)
        wobble = r.np.standard_normal((gh, gw, 3), dtype=np.float32) * np.float32(sc.spread * 0.3)
        small = np.clip(bg + mix * (bg2 - bg) + wobble + 0.5, 0, 255).astype(np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    else:  # tiles: blocks in the two colours and their mixture
        gh, gw = r.i(1, 4), r.i(2, 9)
        mix = r.np.integers(0, 3, (gh, gw, 1)).astype(np.float32) / 2
        small = np.clip(bg + mix * (bg2 - bg) + 0.5, 0, 255).astype(np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    if r.chance(cfg.p_grid):
        _grid(r, img, sc)
    return img


def _grid(r: _Rand, img: np.ndarray, sc: _Scheme) -> None:
    """Lines behind the text, near the background's luma: a grid, stripes, hatching or random lines."""
    h, w = img.shape[:2]
    luma = _luma(sc.bg) + (1 if r.chance(0.5) else -1) * r.u(0.3, 1.0) * sc.spread * 1.5
    c = _colour(min(max(luma, 0), 255), r.u(0, TAU), r.u(0, 90))
    colour = (int(c[0]), int(c[1]), int(c[2]))
    thick = r.i(1, max(2, h // 30) + 1)
    step = max(3, int(h * r.u(0.08, 0.3)))
    kind = r.py.random()
    if kind < 0.6:  # grid or stripes
        vertical, horizontal = r.chance(0.8), r.chance(0.8)
        for x in range(r.i(0, step), w, step) if vertical else ():
            cv2.line(img, (x, 0), (x, h), colour, thick)
        for y in range(r.i(0, step), h, step) if horizontal or not vertical else ():
            cv2.line(img, (0, y), (w, y), colour, thick)
    elif kind < 0.8:  # hatching
        for x in range(-h, w, step):
            cv2.line(img, (x, 0), (x + h, h), colour, thick, cv2.LINE_AA)
    else:
        for _ in range(r.i(3, 12)):
            cv2.line(img, (r.i(0, w), r.i(0, h)), (r.i(0, w), r.i(0, h)), colour, thick, cv2.LINE_AA)


# ----- the text -----------------------------------------------------------------------------------
#: Font sizes (pixels per em) glyphs are rendered at: a ladder 7% apart, so the glyph cache is hit
#: often; the text layer is then scaled to its exact size.
_PX_LADDER = sorted({round(8 * 1.07 ** k) for k in range(52)})
#: Text is not drawn smaller than this many pixels per em (capitals about 11 pixels high, lowercase
#: about 8) unless the canvas cannot widen enough to hold it.
MIN_PX = 15


def _ladder(px: float) -> int:
    """The largest ladder size not above ``px`` (the smallest one for tiny sizes)."""
    k = bisect.bisect_right(_PX_LADDER, px) - 1
    return _PX_LADDER[max(k, 0)]


@dataclass
class _Style:
    px: int              # pixels per em
    thick: int           # OpenCV stroke thickness
    weight: int          # > 0: strokes grown by this radius; < 0: thinned
    outline: int         # > 0: hollow characters with rims this wide
    rotation: float      # the largest per-character rotation (degrees)
    shear: float
    stretch: float       # horizontal scale
    gap: float           # space between characters' boxes, in em (negative: overlap)
    jitter: float        # vertical jitter, in em
    wave: tuple[float, float, float]  # baseline sine: amplitude (em), period (characters), phase
    warp: float          # per-character sine warp amplitude, in em


def _text_style(r: _Rand, cfg: SynthConfig, px: float) -> _Style:
    px = _ladder(px)
    bold = r.chance(cfg.p_bold)
    thin = not bold and px >= 24 and r.chance(cfg.p_thin)
    weight = max(1, round(px * r.u(0.02, 0.06))) if bold else (-1 if thin else 0)
    thick = 1 if r.chance(0.5) else max(1, round(px * r.u(0.04, 0.1)))
    outline = max(1, round(px * r.u(0.03, 0.06))) if px >= 22 and r.chance(cfg.p_outline) else 0
    rotation = cfg.max_rotation * r.u(0.2, 1.0) if r.chance(cfg.p_rotation) else 0.0
    shear = r.u(-0.35, 0.35) if r.chance(cfg.p_shear) else 0.0
    stretch = r.u(0.75, 1.3) if r.chance(cfg.p_stretch) else 1.0
    gap = r.u(-0.12, 0.25) if r.chance(0.85) else r.u(0.25, 0.6)
    jitter = r.u(0.02, 0.12) if r.chance(cfg.p_jitter) else 0.0
    wave = (r.u(0.05, 0.15), r.u(3, 8), r.u(0, TAU)) if r.chance(cfg.p_wave) else (0.0, 1.0, 0.0)
    warp = r.u(0.03, 0.07) if r.chance(cfg.p_char_warp) else 0.0
    return _Style(px, thick, weight, outline, rotation, shear, stretch, gap, jitter, wave, warp)


def _restroke(mask: np.ndarray, base: int, st: _Style) -> tuple[np.ndarray, int]:
    """The style's weight and outline applied to a glyph mask (padded first, so strokes can grow)."""
    grow = max(st.weight, 0) + st.outline
    if grow:
        mask = cv2.copyMakeBorder(mask, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0)
        base += grow
    if st.weight > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * st.weight + 1,) * 2))
    elif st.weight < 0:
        mask = cv2.erode(mask, np.ones((2, 2), np.uint8))
    if st.outline:
        inner = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * st.outline + 1,) * 2))
        mask = cv2.subtract(cv2.dilate(mask, np.ones((3, 3), np.uint8)), inner)
    return mask, base


def _styled_glyph(r: _Rand, font: FontInfo, ch: str, st: _Style) -> tuple[np.ndarray, float]:
    """One character's mask with the style's weight, outline, rotation, shear, stretch and warp,
    cropped to its ink; and the height of its centre relative to the baseline (negative: above)."""
    mask, base = _restroke(*_glyph_mask(font, st.px, ch, st.thick), st)
    h, w = mask.shape
    centre = h / 2 - base
    angle = math.radians(r.u(-st.rotation, st.rotation)) if st.rotation else 0.0
    if angle or st.shear or st.stretch != 1.0:
        sx, cos, sin = st.stretch * r.u(0.92, 1.08), math.cos(angle), math.sin(angle)
        # rotation after shear and horizontal scale, about the glyph's centre
        lin = np.array([[cos * sx, -cos * st.shear - sin], [sin * sx, -sin * st.shear + cos]])
        ext = np.abs(lin) @ np.array([w, h], float)  # the transformed box's width and height
        ow, oh = int(math.ceil(ext[0])) + 2, int(math.ceil(ext[1])) + 2
        shift = np.array([ow / 2, oh / 2]) - lin @ np.array([w / 2, h / 2])
        mask = cv2.warpAffine(mask, np.hstack([lin, shift[:, None]]), (ow, oh), flags=cv2.INTER_LINEAR)
        h, w = oh, ow
    if st.warp:
        mask = _sine_warp(mask, st.warp * st.px, r.u(0.5, 1.5) * st.px, r.u(0, TAU), cv2.BORDER_CONSTANT)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) and (len(rows) < h or len(cols) < w):
        centre += (rows[0] + rows[-1] + 1) / 2 - h / 2
        mask = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return mask, centre


def _sine_warp(img: np.ndarray, amp: float, period: float, phase: float, border: int) -> np.ndarray:
    """Columns move up and down, and rows (half as far) sideways, along sine waves of ``period`` px."""
    h, w = img.shape[:2]
    k = np.float32(TAU / max(period, 2.0))
    xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
    map_x = np.broadcast_to(xs[None, :] + (np.float32(amp * 0.5) * np.sin(ys * k + np.float32(phase)))[:, None], (h, w))
    map_y = np.broadcast_to(ys[:, None] + (np.float32(amp) * np.sin(xs * k + np.float32(phase * 1.7)))[None, :], (h, w))
    return cv2.remap(img, np.ascontiguousarray(map_x), np.ascontiguousarray(map_y), cv2.INTER_LINEAR,
                     borderMode=border)


@dataclass
class _Layer:
    """Text on its own: coverage ``alpha`` (h, w) in [0, 1], and its colour, either one ``colour``
    or a premultiplied ``rgb`` (h, w, 3) field (several colours)."""

    alpha: np.ndarray
    colour: Colour
    rgb: np.ndarray | None = None

    def scaled(self, f: float) -> "_Layer":
        h, w = self.alpha.shape
        size = (max(1, round(w * f)), max(1, round(h * f)))
        rgb = None if self.rgb is None else cv2.resize(self.rgb, size, interpolation=cv2.INTER_AREA)
        return _Layer(cv2.resize(self.alpha, size, interpolation=cv2.INTER_AREA), self.colour, rgb)


def _text_layer(r: _Rand, glyphs: list[tuple[np.ndarray, float]], colours: list[Colour],
                st: _Style) -> tuple[_Layer, list[tuple[int, int, int, int]]]:
    """The characters side by side on a layer just large enough, and each one's box (x0, y0, x1, y1)."""
    xs, x = [], 0.0
    widths = [m.shape[1] for m, _ in glyphs] + [0]
    for k, (mask, _) in enumerate(glyphs):
        xs.append(x)
        step = widths[k] + st.px * (st.gap + r.u(-0.05, 0.05))
        # overlap at most a quarter of the narrower neighbour, so neither hides behind the other
        x += max(step, widths[k] - 0.25 * min(widths[k], widths[k + 1] or widths[k]))
    amp, period, phase = st.wave
    tops = [cy - m.shape[0] / 2 + st.px * (st.jitter * r.u(-1, 1) + amp * math.sin(TAU * k / period + phase))
            for k, (m, cy) in enumerate(glyphs)]
    lift = min(tops)
    boxes = [(int(x0 + 0.5), int(t - lift + 0.5), int(x0 + 0.5) + m.shape[1], int(t - lift + 0.5) + m.shape[0])
             for x0, t, (m, _) in zip(xs, tops, glyphs)]
    shape = (max(b[3] for b in boxes), max(b[2] for b in boxes))
    alpha = np.zeros(shape, np.float32)
    one_colour = all(c == colours[0] for c in colours)
    rgb = None if one_colour else np.zeros(shape + (3,), np.float32)
    for (mask, _), (x0, y0, x1, y1), colour in zip(glyphs, boxes, colours):
        a = mask.astype(np.float32) * np.float32(1 / 255)
        keep = 1 - a
        if rgb is not None:  # "over" with premultiplied colour: later characters cover earlier ones
            region = rgb[y0:y1, x0:x1]
            region *= keep[..., None]
            region += a[..., None] * np.array(colour, np.float32)
        region = alpha[y0:y1, x0:x1]
        region *= keep
        region += a
    return _Layer(alpha, colours[0], rgb), boxes


def _gradient_fill(r: _Rand, layer: _Layer) -> None:
    """Recolour one-colour text with a gradient along the line to another colour of about the
    same luma (so the contrast with the background stays)."""
    start = np.array(layer.colour, np.float32)
    end = np.array(_colour(_luma(layer.colour) + r.u(-10, 10), r.u(0, TAU), r.u(30, 110)), np.float32)
    t = np.linspace(0, 1, layer.alpha.shape[1], dtype=np.float32)[None, :, None]
    layer.rgb = layer.alpha[..., None] * (start + t * (end - start))


def _paste(img: np.ndarray, layer: _Layer, x: int, y: int) -> None:
    """Composite the layer onto the uint8 image at (x, y), clipped to the image."""
    h, w = img.shape[:2]
    lh, lw = layer.alpha.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + lw, w), min(y + lh, h)
    if x0 >= x1 or y0 >= y1:
        return
    a = layer.alpha[y0 - y:y1 - y, x0 - x:x1 - x]
    region = img[y0:y1, x0:x1]
    if layer.rgb is None:
        colour = np.empty_like(region)
        colour[:] = (int(layer.colour[0] + 0.5), int(layer.colour[1] + 0.5), int(layer.colour[2] + 0.5))
        region[:] = cv2.blendLinear(colour, region, a, 1 - a)  # one pass in OpenCV
    else:
        out = layer.rgb[y0 - y:y1 - y, x0 - x:x1 - x] + region.astype(np.float32) * (1 - a)[..., None]
        region[:] = np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _shadow(r: _Rand, img: np.ndarray, layer: _Layer, x: int, y: int, sc: _Scheme) -> None:
    """A copy of the text in a colour halfway between background and text, a few pixels off."""
    c = tuple((a + b) / 2 for a, b in zip(sc.bg, sc.text[0]))
    d = max(1, round(layer.alpha.shape[0] * 0.06))
    _paste(img, _Layer(layer.alpha, c), x + r.i(-d, d + 1), y + r.i(1, d + 1))


# ----- clutter and distortion ---------------------------------------------------------------------
def _clutter(r: _Rand, cfg: SynthConfig, img: np.ndarray, box: tuple[int, int, int, int], sc: _Scheme,
             px: float) -> None:
    """Noise dots, arcs, and strike lines through the text box (x0, y0, x1, y1), none of them much
    thicker than the strokes of text of ``px`` pixels per em (which are about px / 10 wide)."""
    h, w = img.shape[:2]
    stroke = max(1, round(px * 0.11))
    if r.chance(cfg.p_dots):
        n = int(h * w * r.u(0.003, 0.04))
        ys, xs = r.np.integers(0, h, n), r.np.integers(0, w, n)
        img[ys, xs] = r.np.integers(0, 256, (n, 3), dtype=np.uint8) if r.chance(0.4) else _ink_colour(r, sc)
        if r.chance(0.4):
            colour = _ink_colour(r, sc)
            for _ in range(r.i(1, max(2, h * w // 300))):
                cv2.circle(img, (r.i(0, w), r.i(0, h)), r.i(1, stroke + 1), colour, -1, cv2.LINE_AA)
    if r.chance(cfg.p_arcs):
        for _ in range(r.i(1, 4)):
            axes = (int(w * r.u(0.1, 0.8)) + 1, int(h * r.u(0.1, 0.8)) + 1)
            start = r.u(0, 360)
            cv2.ellipse(img, (r.i(0, w), r.i(0, h)), axes, r.u(0, 180), start, start + r.u(60, 300),
                        _ink_colour(r, sc), r.i(1, stroke + 1), cv2.LINE_AA)
    if r.chance(cfg.p_strike):
        _strike(r, img, box, sc, stroke)


def _strike(r: _Rand, img: np.ndarray, box: tuple[int, int, int, int], sc: _Scheme, stroke: int) -> None:
    """One or two curved lines through the text, often in the text's own colour (then thinner than
    its strokes, so the characters still show through their own colour)."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = box
    s = np.linspace(0, 1, 24)
    for _ in range(1 if r.chance(0.85) else 2):
        left = x0 - r.u(0, 0.15) * w if r.chance(0.7) else 0
        right = x1 + r.u(0, 0.15) * w if r.chance(0.7) else w
        mid = (y0 + y1) / 2 + (y1 - y0) * r.u(-0.3, 0.3)
        tilt = (y1 - y0) * r.u(-0.4, 0.4)
        bend = (y1 - y0) * r.u(0, 0.3) * np.sin(TAU * r.u(0.3, 1.5) * s + r.u(0, TAU))
        pts = np.stack([left + (right - left) * s, mid + tilt * (s - 0.5) + bend], axis=1)
        c, own = sc.text[0], r.chance(0.6)
        colour = (int(c[0]), int(c[1]), int(c[2])) if own else _ink_colour(r, sc)
        thick = r.i(1, (max(1, round(stroke * 0.7)) if own else stroke) + 1)
        cv2.polylines(img, [np.round(pts).astype(np.int32)], False, colour, thick, cv2.LINE_AA)


_NOISE: list[np.ndarray] = []


def _noise_tile() -> np.ndarray:
    """A fixed field of standard normal noise (the same in every process), sliced at random
    offsets: much faster than fresh normal numbers for every pixel."""
    if not _NOISE:
        _NOISE.append(np.random.default_rng(20240611).standard_normal((320, 1280, 3), dtype=np.float32))
    return _NOISE[0]


def _distort(r: _Rand, cfg: SynthConfig, img: np.ndarray, px: float, hue_only: bool) -> np.ndarray:
    """Whole-image geometry (affine, warps), then low resolution, blur, noise and JPEG artefacts.
    The geometry stays small enough that text inside the margins stays inside the canvas, and
    the resolution and blur keep text of ``px`` pixels per em readable. Text told from its
    background by ``hue_only`` is spared low resolution and strong JPEG, whose coarse colour
    sampling would erase it."""
    h, w = img.shape[:2]
    if r.chance(cfg.p_affine):
        tilt = math.degrees(math.atan(0.1 * h / w))  # the line's ends move at most 5% of the height
        m = cv2.getRotationMatrix2D((w / 2, h / 2), r.u(-tilt, tilt), r.u(0.95, 1.03))
        shear = r.u(-0.12, 0.12)
        m[0, 1] += shear
        m[0, 2] -= shear * h / 2  # shear about the middle row, so the text stays in place
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if r.chance(cfg.p_warp):
        if r.chance(0.55):
            img = _sine_warp(img, h * r.u(0.02, 0.05), h * r.u(0.6, 2.5), r.u(0, TAU), cv2.BORDER_REPLICATE)
        else:
            img = _mesh_warp(r, img)
    if r.chance(cfg.p_lowres) and px > 16 and not hue_only:
        f = r.u(max(0.35, 12 / px), 0.8)  # never below about 12 pixels per em
        small = cv2.resize(img, (max(4, round(w * f)), max(4, round(h * f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST if r.chance(0.4) else cv2.INTER_LINEAR)
    if r.chance(cfg.p_blur):
        img = _blur(r, img, px)
    if r.chance(cfg.p_noise):
        tile = _noise_tile()
        th, tw = tile.shape[:2]
        if h > th or w > tw:
            tile = np.tile(tile, (h // th + 1, w // tw + 1, 1))
            th, tw = tile.shape[:2]
        oy, ox = r.i(0, th - h + 1), r.i(0, tw - w + 1)
        noisy = img + tile[oy:oy + h, ox:ox + w] * np.float32(r.u(3, 18))
        img = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    if r.chance(cfg.p_jpeg):
        ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, r.i(45, 90) if hue_only else r.i(10, 70)])
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else img
    return img


def _blur(r: _Rand, img: np.ndarray, px: float) -> np.ndarray:
    """Gaussian blur, or (a third of the time) motion blur along a random direction; at most
    about as wide as the strokes of text of ``px`` pixels per em."""
    if r.chance(0.67):
        return cv2.GaussianBlur(img, (0, 0), r.u(0.3, max(0.5, px * 0.035)))
    size = 2 * r.i(1, max(2, round(px * 0.06)) + 1) + 1
    kernel = np.zeros((size, size), np.float32)
    angle = r.u(0, math.pi)
    half = (size - 1) / 2
    end = (half * math.cos(angle), half * math.sin(angle))
    cv2.line(kernel, (round(half - end[0]), round(half - end[1])), (round(half + end[0]), round(half + end[1])), 1.0)
    return cv2.filter2D(img, -1, kernel / max(float(kernel.sum()), 1.0))


def _mesh_warp(r: _Rand, img: np.ndarray) -> np.ndarray:
    """A smooth random displacement: a coarse grid of offsets, interpolated to every pixel."""
    h, w = img.shape[:2]
    gw = max(3, round(w / h * 1.5))
    coarse = (r.np.random((3, gw, 2), dtype=np.float32) * 2 - 1) * np.float32(h * r.u(0.02, 0.05))
    dx, dy = cv2.split(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC))
    map_x = dx + np.arange(w, dtype=np.float32)[None, :]
    map_y = dy + np.arange(h, dtype=np.float32)[:, None]
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# ----- the renderer -------------------------------------------------------------------------------
#: Character classes a label sometimes keeps to, as many captcha families do.
_CLASSES = (string.digits, string.ascii_lowercase + string.digits, string.ascii_uppercase + string.digits,
            string.ascii_letters, string.ascii_lowercase)


def _font_groups(fonts: Sequence[FontInfo], weights: dict[str, float]
                 ) -> tuple[list[float], list[list[list[FontInfo]]]]:
    """Fonts by source, then by family: (source weights, [source][family] -> fonts)."""
    groups: dict[str, dict[str, list[FontInfo]]] = {}
    for f in fonts:
        groups.setdefault(f.source.split(":")[0], {}).setdefault(f.family, []).append(f)
    names = [s for s in groups if weights.get(s, 1.0) > 0] or list(groups)
    return [weights.get(s, 1.0) for s in names], [list(groups[s].values()) for s in names]


class SynthRenderer:
    """Draws synthetic captchas (:meth:`sample`) and glyphs (:meth:`glyph`), deterministically.

    Args:
        config: what to draw (:class:`SynthConfig`; by default the whole default alphabet).
        seed: with the index, seeds every random choice: renderers with the same seed, config
            and fonts draw identical images.

    Raises OptionError where no font draws some character of the alphabet. A renderer pickles,
    and its fonts travel with it, so DataLoader workers use the same fonts without searching.
    """

    def __init__(self, config: SynthConfig | None = None, seed: int = 0):
        if int(seed) < 0:
            raise OptionError(f"seed {seed}: give a whole number of at least 0")
        self.config = config or SynthConfig()
        self.seed = int(seed)
        #: The usable fonts, each with its source, licence and the characters it draws.
        self.fonts: tuple[FontInfo, ...] = discover_fonts(self.config)
        self._groups = _font_groups(self.fonts, dict(self.config.source_weights))

    def __repr__(self) -> str:
        return f"SynthRenderer(seed={self.seed}, fonts={len(self.fonts)}, alphabet={self.config.alphabet!r})"

    def _rand(self, index: int, stream: int) -> _Rand:
        if int(index) < 0:
            raise OptionError(f"index {index}: give a whole number of at least 0")
        return _Rand((self.seed, int(index), stream))

    def _pick_font(self, r: _Rand, needed: str) -> FontInfo:
        """A font that draws ``needed``: a source by weight, one of its families, one of its fonts."""
        weights, groups = self._groups
        if needed:
            fonts = [f for f in self.fonts if set(needed) <= set(f.chars)]
            if not fonts:
                raise OptionError(f"no usable font draws all of {needed!r}")
            weights, groups = _font_groups(fonts, dict(self.config.source_weights))
        return r.pick(r.pick(groups[r.weighted(weights)]))

    def _pick_text(self, r: _Rand, font: FontInfo) -> str:
        cfg = self.config
        pool = font.chars
        if r.chance(0.3):  # now and then keep to one class of characters, as many families do
            subset = "".join(ch for ch in pool if ch in r.pick(_CLASSES))
            pool = subset if len(subset) >= 4 else pool
        return "".join(r.pick(pool) for _ in range(r.i(cfg.min_length, cfg.max_length + 1)))

    def _check_text(self, text: str) -> None:
        outside = sorted(set(text) - set(self.config.alphabet))
        if outside or not text:
            raise OptionError(f"text {text!r}: " + (f"{''.join(outside)!r} not in the alphabet" if outside
                                                    else "give at least one character"))

    def sample(self, index: int, *, text: str | None = None) -> tuple[np.ndarray, str]:
        """The ``index``-th captcha: (uint8 (H, W, 3) RGB image, its label). ``text`` draws that
        text instead of a random one (its characters must be in the alphabet)."""
        cfg = self.config
        r = self._rand(index, 0)
        if text is not None:
            self._check_text(text)
        font = self._pick_font(r, text or "")
        text = text if text is not None else self._pick_text(r, font)
        h = int(round(math.exp(r.u(math.log(cfg.height[0]), math.log(cfg.height[1] + 0.5)))))
        lowest = min(max(cfg.aspect[0], 0.33 * len(text)), cfg.aspect[1])
        w = max(8, round(h * r.u(lowest, cfg.aspect[1])))
        small = r.chance(cfg.p_small_text)
        fill_w = r.u(0.28, 0.42) if small else r.u(0.55, 0.94)
        fill_h = r.u(0.5, 0.8)
        sc = _colour_scheme(r, cfg, len(text))
        st = _text_style(r, cfg, max(fill_h * h / 1.1, MIN_PX))
        layer, _ = _text_layer(r, [_styled_glyph(r, font, ch, st) for ch in text], sc.text, st)
        if layer.rgb is None and r.chance(cfg.p_gradient_text):
            _gradient_fill(r, layer)
        lh, lw = layer.alpha.shape
        scale = min(1.0, fill_h * h / lh, fill_w * w / lw)
        if scale * st.px < MIN_PX:  # too small to read: widen the canvas (up to the largest aspect)
            scale = min(1.0, MIN_PX / st.px, 0.9 * h / lh)
            w = max(w, min(math.ceil(lw * scale / fill_w), round(h * cfg.aspect[1])))
            scale = min(scale, 0.94 * w / lw)
        if scale < 0.98:
            layer = layer.scaled(scale)
            lh, lw = layer.alpha.shape
        img = _background(r, cfg, h, w, sc)
        x = round((w - lw) / 2 + r.u(-0.5, 0.5) * (w - lw) * (0.3 if small else 0.9))
        y = round((h - lh) / 2 + r.u(-0.3, 0.3) * (h - lh))
        if r.chance(cfg.p_shadow):
            _shadow(r, img, layer, x, y, sc)
        _paste(img, layer, x, y)
        _clutter(r, cfg, img, (x, y, x + lw, y + lh), sc, st.px * min(scale, 1.0))
        return _distort(r, cfg, img, st.px * min(scale, 1.0), sc.spread < 10), text

    def glyph(self, index: int, size: tuple[int, int] = GLYPH_SIZE, *, char: str | None = None
              ) -> tuple[np.ndarray, str]:
        """The ``index``-th single-character image: (uint8 (height, width, 3) RGB, its character),
        ``size`` = (width, height). The character is centred (give ``char`` to choose it); parts of
        its neighbours often show at the edges, as in glyphs cut out of captchas."""
        cfg = self.config
        gw, gh = (int(v) for v in size)
        if gw < 8 or gh < 8:
            raise OptionError(f"glyph size {size}: give (width, height), each at least 8 pixels")
        if char is not None and (len(char) != 1 or char not in cfg.alphabet):
            raise OptionError(f"char {char!r}: give one character of the alphabet")
        r = self._rand(index, 1)
        font = self._pick_font(r, char or "")
        ch = char if char is not None else r.pick(font.chars)
        left = r.pick(font.chars) if r.chance(0.5) else ""
        right = r.pick(font.chars) if r.chance(0.5) else ""
        sc = _colour_scheme(r, cfg, len(left) + 1 + len(right))
        img = _background(r, cfg, gh, gw, sc)
        fill_h = r.u(0.45, 0.85)
        st = _text_style(r, cfg, fill_h * gh / 0.8)
        st.gap = max(st.gap, 0.25)  # neighbours show at the edges, never over the character
        layer, boxes = _text_layer(r, [_styled_glyph(r, font, c, st) for c in left + ch + right], sc.text, st)
        x0, y0, x1, y1 = boxes[len(left)]
        scale = min(1.0, 0.92 * gw / (x1 - x0), fill_h * gh / (y1 - y0))
        if scale < 0.98:
            layer = layer.scaled(scale)
            x0, y0, x1, y1 = (v * scale for v in (x0, y0, x1, y1))
        x = round(gw / 2 + r.u(-0.06, 0.06) * gw - (x0 + x1) / 2)
        y = round(gh / 2 + r.u(-0.06, 0.06) * gh - (y0 + y1) / 2)
        _paste(img, layer, x, y)
        _clutter(r, cfg, img, (round(x + x0), round(y + y0), round(x + x1), round(y + y1)), sc,
                 min(st.px * min(scale, 1.0), gw * 0.6))  # clutter sized for the small canvas
        return _distort(r, cfg, img, st.px * min(scale, 1.0), sc.spread < 10), ch


# ----- the sample sheet and the command -----------------------------------------------------------
def _label_font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def sample_sheet(renderer: SynthRenderer, n: int, path: str | os.PathLike, *, glyphs: bool = False,
                 start: int = 0, columns: int | None = None) -> Path:
    """Write a PNG grid of samples ``start`` .. ``start + n - 1`` (or glyphs), each with its label
    beneath; returns the path. Images keep their shapes: shrunk to fit a cell, or enlarged (at most
    twice, pixels kept sharp) where small."""
    if n < 1:
        raise OptionError(f"n {n}: give at least 1")
    items = [renderer.glyph(i) if glyphs else renderer.sample(i) for i in range(start, start + n)]
    box_w, box_h = (64, 104) if glyphs else (300, 110)
    cols = columns or (12 if glyphs else 4)
    label_h, pad = 20, 6
    cell_w, cell_h = box_w + 2 * pad, box_h + label_h + 2 * pad
    rows = (n + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _label_font(15)
    for k, (img, label) in enumerate(items):
        h, w = img.shape[:2]
        f = min(box_w / w, box_h / h, 2.0)
        tile = Image.fromarray(img).resize((max(1, round(w * f)), max(1, round(h * f))),
                                           Image.NEAREST if f > 1 else Image.LANCZOS)
        cx, cy = (k % cols) * cell_w, (k // cols) * cell_h
        sheet.paste(tile, (cx + pad + (box_w - tile.width) // 2, cy + pad + (box_h - tile.height) // 2))
        if isinstance(font, ImageFont.FreeTypeFont):
            draw.text((cx + cell_w // 2, cy + pad + box_h + 3), label, fill=(0, 0, 0), font=font, anchor="mt")
        else:  # Pillow's bitmap fallback font cannot be anchored
            draw.text((cx + pad, cy + pad + box_h + 3), label, fill=(0, 0, 0), font=font)
    out = Path(path)
    sheet.save(out)
    return out


def images_per_second(renderer: SynthRenderer, n: int, start: int = 1_000_000,
                      glyphs: bool = False) -> tuple[float, float]:
    """(images per second of wall time, per second of this process's CPU time) over ``n`` images
    from index ``start``, rendered by this thread after a few that warm the caches. On a machine
    busy with other work the CPU figure is the one that says what one free core would do."""
    draw = renderer.glyph if glyphs else renderer.sample
    for i in range(start - 20, start):
        draw(i)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(start, start + n):
        draw(i)
    return n / (time.perf_counter() - wall), n / max(time.process_time() - cpu, 1e-9)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.synth", __doc__)
    ap.add_argument("--out", default="synth_sheet.png", help="PNG sample sheet to write")
    ap.add_argument("--n", type=cli.positive_int, default=48, help="images on the sheet")
    ap.add_argument("--seed", type=cli.non_negative_int, default=0, help="renderer seed")
    ap.add_argument("--start", type=cli.non_negative_int, default=0, help="index of the first image")
    ap.add_argument("--glyphs", action="store_true", help="single-character glyphs instead of captchas")
    ap.add_argument("--columns", type=cli.positive_int, help="images per row (default: 4, or 12 glyphs)")
    ap.add_argument("--alphabet", default=DEFAULT_ALPHABET, help="characters labels are drawn from")
    ap.add_argument("--min-length", type=cli.positive_int, default=3, help="shortest label")
    ap.add_argument("--max-length", type=cli.positive_int, default=8, help="longest label")
    ap.add_argument("--height", type=cli.positive_int, nargs=2, default=[30, 150], metavar=("LOW", "HIGH"),
                    help="range of canvas heights in pixels")
    ap.add_argument("--bench", type=cli.non_negative_int, default=300,
                    help="images rendered to measure the speed on one core (0: skip)")
    return ap


def run(args: argparse.Namespace) -> int:
    cli.check_image_out(args.out)
    config = SynthConfig(alphabet=args.alphabet, min_length=args.min_length, max_length=args.max_length,
                         height=tuple(args.height))
    renderer = SynthRenderer(config, seed=args.seed)
    print(f"{len(renderer.fonts)} fonts:")
    for f in renderer.fonts:
        where = f" {f.path}" if f.path else ""
        print(f"  [{f.source}] {f.name}: {f.licence}; draws {len(f.chars)}/{len(config.alphabet)}{where}")
    out = sample_sheet(renderer, args.n, args.out, glyphs=args.glyphs, start=args.start, columns=args.columns)
    print(f"wrote {out}: {args.n} {'glyphs' if args.glyphs else 'captchas'} from index {args.start}")
    if args.bench:
        cv2.setNumThreads(1)  # the figure is for one core, as each rendering worker runs
        wall, cpu = images_per_second(renderer, args.bench, glyphs=args.glyphs)
        print(f"speed, one core: {cpu:,.0f} images per CPU-second, {wall:,.0f} images/s of wall time "
              f"({args.bench} images)")
    sys.stdout.flush()
    return 0


main = cli.command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
