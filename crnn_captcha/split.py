"""Train/val/test split of a folder of labelled captchas (or a manifest) into CSV manifests.

    python scripts/split_data.py --src ../shared/data/captcha_v2 --out data/splits
    crnn-captcha split --src DIR --out data/splits --label-from prefix     # labels like aB3x_17.png
    crnn-captcha split --src DIR/labels.csv --out data/splits              # what `label DIR` wrote

The split depends only on the file names and the seed (files are sorted before a seeded shuffle),
so it is the same on every machine. Source images are only read, never moved or changed, and the
output folder may not lie inside the source folder. Every image is decoded once to check it
(--no-check skips that); hidden files (``.name``, macOS ``._name``) are left out with a count.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from . import cli
from .data.labels import Sample, alphabet_of, listing, load_samples, write_manifest
from .data.split import split_samples
from .errors import CaptchaWarning, ImageError, OptionError, OverwriteError
from .files import check_out_folder
from .read.images import load_gray

SPLITS = ("train", "val", "test")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.split", __doc__)
    ap.add_argument("--src", required=True, help="folder of labelled images, or a manifest (path,label) of them "
                                                 "(only read, never written)")
    ap.add_argument("--out", default="data/splits", help="folder for train.csv, val.csv, test.csv (not inside --src)")
    ap.add_argument("--ratios", type=cli.ratio, nargs=3, default=(0.75, 0.125, 0.125),
                    metavar=("TRAIN", "VAL", "TEST"), help="relative sizes of the three parts")
    ap.add_argument("--seed", type=cli.non_negative_int, default=0, help="seed of the shuffle")
    ap.add_argument("--length", type=cli.non_negative_int, default=0,
                    help="label length every file must have (0: any length; rare lengths are still named)")
    cli.add_label_options(ap)
    ap.add_argument("--no-check", action="store_true", help="do not decode every image to check it (faster)")
    ap.add_argument("--force", action="store_true", help="overwrite existing split files")
    return ap


def check_out(out: Path, src: Path, force: bool) -> None:
    """The output folder must not be (or lie inside) the data folder, be a file, or hold a split."""
    check_out_folder(out)
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise OptionError(f"--out {out} is inside the data folder {src}; the data folder is only read, never "
                          "written: choose a folder outside it")
    existing = [out / f"{name}.csv" for name in SPLITS if (out / f"{name}.csv").exists()]
    if existing and not force:
        raise OverwriteError(f"{existing[0]} already exists; pass --force to overwrite the split")


def check_samples(samples: list[Sample], args: argparse.Namespace) -> list[Sample]:
    """Warn about repeated labels and rare lengths; decode every image unless --no-check."""
    if not samples:
        raise OptionError(f"no labelled images in {args.src}")
    repeated = [lbl for lbl, n in Counter(s.label for s in samples).items() if n > 1]
    if repeated and args.label_from == "stem":
        warnings.warn(f"{len(repeated)} label(s) name more than one file (e.g. {repeated[0]!r}: "
                      f"{', '.join(s.path.name for s in samples if s.label == repeated[0])})", CaptchaWarning)
    lengths = Counter(len(s.label) for s in samples)
    rare = [s.path.name for s in samples if lengths[len(s.label)] < 0.01 * len(samples)]
    if rare and not args.length:
        warnings.warn(f"{len(rare)} file(s) have a label length that fewer than 1% of the files share (mislabelled? "
                      f"--length N makes other lengths an error): {listing(rare)}", CaptchaWarning)
    if args.no_check:
        return samples
    bad, good = [], []
    for s in tqdm(samples, desc="checking images", file=sys.stderr, leave=False, disable=None):
        try:
            load_gray(s.path)
            good.append(s)
        except ImageError as e:
            bad.append(str(e))
    if bad and not args.skip_invalid:
        raise ImageError(f"{len(bad)} image(s) cannot be read (the skip-invalid option leaves them out): {listing(bad)}")
    if bad:
        warnings.warn(f"skipped {len(bad)} image(s) that cannot be read: {listing(bad)}", CaptchaWarning)
    return good


def run(args: argparse.Namespace) -> int:
    out, src = Path(args.out), Path(args.src)
    if not src.exists():
        raise OptionError(f"--src {src}: no such folder or manifest")
    check_out(out, src if src.is_dir() else src.parent, args.force)
    samples = load_samples(src, length=args.length or None, skip_invalid=args.skip_invalid,
                           label_from=args.label_from, label_regex=args.label_regex)
    samples = check_samples(samples, args)
    parts = split_samples(samples, args.ratios, args.seed)
    empty = [name for name, ratio in zip(SPLITS, args.ratios) if ratio > 0 and not parts[name]]
    if empty:
        raise OptionError(f"{len(samples)} image(s) are too few for the ratios {' '.join(map(str, args.ratios))}: "
                          f"{' and '.join(empty)} would be empty; add images or change --ratios")
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        write_manifest(out / f"{name}.csv", parts[name])
    alphabet = alphabet_of(samples)
    info = {"src": str(src.resolve()), "seed": args.seed, "ratios": list(args.ratios),
            "counts": {k: len(v) for k, v in parts.items()}, "alphabet": alphabet}
    (out / "split.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(samples)} images from {args.src}")
    print(f"alphabet ({len(alphabet)}): {alphabet}")
    for name in SPLITS:
        print(f"{name:5s} {len(parts[name]):5d}  -> {out / (name + '.csv')}")
    train_chars = set(alphabet_of(parts["train"])) if parts["train"] else set()
    for name in ("val", "test"):
        missing = sorted(set(alphabet_of(parts[name])) - train_chars) if parts[name] else []
        if missing:
            warnings.warn(f"{name} holds character(s) {''.join(missing)!r} that never occur in train", CaptchaWarning)
    return 0


main = cli.command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
