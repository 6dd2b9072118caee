"""Export a checkpoint to ONNX, tied to it by the checkpoint's hash."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import OptionError
from ..read.checkpoint import (
    SHA_KEY,
    atomic_write,
    build_crnn,
    file_sha256,
    load_checkpoint,
)


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


