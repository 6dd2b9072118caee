"""CaptchaReader: read captchas with a trained checkpoint.

    from crnn_captcha import CaptchaReader
    reader = CaptchaReader()                     # the shipped default model
    reader.read("226md.png")                     # -> "226md"
    reader.predict("226md.png")                  # -> Prediction(text, confidence, char_confidences)
    reader.read_batch(["a.png", "b.png"], batch_size=64)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .charset import Decoded
from .checkpoint import CheckpointError, build_crnn, load_checkpoint
from .images import ImageError, ImageInput, describe, preprocess

DEFAULT_CHECKPOINT_NAME = "captcha_v2.pt"


def default_checkpoint() -> Path:
    """The shipped model: packaged as ``crnn_captcha.checkpoints`` (the repository's
    ``checkpoints/`` folder), found in the source tree for an editable install."""
    try:
        from importlib.resources import files

        path = Path(str(files("crnn_captcha.checkpoints") / DEFAULT_CHECKPOINT_NAME))
        if path.exists():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "checkpoints" / DEFAULT_CHECKPOINT_NAME


def _onnx_session(checkpoint: Path, threads: int, required: bool):
    """An ONNX Runtime session for the export beside ``checkpoint`` (``<name>.onnx``), or None
    where there is none, onnxruntime is missing, or the export was made from another checkpoint."""
    onnx_path = checkpoint.with_suffix(".onnx")
    try:
        import onnxruntime as ort
    except ImportError:
        if required:
            raise ValueError("backend 'onnx' needs the onnxruntime package") from None
        return None
    if not onnx_path.exists():
        if required:
            raise CheckpointError(f"{onnx_path}: no ONNX export; run python -m crnn_captcha.export --onnx --checkpoint {checkpoint}")
        return None
    from .export import SHA_KEY, file_sha256

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for a bad file
        raise CheckpointError(f"{onnx_path}: not a readable ONNX model ({str(e).splitlines()[0][:200]})") from None
    made_from = session.get_modelmeta().custom_metadata_map.get(SHA_KEY)
    if made_from != file_sha256(checkpoint):
        if required:
            raise CheckpointError(f"{onnx_path}: exported from another checkpoint than {checkpoint}; export again")
        return None
    return session


@dataclass(frozen=True)
class Prediction:
    """What the reader made of one image.

    Attributes:
        text: the string read ("" when the image failed).
        confidence: in [0, 1], the product of the per-character confidences.
        char_confidences: one value in [0, 1] per character.
        source: the image's name (a path, or a description of an in-memory input).
        error: None, or why this image could not be read (only with ``errors="mark"``).
    """

    text: str
    confidence: float
    char_confidences: tuple[float, ...] = field(default_factory=tuple)
    source: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class CaptchaReader:
    """Reads whole captchas with a CRNN checkpoint.

    Args:
        checkpoint: path of a checkpoint of ours (default: the shipped model).
        device: "auto" (CUDA if available), "cpu" or "cuda".
        decoder: "greedy" (default) or "beam".
        beam_width: beams for "beam".
        length: if given, read exactly this many characters.
        allowed: if given, read only these characters (a subset of the model's charset).
        threads: CPU threads to use (default: torch's setting).
        backend: "auto" (ONNX Runtime on the CPU when onnxruntime is installed and an up-to-date
            export sits beside the checkpoint, else PyTorch), "torch" or "onnx".

    Reading changes no state (PyTorch runs under ``torch.inference_mode()``, and an ONNX Runtime
    session may be run from several threads), so one reader may be shared by several threads.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        device: str = "auto",
        decoder: str = "greedy",
        beam_width: int = 10,
        length: int | None = None,
        allowed: str | None = None,
        threads: int | None = None,
        backend: str = "auto",
    ):
        path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
        if checkpoint is None and not path.exists():
            raise CheckpointError(f"{path}: the shipped default model is missing from this install")
        ckpt = load_checkpoint(path)
        self.checkpoint_path = path
        self.model, self.charset, self.preprocess = build_crnn(ckpt, path)
        self.metrics = dict(ckpt.get("metrics", {}))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but no CUDA GPU is available")
        self.device = torch.device(device)
        if threads:
            torch.set_num_threads(threads)
        self.model.to(self.device).eval().fuse_batchnorm()
        if backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"unknown backend {backend!r}; use 'auto', 'torch' or 'onnx'")
        self.session = None
        if backend == "onnx" or (backend == "auto" and self.device.type == "cpu"):
            self.session = _onnx_session(path, threads or torch.get_num_threads(), required=backend == "onnx")
        self.backend = "onnx" if self.session is not None else "torch"
        if decoder not in ("greedy", "beam"):
            raise ValueError(f"unknown decoder {decoder!r}; use 'greedy' or 'beam'")
        self.charset.char_mask(allowed)  # fail now on characters the model cannot read
        self.decoder, self.beam_width, self.length, self.allowed = decoder, beam_width, length, allowed

    def __repr__(self) -> str:
        return (f"CaptchaReader({str(self.checkpoint_path)!r}, device={str(self.device)!r}, "
                f"backend={self.backend!r}, charset={self.charset.chars!r})")

    # ----- core ---------------------------------------------------------------------------------
    def log_probs(self, batch: torch.Tensor) -> np.ndarray:
        """(N, 1, H, W) preprocessed images -> (N, T, C) log-probabilities."""
        if self.session is not None:
            logits = self.session.run(None, {"image": batch.numpy()})[0].astype(np.float64)
            logits -= logits.max(axis=2, keepdims=True)
            return logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
        with torch.inference_mode():
            logits = self.model(batch.to(self.device))
            return logits.float().log_softmax(2).cpu().numpy()

    def _decode(self, lp: np.ndarray, source: str, **opts) -> Prediction:
        d: Decoded = self.charset.decode(
            lp,
            method=opts.get("decoder") or self.decoder,
            beam_width=opts.get("beam_width") or self.beam_width,
            length=opts.get("length", self.length),
            allowed=opts.get("allowed", self.allowed),
        )
        return Prediction(d.text, d.confidence, d.char_confidences, source)

    # ----- public API ---------------------------------------------------------------------------
    def predict(self, image: ImageInput, **opts) -> Prediction:
        """Read one image; returns text, confidence and per-character confidences.

        ``opts`` may override ``decoder``, ``beam_width``, ``length`` and ``allowed`` for this call.

        Raises:
            ImageError: naming the image and what is wrong with it.
        """
        name = describe(image)
        x = preprocess(image, self.preprocess, name).unsqueeze(0)
        return self._decode(self.log_probs(x)[0], name, **opts)

    def read(self, image: ImageInput, **opts) -> str:
        """Read one image and return its text."""
        return self.predict(image, **opts).text

    def predict_batch(
        self, images: Iterable[ImageInput], batch_size: int = 64, errors: str = "raise", **opts
    ) -> list[Prediction]:
        """Read many images in batches; results in input order.

        Args:
            errors: "raise" (an unreadable image raises :class:`ImageError` naming it) or "mark"
                (its entry has ``ok == False`` and ``error`` set; the rest are read).
        """
        if errors not in ("raise", "mark"):
            raise ValueError("errors must be 'raise' or 'mark'")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        images = list(images)
        results: list[Prediction | None] = [None] * len(images)
        for start in range(0, len(images), batch_size):
            tensors, where = [], []
            for i in range(start, min(start + batch_size, len(images))):
                name = describe(images[i])
                try:
                    tensors.append(preprocess(images[i], self.preprocess, name))
                    where.append((i, name))
                except ImageError as e:
                    if errors == "raise":
                        raise
                    results[i] = Prediction("", 0.0, (), name, str(e))
            if tensors:
                lps = self.log_probs(torch.stack(tensors))
                for (i, name), lp in zip(where, lps):
                    results[i] = self._decode(lp, name, **opts)
        return results  # type: ignore[return-value]

    def read_batch(
        self, images: Sequence[ImageInput], batch_size: int = 64, errors: str = "raise", **opts
    ) -> list[str | None]:
        """Texts of many images in input order; with ``errors="mark"`` a failed image gives None."""
        return [p.text if p.ok else None for p in self.predict_batch(images, batch_size, errors, **opts)]
