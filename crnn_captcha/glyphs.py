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

from PIL import Image
from tqdm import tqdm

from . import cli

cli.require_training("glyphs")  # before the imports that need it

from .data.augment import Augmenter  # noqa: E402
from .data.glyphs import contact_sheet, cut_glyphs, safe_in_name  # noqa: E402
from .data.labels import load_samples  # noqa: E402
from .errors import CaptchaWarning, OptionError, OverwriteError  # noqa: E402
from .files import check_out_folder  # noqa: E402


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.glyphs", __doc__)
    ap.add_argument("--split", required=True, help="manifest (CSV path,label) or folder; use the TRAIN split")
    ap.add_argument("--out", required=True, help="folder to write <char>_<n>.png files into")
    ap.add_argument("--copies", type=cli.copies, default=20, help="augmented copies per crop (0: crops only; at most 1,000)")
    ap.add_argument("--method", choices=["projection", "fixed", "ctc"], default="projection", help="how characters are found")
    ap.add_argument("--align-checkpoint", help="CRNN checkpoint for --method ctc")
    ap.add_argument("--seed", type=cli.non_negative_int, default=0, help="seed of the augmented copies")
    ap.add_argument("--force", action="store_true", help="write into a folder that already holds glyphs")
    return ap


def run(args: argparse.Namespace) -> int:
    out = check_out_folder(args.out)
    if args.method == "ctc" and not args.align_checkpoint:
        raise OptionError("--method ctc needs --align-checkpoint")
    if out.exists() and any(out.glob("*.png")) and not args.force:
        raise OverwriteError(f"{out} already holds glyphs; pass --force to add to it or choose another --out")
    samples = load_samples(args.split, length=None)
    reader = None
    if args.method == "ctc":
        from .read.reader import CaptchaReader

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
