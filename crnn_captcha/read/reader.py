"""CaptchaReader: read captchas with a trained checkpoint.

    from crnn_captcha import CaptchaReader
    reader = CaptchaReader()                     # the shipped default model
    reader.read("226md.png")                     # -> "226md"
    reader.predict("226md.png")                  # -> Prediction(text, confidence, char_confidences)
    reader.read_batch(["a.png", "b.png"], batch_size=64)
    reader.read("226md.png", decoder="beam", length=5)   # options for one call (keyword-only)
    text = await reader.aread("226md.png")       # from an event loop: the model runs in a thread
"""
from __future__ import annotations

import asyncio
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..errors import CaptchaWarning, CheckpointError, ImageError, OptionError
from .checkpoint import (
    SHA_KEY,
    build_crnn,
    default_checkpoint,
    file_sha256,
    load_checkpoint,
)
from .ctc import Decoded, DecodeOptions, allowed_mask, decode_batch, log_softmax
from .device import pick_device
from .images import ImageInput, describe, file_problem, preprocess
from .model import CRNN

BACKENDS = ("auto", "torch", "onnx")


class TorchRunner:
    """The model in PyTorch, on the CPU or a GPU."""

    name = "torch"

    def __init__(self, model: CRNN, device: torch.device):
        self.device = device
        self.model = model.to(device).eval().fuse_batchnorm()

    def log_probs(self, batch: torch.Tensor) -> np.ndarray:
        """(N, C_in, H, W) preprocessed images -> (N, T, C) log-probabilities."""
        with torch.inference_mode():
            logits = self.model(batch.to(self.device))
            return logits.float().log_softmax(2).cpu().numpy()


class OnnxRunner:
    """The model's ONNX export on ONNX Runtime (CPU): the faster path for one image at a time."""

    name = "onnx"

    def __init__(self, session):
        self.session = session

    def log_probs(self, batch: torch.Tensor) -> np.ndarray:
        """(N, C_in, H, W) preprocessed images -> (N, T, C) log-probabilities."""
        return log_softmax(self.session.run(None, {"image": batch.numpy()})[0])

    @classmethod
    def open(cls, checkpoint: Path, threads: int, required: bool) -> "OnnxRunner | None":
        """A runner for the export beside ``checkpoint`` (``<name>.onnx``), or None where there
        is none, onnxruntime is missing, or the export is unusable or was made from another
        checkpoint (then with a warning). With ``required`` each of those is an error instead."""
        try:
            return cls(_onnx_session(checkpoint, threads))
        except (CheckpointError, OptionError) as e:
            if required:
                raise
            if not isinstance(e, _NoExport):
                warnings.warn(f"{e}; reading with PyTorch instead", CaptchaWarning, stacklevel=3)
            return None


class _NoExport(CheckpointError):
    """No export beside the checkpoint (not worth a warning on the way to PyTorch)."""


