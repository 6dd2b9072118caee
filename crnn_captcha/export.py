"""Export a checkpoint to ONNX, for the faster ONNX Runtime path of CaptchaReader on the CPU.

    python -m crnn_captcha.export                                  # the shipped model
    python -m crnn_captcha.export --checkpoint runs/mine/best.pt   # -> runs/mine/best.onnx

The .onnx file is written beside the checkpoint (or to --out) and records the SHA-256 of the
checkpoint it came from; CaptchaReader uses it only when that matches, so a stale export is never
read in place of a retrained model. Needs the `onnx` package (`pip install -e ".[dev]"`).
"""
from __future__ import annotations

import argparse

from . import cli

cli.require_training("export", also=('onnx',))  # before the imports that need it

from .errors import OptionError  # noqa: E402
from .read.shipped import default_checkpoint  # noqa: E402
from .training.export import export_onnx  # noqa: E402


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.export", __doc__)
    ap.add_argument("--onnx", action="store_true", help="export to ONNX (the only format, also without this flag)")
    ap.add_argument("--checkpoint", help="checkpoint to export (default: the shipped model)")
    ap.add_argument("--out", help="output path (default: the checkpoint's path with .onnx)")
    return ap


def run(args: argparse.Namespace) -> int:
    try:
        path = export_onnx(args.checkpoint or default_checkpoint(), args.out)
    except ImportError as e:
        raise OptionError(f"exporting needs the onnx package ({e}); pip install onnx") from None
    print(f"wrote {path}")
    return 0


main = cli.command(build_parser, run)


if __name__ == "__main__":
    raise SystemExit(main())
