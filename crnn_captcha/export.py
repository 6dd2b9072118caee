"""Export a checkpoint to ONNX, for the faster ONNX Runtime path of CaptchaReader on the CPU.

    python -m crnn_captcha.export                                  # the shipped model
    python -m crnn_captcha.export --checkpoint runs/mine/best.pt   # -> runs/mine/best.onnx

The .onnx file is written beside the checkpoint (or to --out) and records the SHA-256 of the
checkpoint it came from; CaptchaReader uses it only when that matches, so a stale export is never
read in place of a retrained model. Needs the `onnx` package (`pip install -e ".[dev]"`).
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

from . import cli
from .checkpoint import SHA_KEY, atomic_write, build_crnn, default_checkpoint, file_sha256, load_checkpoint
from .errors import OptionError


def export_onnx(checkpoint: str | Path, out: str | Path | None = None) -> Path:
    """Write the checkpoint's model as ONNX (input ``image`` (N, C, H, W), output ``logits``
    (N, T, C)) and return its path."""
    import onnx  # only needed here

    checkpoint = Path(checkpoint)
    out = Path(out) if out else checkpoint.with_suffix(".onnx")
    if out.suffix.lower() != ".onnx":
        raise OptionError(f"--out {out}: an ONNX export's name ends in .onnx (the reader looks for <checkpoint>.onnx)")
    if out.exists() and out.is_dir():
        raise OptionError(f"--out {out} is a folder, not a file name")
    model, _, pre = build_crnn(load_checkpoint(checkpoint), checkpoint)
    model.fuse_batchnorm()
    dummy = torch.zeros(1, pre.channels, pre.height, pre.width)

    def write(tmp: str) -> None:
        # The TorchScript-based exporter (dynamo=False) needs no onnxscript; torch warns that it is
        # the legacy one and that an LSTM's batch handling is fixed at export: both expected here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, dummy, tmp, input_names=["image"], output_names=["logits"],
                dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
            )
        proto = onnx.load(tmp)
        proto.metadata_props.add(key=SHA_KEY, value=file_sha256(checkpoint))
        onnx.save(proto, tmp)

    atomic_write(out, write)
    return out


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