def _onnx_session(checkpoint: Path, threads: int):
    """An ONNX Runtime session for ``<checkpoint>.onnx``, checked against the checkpoint's hash."""
    onnx_path = checkpoint.with_suffix(".onnx")
    try:
        import onnxruntime as ort
    except ImportError:
        raise OptionError("backend 'onnx' needs the onnxruntime package") from None
    if not onnx_path.exists():
        raise _NoExport(f"{onnx_path}: no ONNX export; run python -m crnn_captcha.export --checkpoint {checkpoint}")
    problem = file_problem(onnx_path, "ONNX file")
    if problem:
        raise CheckpointError(f"{onnx_path}: {problem}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        made_from = session.get_modelmeta().custom_metadata_map.get(SHA_KEY)
    except Exception as e:  # onnxruntime raises its own types for a bad file
        raise CheckpointError(f"{onnx_path}: not a readable ONNX model ({' '.join(str(e).split())[:200]})") from None
    if made_from != file_sha256(checkpoint):
        raise CheckpointError(f"{onnx_path}: exported from another checkpoint than {checkpoint}; export again")
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
        options: how to decode (:class:`DecodeOptions`: decoder, beam_width, length, allowed);
            single options may be given as keywords instead, e.g. ``decoder="beam"``.
        threads: CPU threads for ONNX Runtime (default: torch's current setting). The reader never
            changes the process's PyTorch thread count; call ``torch.set_num_threads`` for that.
        backend: "auto" (ONNX Runtime on the CPU when onnxruntime is installed and an up-to-date
            export sits beside the checkpoint, else PyTorch), "torch" or "onnx".

    Every argument after ``checkpoint`` is keyword-only. Reading changes no state (PyTorch runs
    under ``torch.inference_mode()``, and an ONNX Runtime session may be run from several threads),
    so one reader may be shared by several threads.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        *,
        device: str = "auto",
        options: DecodeOptions | None = None,
        threads: int | None = None,
        backend: str = "auto",
        **decoding: Any,
    ):
        if backend not in BACKENDS:
            raise OptionError(f"backend {backend!r} is unknown; use 'auto', 'torch' or 'onnx'")
        self.options = (options or DecodeOptions()).replace(**decoding)
        path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
        if checkpoint is None and not path.exists():
            raise CheckpointError(f"{path}: the shipped default model is missing from this install")
        ckpt = load_checkpoint(path)
        self.checkpoint_path = path
        model, self.charset, self.preprocess = build_crnn(ckpt, path)
        self.frames = model.config.frames
        self._check(self.options)  # fail now on options the model cannot honour
        self.metrics = dict(ckpt.get("metrics", {}))
        self.device = pick_device(device)
        self.runner: TorchRunner | OnnxRunner | None = None
        if backend == "onnx" or (backend == "auto" and self.device.type == "cpu"):
            self.runner = OnnxRunner.open(path, threads or torch.get_num_threads(), required=backend == "onnx")
        if self.runner is None:
            self.runner = TorchRunner(model, self.device)
        self.backend = self.runner.name

    def __repr__(self) -> str:
        return (f"CaptchaReader({str(self.checkpoint_path)!r}, device={str(self.device)!r}, "
                f"backend={self.backend!r}, charset={self.charset.chars!r})")

    # ----- core ---------------------------------------------------------------------------------
    def log_probs(self, batch: torch.Tensor) -> np.ndarray:
        """(N, C_in, H, W) preprocessed images -> (N, T, C) log-probabilities."""
        return self.runner.log_probs(batch)

    def _options(self, options: DecodeOptions | None, changes: dict[str, Any]) -> DecodeOptions:
        """This call's options: ``options`` (or the reader's) with ``changes``, checked against the model."""
        opts = (options or self.options).replace(**changes)
        if opts is not self.options:
            self._check(opts)
        return opts

    def _check(self, opts: DecodeOptions) -> None:
        """Options this model can honour: allowed characters it knows, a length its frames hold."""
        allowed_mask(self.charset, opts.allowed)
        if opts.length is not None and opts.length > self.frames:
            raise OptionError(f"length {opts.length} is more than this model can read: its input gives "
                              f"{self.frames} frames, so at most {self.frames} characters")

    # ----- public API ---------------------------------------------------------------------------
    def predict(self, image: ImageInput, *, options: DecodeOptions | None = None, **changes: Any) -> Prediction:
        """Read one image; returns text, confidence and per-character confidences.

        ``options`` replaces the reader's decoding options for this call; keywords change single
        ones (``decoder``, ``beam_width``, ``length``, ``allowed``); any other keyword is an error.

        Raises:
            ImageError: naming the image and what is wrong with it.
            OptionError: a bad option value.
        """
        opts = self._options(options, changes)
        name = describe(image)
        x = preprocess(image, self.preprocess, name).unsqueeze(0)
        d: Decoded = decode_batch(self.log_probs(x), self.charset, opts)[0]
        return Prediction(d.text, d.confidence, d.char_confidences, name)

    def read(self, image: ImageInput, *, options: DecodeOptions | None = None, **changes: Any) -> str:
        """Read one image and return its text (options as for :meth:`predict`)."""
        return self.predict(image, options=options, **changes).text

    def predict_batch(
        self, images: Iterable[ImageInput], batch_size: int = 64, errors: str = "raise", *,
        options: DecodeOptions | None = None, **changes: Any,
    ) -> list[Prediction]:
        """Read many images in batches; results in input order.

        Args:
            batch_size: images per model call.
            errors: "raise" (an unreadable image raises :class:`ImageError` naming it) or "mark"
                (its entry has ``ok == False`` and ``error`` set; the rest are read).
        """
        if errors not in ("raise", "mark"):
            raise OptionError(f"errors must be 'raise' or 'mark', got {errors!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise OptionError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
        opts = self._options(options, changes)
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
                decoded = decode_batch(self.log_probs(torch.stack(tensors)), self.charset, opts)
                for (i, name), d in zip(where, decoded):
                    results[i] = Prediction(d.text, d.confidence, d.char_confidences, name)
        return results  # type: ignore[return-value]

    def read_batch(
        self, images: Sequence[ImageInput], batch_size: int = 64, errors: str = "raise", *,
        options: DecodeOptions | None = None, **changes: Any,
    ) -> list[str | None]:
        """Texts of many images in input order; with ``errors="mark"`` a failed image gives None."""
        preds = self.predict_batch(images, batch_size, errors, options=options, **changes)
        return [p.text if p.ok else None for p in preds]

    # ----- for callers in an event loop --------------------------------------------------------
    async def apredict(self, image: ImageInput, **options) -> Prediction:
        """:meth:`predict` in a worker thread, so the event loop keeps running meanwhile."""
        return await asyncio.to_thread(lambda: self.predict(image, **options))

    async def aread(self, image: ImageInput, **options) -> str:
        """:meth:`read` in a worker thread, so the event loop keeps running meanwhile."""
        return (await self.apredict(image, **options)).text

    async def apredict_batch(self, images: Iterable[ImageInput], batch_size: int = 64, errors: str = "raise",
                             **options) -> list[Prediction]:
        """:meth:`predict_batch` in a worker thread."""
        images = list(images)
        return await asyncio.to_thread(lambda: self.predict_batch(images, batch_size, errors, **options))
