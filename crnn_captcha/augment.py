"""Write a grid of augmented training images, to see what training shows the model.

    python -m crnn_captcha.augment --data ../shared/data/captcha_v2 --out aug_grid.png
"""
from __future__ import annotations

import argparse

from . import cli

cli.require_training("augment")  # before the imports that need it

from .data.augment import Augmenter, sample_grid  # noqa: E402
from .errors import OptionError  # noqa: E402
from .files import check_image_out  # noqa: E402
from .read.images import PreprocessConfig  # noqa: E402


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.augment", __doc__)
    ap.add_argument("--data", required=True, help="folder of labelled captchas or a CSV manifest")
    ap.add_argument("--out", default="augment_grid.png", help="PNG to write")
    ap.add_argument("--n", type=cli.positive_int, default=8, help="number of source images (rows)")
    ap.add_argument("--copies", type=cli.positive_int, default=5, help="augmented copies per row")
    ap.add_argument("--height", type=cli.positive_int, default=PreprocessConfig.height, help="model input height")
    ap.add_argument("--width", type=cli.positive_int, default=PreprocessConfig.width, help="model input width")
    ap.add_argument("--scale", type=cli.positive_int, default=2, help="enlarge the grid this many times")
    ap.add_argument("--seed", type=cli.non_negative_int, default=0, help="augmentation seed")
    return ap


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from .data.labels import load_samples
    from .read.images import load_gray, resize_image

    check_image_out(args.out)
    cfg = PreprocessConfig(height=args.height, width=args.width)
    samples = load_samples(args.data, length=None, skip_invalid=True)[: args.n]
    if not samples:
        raise OptionError(f"{args.data}: no labelled images")
    grays = [resize_image(load_gray(s.path), cfg, str(s.path)) for s in samples]
    grid = sample_grid(grays, Augmenter(seed=args.seed), args.copies)
    img = Image.fromarray(grid, "L")
    img = img.resize((img.width * args.scale, img.height * args.scale), Image.NEAREST)
    img.save(args.out)
    print(f"wrote {args.out}: {len(samples)} rows x {args.copies} augmented copies")
    return 0


main = cli.command(build_parser, run)


if __name__ == "__main__":
    raise SystemExit(main())
