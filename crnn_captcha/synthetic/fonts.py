"""Fonts: finding them (system, bundled with packages, Pillow's, OpenCV's), their licences, the
characters each draws distinctly, and one character's mask at a size (cached)."""
from __future__ import annotations

import importlib.util
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import OptionError
from .config import SynthConfig

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
    *((name, "GNU AGPL 3 with the font exception (URW base 35, Debian fonts-urw-base35)")
      for name in ("c059", "nimbus", "p052", "urw ", "z003")),
    ("comic neue", "SIL OFL 1.1"),
    ("caladea", "SIL OFL 1.1"),
    ("wenquanyi", "Apache 2.0 or GNU GPL 3 with the font exception"),
    *((name, "BaKoMa fonts licence (free to use and redistribute unmodified)")
      for name in ("cmb10", "cmex10", "cmmi10", "cmr10", "cmss10", "cmsy10", "cmtt10")),  # matplotlib's
)


#: Names (file or family, lowercase) of picture fonts: their "letters" are symbols or icons.
PICTURE_FONTS = ("wingding", "webding", "dingbat", "symbol", "awesome", "icons", "emoji", "marlett", "mdl2",
                 "d050000l")  # URW's clone of ITC Zapf Dingbats


HERSHEY_FACES = ("SIMPLEX", "PLAIN", "DUPLEX", "COMPLEX", "TRIPLEX", "COMPLEX_SMALL",
                 "SCRIPT_SIMPLEX", "SCRIPT_COMPLEX")


PILLOW_KEY = "<pillow>"


_MISSING_PROBE = "\U0010fffd"  # a private-use code point no text font maps: draws the "missing" glyph


_PROBE_PX = 32


#: The glyph cache's budget in bytes of masks. Masks average under 1 KB, and a long pretraining run
#: keeps meeting new (font, size, character) triples, so a large cache keeps paying: with 16,384
#: masks a rendering process redrew 4.7 of a captcha's 5.5 glyphs, with 256 MB 2.0 by its 50,000th
#: captcha (docs/pretraining.md, "Speed").
_GLYPH_CACHE_BYTES = 256 * 2**20


_FONT_CACHE_SIZE = 512


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
_GLYPH_CACHE_USED = [0]  # bytes of the masks in _GLYPH_CACHE


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
    hit = _GLYPH_CACHE.pop(key, None)
    if hit is not None:
        _GLYPH_CACHE[key] = hit  # now the most recently used
    else:
        mask, base = _opencv_mask(font.face, px, ch, thick) if font.face is not None else \
            _freetype_mask(font.key, px, ch)
        mask = mask.copy() if mask.base is not None else mask  # a crop would keep its whole canvas
        mask.setflags(write=False)
        if _GLYPH_CACHE_USED[0] + mask.nbytes > _GLYPH_CACHE_BYTES:
            _evict_least_recent_half()
        hit = _GLYPH_CACHE[key] = (mask, base)
        _GLYPH_CACHE_USED[0] += mask.nbytes
    return hit


def _evict_least_recent_half() -> None:
    """Drop the least recently used half of the glyph cache (the dict's order; a hit moves its mask
    to the end): the commonest glyphs stay, which clearing the cache would lose."""
    keys = list(_GLYPH_CACHE)
    for key in keys[:len(keys) // 2 + 1]:
        _GLYPH_CACHE_USED[0] -= _GLYPH_CACHE.pop(key)[0].nbytes


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


