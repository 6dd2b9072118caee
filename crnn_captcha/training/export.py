"""Export a checkpoint to ONNX, tied to it by the checkpoint's hash and describing its model, so
reading it needs no PyTorch (:mod:`crnn_captcha.read.onnx_model`)."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import OptionError
from ..files import atomic_write
from ..read.checkpoint import build_crnn, load_checkpoint
from ..read.onnx_model import (
    ABOUT_KEY,
    PROBE_KEY,
    SHA_KEY,
    describe_model,
    record_probe,
)
from ..read.shipped import file_sha256


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
    ckpt = load_checkpoint(checkpoint)
    model, _, pre = build_crnn(ckpt, checkpoint)
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
        proto.metadata_props.add(key=ABOUT_KEY, value=describe_model(ckpt, model.config.frames))
        import onnxruntime as ort

        ort_session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        proto.metadata_props.add(key=PROBE_KEY, value=record_probe(ort_session, pre))  # its outputs, as made
        onnx.save(proto, tmp)

    atomic_write(out, write)
    return out


