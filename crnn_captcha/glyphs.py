"""A leak-free single-glyph set, cut from the captchas of one split (the train split).

    python scripts/make_glyphs.py --split data/splits/train.csv --out data/glyphs/train
    python scripts/make_glyphs.py --split data/splits/val.csv --out data/glyphs/val --copies 0

Writes the Kaggle "CAPTCHA Characters Dataset (118K)" format: 32 wide x 52 high gray PNGs named
``<char>_<n>.png``, with ``--copies`` augmented copies of each crop (the 118K set made about 20),
plus ``<out>_contact_sheet.png`` beside the folder; prints the count per class. The source images are only read.

How the characters are found (``--method``):
- ``projection`` (default): the text's horizontal extent is where columns hold enough dark pixels
  (the thin strike line does not reach the threshold); it is cut into equal parts, one per character.
- ``fixed``: the same equal parts of a fixed extent measured once over the split.
- ``ctc``: a trained CRNN's forced CTC alignment to the known label places each character
  (``--align-checkpoint``; the model must itself be trained on this split or a subset of it).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from . import cli
from .augment import Augmenter
from .ctc import force_align
from .data import Sample, load_samples
from .errors import CaptchaWarning, OptionError, OverwriteError
from .images import load_gray, preprocess
from .layout import cell_edges, text_extent

GLYPH_W, GLYPH_H = 32, 52


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


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.glyphs", __doc__)
    ap.add_argument("--split", required=True, help="manifest (CSV path,label) or folder; use the TRAIN split")
    ap.add_argument("--out", required=True, help="folder to write <char>_<n>.png files into")
    ap.add_argument("--copies", type=cli.non_negative_int, default=20, help="augmented copies per crop (0: crops only)")
    ap.add_argument("--method", choices=["projection", "fixed", "ctc"], default="projection", help="how characters are found")
    ap.add_argument("--align-checkpoint", help="CRNN checkpoint for --method ctc")
    ap.add_argument("--seed", type=cli.non_negative_int, default=0, help="seed of the augmented copies")
    ap.add_argument("--force", action="store_true", help="write into a folder that already holds glyphs")
    return ap


def run(args: argparse.Namespace) -> int:
    out = cli.check_out_folder(args.out)
    if args.method == "ctc" and not args.align_checkpoint:
        raise OptionError("--method ctc needs --align-checkpoint")
    if out.exists() and any(out.glob("*.png")) and not args.force:
        raise OverwriteError(f"{out} already holds glyphs; pass --force to add to it or choose another --out")
    samples = load_samples(args.split, length=None)
    reader = None
    if args.method == "ctc":
        from .reader import CaptchaReader

        reader = CaptchaReader(args.align_checkpoint, device="cpu")
    crops = cut_glyphs(samples, args.method, reader)
    out.mkdir(parents=True, exist_ok=True)
    augment = Augmenter(strength=0.8, strike_line=False, seed=args.seed) if args.copies else None
    counts: Counter = Counter()
    written = []
    unsafe = sorted({ch for ch, _, _ in crops if not safe_in_name(ch)})
    if unsafe:
        warnings.warn(f"left out the glyphs of {''.join(unsafe)!r}: the 118K format puts the character in the file "
                      "name, where these cannot stand", CaptchaWarning)
        crops = [c for c in crops if safe_in_name(c[0])]
    for ch, img, _ in tqdm(crops, desc="writing glyphs", file=sys.stderr, leave=False, disable=None):
        versions = [img] + [augment(img) for _ in range(args.copies)] if augment else [img]
        for v in versions:
            Image.fromarray(v, "L").save(out / f"{ch}_{counts[ch]}.png")
            counts[ch] += 1
        written.append((ch, img))
    sheet = out.parent / f"{out.name}_contact_sheet.png"  # beside, not inside: the folder holds glyphs only
    contact_sheet(written).save(sheet)
    print(f"{len(crops)} crops from {len(samples)} captchas ({args.method}); {sum(counts.values())} files in {out}")
    print("per class: " + " ".join(f"{c}:{counts[c]}" for c in sorted(counts)))
    print(f"contact sheet: {sheet}")
    return 0


main = cli.command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
