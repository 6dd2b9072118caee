"""Train/val/test split of a folder of labelled captchas into CSV manifests.

    python scripts/split_data.py --src ../shared/data/captcha_v2 --out data/splits

The split depends only on the file names and the seed (files are sorted before a seeded shuffle),
so it is the same on every machine. Source images are only read, never moved or changed.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Sequence

from . import cli
from .data import Sample, alphabet_of, scan_folder, write_manifest
from .errors import OptionError, OverwriteError

SPLITS = ("train", "val", "test")


def split_samples(
    samples: Sequence[Sample], ratios: Sequence[float] = (0.75, 0.125, 0.125), seed: int = 0
) -> dict[str, list[Sample]]:
    """Disjoint train/val/test lists that together hold every sample once.

    Sizes are ``round(n * ratio)`` for val and test, the rest for train.
    """
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise OptionError(f"ratios must be three non-negative numbers, got {list(ratios)}")
    total = float(sum(ratios))
    ordered = sorted(samples, key=lambda s: (s.path.name, s.label))
    random.Random(seed).shuffle(ordered)
    n = len(ordered)
    n_val = round(n * ratios[1] / total)
    n_test = round(n * ratios[2] / total)
    n_train = n - n_val - n_test
    return {
        "train": ordered[:n_train],
        "val": ordered[n_train : n_train + n_val],
        "test": ordered[n_train + n_val :],
    }


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.split", __doc__)
    ap.add_argument("--src", required=True, help="folder of <label>.<png|jpg> files (only read)")
    ap.add_argument("--out", default="data/splits", help="folder for train.csv, val.csv, test.csv")
    ap.add_argument("--ratios", type=cli.non_negative_float, nargs=3, default=(0.75, 0.125, 0.125),
                    metavar=("TRAIN", "VAL", "TEST"), help="relative sizes of the three parts")
    ap.add_argument("--seed", type=cli.non_negative_int, default=0, help="seed of the shuffle")
    ap.add_argument("--length", type=cli.non_negative_int, default=5, help="label length (0: any)")
    ap.add_argument("--skip-invalid", action="store_true", help="leave out files whose names are not valid labels")
    ap.add_argument("--force", action="store_true", help="overwrite existing split files")
    return ap


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    existing = [out / f"{name}.csv" for name in SPLITS if (out / f"{name}.csv").exists()]
    if existing and not args.force:
        raise OverwriteError(f"{existing[0]} already exists; pass --force to overwrite the split")
    samples = scan_folder(args.src, length=args.length or None, skip_invalid=args.skip_invalid)
    parts = split_samples(samples, args.ratios, args.seed)
    if not samples:
        raise OptionError(f"no labelled images in {args.src}")
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        write_manifest(out / f"{name}.csv", parts[name])
    alphabet = alphabet_of(samples)
    info = {
        "src": str(Path(args.src).resolve()),
        "seed": args.seed,
        "ratios": list(args.ratios),
        "counts": {k: len(v) for k, v in parts.items()},
        "alphabet": alphabet,
    }
    (out / "split.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"{len(samples)} images from {args.src}")
    print(f"alphabet ({len(alphabet)}): {alphabet}")
    for name in SPLITS:
        print(f"{name:5s} {len(parts[name]):5d}  -> {out / (name + '.csv')}")
    train_chars = set(alphabet_of(parts["train"])) if parts["train"] else set()
    for name in ("val", "test"):
        missing = sorted(set(alphabet_of(parts[name])) - train_chars) if parts[name] else []
        if missing:
            print(f"warning: {name} holds character(s) {''.join(missing)!r} that never occur in train", file=sys.stderr)
    return 0


main = cli.command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
