"""Export a checkpoint to ONNX, for the faster ONNX Runtime path of CaptchaReader on the CPU.

    python -m crnn_captcha.export --onnx                                  # the shipped model
    python -m crnn_captcha.export --onnx --checkpoint runs/mine/best.pt   # -> runs/mine/best.onnx

The .onnx file is written beside the checkpoint (or to --out) and records the SHA-256 of the
checkpoint it came from; CaptchaReader uses it only when that matches, so a stale export is never
read in place of a retrained model. Needs the `onnx` package (`pip install -e ".[dev]"`).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import warnings
from pathlib import Path

import torch

from .checkpoint import CheckpointError, atomic_write, build_crnn, load_checkpoint

SHA_KEY = "crnn_captcha.checkpoint_sha256"


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_onnx(checkpoint: str | Path, out: str | Path | None = None) -> Path:
    """Write the checkpoint's model as ONNX (input ``image`` (N, 1, H, W), output ``logits``
    (N, T, C)) and return its path."""
    import onnx  # only needed here

    checkpoint = Path(checkpoint)
    model, _, pre = build_crnn(load_checkpoint(checkpoint), checkpoint)
    model.fuse_batchnorm()
    out = Path(out) if out else checkpoint.with_suffix(".onnx")
    dummy = torch.zeros(1, 1, pre.height, pre.width)

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m crnn_captcha.export", description="Export a checkpoint.")
    ap.add_argument("--onnx", action="store_true", required=True, help="export to ONNX (the only format)")
    ap.add_argument("--checkpoint", help="checkpoint to export (default: the shipped model)")
    ap.add_argument("--out", help="output path (default: the checkpoint's path with .onnx)")
    args = ap.parse_args(argv)
    from .reader import default_checkpoint

    try:
        path = export_onnx(args.checkpoint or default_checkpoint(), args.out)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"error: exporting needs the onnx package ({e}); pip install onnx", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
