"""Write a sheet of synthetic pretraining captchas (or glyphs), list the fonts found, and time the renderer.

    python -m crnn_captcha.synth --out sheet.png --n 48 --seed 0 [--glyphs]
    python -m crnn_captcha.synth --out styles.png --styles       # each style the renderer draws, alone

What the renderer draws: :mod:`crnn_captcha.synthetic`.
"""
from __future__ import annotations

import argparse
import sys

from . import cli

cli.require_training("synth")  # before the imports that need it

import cv2  # noqa: E402

from .errors import OptionError  # noqa: E402
from .files import check_image_out  # noqa: E402
from .synthetic.config import DEFAULT_ALPHABET, SynthConfig  # noqa: E402
from .synthetic.renderer import SynthRenderer  # noqa: E402
from .synthetic.sheet import images_per_second, sample_sheet, style_sheet  # noqa: E402


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.synth", __doc__)
    ap.add_argument("--out", default="synth_sheet.png", help="PNG sample sheet to write")
    ap.add_argument("--n", type=cli.sheet_size, default=48, help="images on the sheet (at most 10,000)")
    ap.add_argument("--seed", type=cli.non_negative_int, default=0, help="renderer seed")
    ap.add_argument("--start", type=cli.non_negative_int, default=0, help="index of the first image")
    ap.add_argument("--glyphs", action="store_true", help="single-character glyphs instead of captchas")
    ap.add_argument("--styles", action="store_true",
                    help="instead: one row per style the renderer draws, each style alone (4 captchas a row)")
    ap.add_argument("--columns", type=cli.positive_int, help="images per row (default: 4, or 12 glyphs)")
    ap.add_argument("--alphabet", default=DEFAULT_ALPHABET, help="characters labels are drawn from")
    ap.add_argument("--min-length", type=cli.positive_int, default=3, help="shortest label")
    ap.add_argument("--max-length", type=cli.positive_int, default=8, help="longest label")
    ap.add_argument("--height", type=cli.positive_int, nargs=2, default=[30, 150], metavar=("LOW", "HIGH"),
                    help="range of canvas heights in pixels")
    ap.add_argument("--bench", type=cli.non_negative_int, default=300,
                    help="images rendered to measure the speed on one core (0: skip)")
    ap.add_argument("--warm", type=cli.non_negative_int, default=20,
                    help="images rendered before the timed ones, filling the caches as a long run does (at most 1,000,000)")
    return ap


def run(args: argparse.Namespace) -> int:
    check_image_out(args.out)
    if args.warm > 1_000_000:
        raise OptionError(f"--warm {args.warm}: at most 1,000,000 (the timed images start at index 1,000,000)")
    if args.styles:
        out = style_sheet(args.out, seed=args.seed)
        print(f"wrote {out}: one row per style, each alone")
        return 0
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
        wall, cpu = images_per_second(renderer, args.bench, glyphs=args.glyphs, warm=args.warm)
        print(f"speed, one core: {cpu:,.0f} images per CPU-second, {wall:,.0f} images/s of wall time "
              f"({args.bench} images, after {args.warm:,})")
    sys.stdout.flush()
    return 0


main = cli.command(build_parser, run)


if __name__ == "__main__":
    raise SystemExit(main())
