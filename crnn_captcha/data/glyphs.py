"""Glyph sets: reading one (the Kaggle 118K format) and cutting one from a split's captchas.

A glyph's label is the part of its name before the first underscore (``d_7678.png`` is a ``d``), the
Kaggle "CAPTCHA Characters Dataset (118K)" convention; glyphs may also sit in one folder per class.
"""
from __future__ import annotations

import sys
import tarfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from ..errors import CaptchaWarning, LabelError, OptionError
from ..read.charset import Charset
from ..read.ctc import force_align
from ..read.images import (
    MAX_FILE_BYTES,
    PreprocessConfig,
    load_gray,
    load_image,
    preprocess,
    resize_image,
    to_tensor,
)
from .labels import IMAGE_SUFFIXES, Augment, Sample, listing
from .positions import cell_edges, text_extent

GLYPH_W, GLYPH_H = 32, 52


def _glyph_label(name: str) -> str:
    return Path(name).name.split("_")[0]


def read_glyph_files(src: str | Path, subfolder: str | None = None) -> list[tuple[str, str, bytes]]:
    """``(name, label, png bytes)`` for every glyph image in a folder (flat or one folder per
    class) or a ``.tar.gz``/``.tar`` archive, sorted by name. The label is the file name's part
    before the first ``_``; a file without ``_`` takes its class folder's name. With ``subfolder``
    only files below a folder of that name are read."""
    src = Path(src)
    out: list[tuple[str, str, bytes]] = []

    def wanted(rel: str) -> bool:
        if Path(rel).suffix.lower() not in IMAGE_SUFFIXES:
            return False
        return subfolder is None or subfolder.strip("/") in rel.split("/")[:-1]

    def label_for(rel: str) -> str:
        parts = rel.split("/")
        if "_" in parts[-1]:
            return _glyph_label(parts[-1])
        return parts[-2] if len(parts) >= 2 else ""

    if src.is_dir():
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src).as_posix()
            if p.is_file() and wanted(rel):
                _check_size(str(p), p.stat().st_size)
                out.append((str(p), label_for(rel), p.read_bytes()))
    elif src.is_file() and src.name.endswith((".tar.gz", ".tgz", ".tar")):
        # Read members in archive order (a gzip stream cannot seek back cheaply), in memory:
        # the archive is never unpacked to disk.
        with tarfile.open(src) as tar:
            for m in tar:
                if m.isfile() and wanted(m.name):
                    _check_size(f"{src}:{m.name}", m.size)  # from the header, before it is read
                    f = tar.extractfile(m)
                    if f is not None:
                        out.append((f"{src}:{m.name}", label_for(m.name), f.read()))
        out.sort(key=lambda item: item[0])
    else:
        raise OptionError(f"{src}: not a folder or a .tar.gz of glyph images")
    return out


def _check_size(name: str, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise OptionError(f"{name}: {size:,} bytes, more than the {MAX_FILE_BYTES:,} an image may have (not a glyph)")


class GlyphDataset(Dataset):
    """Single characters: item ``i`` is ``(image (1, H, W), class index)``.

    Args:
        src: folder or archive (see :func:`read_glyph_files`), or a list of ``(name, label, bytes)``.
        cfg: the glyph input size (its aspect check is off: glyphs vary in shape).
        charset: the classes; by default found from the labels and printed.
        subfolder: keep only files under this folder of the archive/folder (e.g.
            ``tahabakhtari_subset``).
        skip_invalid: leave out files whose label is not one character of the charset.
        progress: show a progress bar while the images are decoded.
    """

    def __init__(
        self,
        src,
        cfg: PreprocessConfig,
        charset: Charset | None = None,
        augment: Augment | None = None,
        subfolder: str | None = None,
        skip_invalid: bool = False,
        progress: bool = False,
    ):
        files = read_glyph_files(src, subfolder) if isinstance(src, (str, Path)) else list(src)
        if not files:
            where = f"{src}" + (f" (below {subfolder})" if subfolder else "")
            raise LabelError(f"{where}: no glyph images (<char>_<n>.png, or one folder per class)")
        if charset is None:
            charset = Charset.from_labels(lbl for _, lbl, _ in files if len(lbl) == 1 and lbl.isprintable())
            print(f"glyph alphabet ({len(charset)}): {charset.chars}", file=sys.stderr)
        bad = [f"{Path(n).name}: label {lbl!r} is not one character of {charset.chars!r}"
               for n, lbl, _ in files if len(lbl) != 1 or lbl not in charset]
        if bad and not skip_invalid:
            raise LabelError(f"{len(bad)} glyph file(s) have invalid labels (the skip-invalid option leaves them "
                             f"out): {listing(bad)}")
        if bad:
            warnings.warn(f"skipped {len(bad)} glyph file(s) with invalid labels: {listing(bad)}", CaptchaWarning,
                          stacklevel=2)
        files = [f for f in files if len(f[1]) == 1 and f[1] in charset]
        if progress:
            files = tqdm(files, desc="decoding glyphs", file=sys.stderr, leave=False)
        self.cfg = PreprocessConfig(**{**cfg.to_dict(), "max_aspect_error": 0.0})
        self.charset = charset
        self.augment = augment
        self.names = [n for n, _, _ in files]
        self.labels = [charset.encode(lbl, source=n)[0] - 1 for n, lbl, _ in files]  # 0-based class
        self.images = [resize_image(load_image(b, n, color=self.cfg.color), self.cfg, n) for n, _, b in files]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        gray = self.images[i]
        if self.augment is not None:
            gray = self.augment(gray)
        return to_tensor(gray, self.cfg), self.labels[i]


def safe_in_name(ch: str) -> bool:
    """A character that can lead a ``<char>_<n>.png`` file name and be read back from it: not a path
    separator, a dot (hidden files), the underscore (the separator) or a control character."""
    return ch.isprintable() and ch not in '/\\._:*?"<>|'


def split_extent(x0: float, x1: float, n: int) -> list[tuple[float, float]]:
    """``n`` equal (centre, width) cells across [x0, x1)."""
    edges = cell_edges(x0, x1, n)
    return [((a + b) / 2, b - a) for a, b in zip(edges[:-1], edges[1:])]


def ctc_cells(gray: np.ndarray, label: str, reader, source: str = "") -> list[tuple[float, float]]:
    """(centre, width) of each character from a forced CTC alignment to ``label``."""
    lp = reader.log_probs(preprocess(gray, reader.preprocess).unsqueeze(0))[0]  # (T, C)
    spans = force_align(lp, reader.charset.encode(label, source=source))
    scale = gray.shape[1] / lp.shape[0]  # image columns per frame
    centres = [((a + b - 1) / 2 + 0.5) * scale for a, b in spans]  # the mean frame of each run
    gaps = np.diff(centres) if len(centres) > 1 else np.array([gray.shape[1] / 6])
    width = float(np.median(gaps))
    return [(c, width) for c in centres]


def crop(gray: np.ndarray, centre: float, width: float, margin: float = 1.3) -> np.ndarray:
    """A full-height window around ``centre``, resized to 32x52 like the 118K glyphs."""
    h, w = gray.shape
    half = width * margin / 2
    a, b = int(round(max(0, centre - half))), int(round(min(w, centre + half)))
    if b - a < 2:
        a, b = max(0, a - 1), min(w, a + 2)
    img = Image.fromarray(np.ascontiguousarray(gray[:, a:b]), "L").resize((GLYPH_W, GLYPH_H), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def cut_glyphs(
    samples: Sequence[Sample], method: str = "projection", reader=None
) -> list[tuple[str, np.ndarray, str]]:
    """``(char, 32x52 crop, source file)`` for every character of every sample."""
    grays = [load_gray(s.path) for s in tqdm(samples, desc="reading captchas", file=sys.stderr, leave=False, disable=None)]
    if method == "fixed":
        spans = [text_extent(g) for g in grays]
        fixed = (float(np.median([s[0] for s in spans])), float(np.median([s[1] for s in spans])))
    out = []
    for s, g in zip(samples, grays):
        if method == "projection":
            cells = split_extent(*text_extent(g), len(s.label))
        elif method == "fixed":
            cells = split_extent(*fixed, len(s.label))
        elif method == "ctc":
            if reader is None:
                raise OptionError("--method ctc needs a reader (--align-checkpoint)")
            cells = ctc_cells(g, s.label, reader, str(s.path))
        else:
            raise OptionError(f"unknown method {method!r}; use projection, fixed or ctc")
        for ch, (c, w) in zip(s.label, cells):
            out.append((ch, crop(g, c, w), str(s.path)))
    return out


def contact_sheet(glyphs: Sequence[tuple[str, np.ndarray]], per_class: int = 12) -> Image.Image:
    """One row per class: up to ``per_class`` glyphs of it."""
    by_class: dict[str, list[np.ndarray]] = {}
    for ch, img in glyphs:
        by_class.setdefault(ch, [])
        if len(by_class[ch]) < per_class:
            by_class[ch].append(img)
    rows = []
    for ch in sorted(by_class):
        cells = by_class[ch] + [np.full((GLYPH_H, GLYPH_W), 255, np.uint8)] * (per_class - len(by_class[ch]))
        rows.append(np.concatenate([np.pad(c, 1, constant_values=255) for c in cells], axis=1))
    sheet = np.concatenate(rows, axis=0) if rows else np.full((GLYPH_H, GLYPH_W), 255, np.uint8)
    return Image.fromarray(sheet, "L")


