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
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import CaptchaWarning, CheckpointError, ImageError, OptionError, brief
from .ctc import DecodeOptions, allowed_mask, decode_batch
from .device import DEVICES, installed, pick_device
from .images import ImageInput, describe, file_problem, preprocess_candidates
from .onnx_model import Described, OnnxRunner
from .shipped import MODELS, default_checkpoint, model_path

BACKENDS = ("auto", "torch", "onnx")
#: What to install to read without an export, or on a GPU.
TORCH_HINT = 'PyTorch (pip install "crnn_captcha[train]")'


class TorchRunner:
    """The model in PyTorch, on the CPU or a GPU."""

    name = "torch"

    def __init__(self, model, device, about: Described):
        self.device = device
        self.model = model.to(device).eval().fuse_batchnorm()
        self.about = about

    def log_probs(self, batch) -> np.ndarray:
        """(N, C_in, H, W) preprocessed images (numpy or a tensor) -> (N, T, C) log-probabilities."""
        import torch

        with torch.inference_mode():
            logits = self.model(torch.as_tensor(batch).to(self.device))
            return logits.float().log_softmax(2).cpu().numpy()


def _device(name: str, torch_installed: bool):
    """(the device ``name`` asks for, whether PyTorch is usable): a torch.device where PyTorch is
    installed and loads, else "cpu" (ONNX Runtime's)."""
    if torch_installed:
        try:
            return pick_device(name), True
        except (ImportError, OSError) as e:  # installed but broken (a missing CUDA library, ...): ONNX can read
            if name == "cuda":
                raise OptionError(f"device 'cuda': PyTorch does not load ({brief(e, 120)})") from None
    if name not in DEVICES:
        raise OptionError(f"device {name!r} is unknown; use one of {', '.join(DEVICES)}")
    if name == "cuda":
        raise OptionError(f"device 'cuda' needs {TORCH_HINT}")
    return "cpu", False


def _open(path: Path, device: str, backend: str, threads: int | None):
    """(where the model runs, its runner): ONNX Runtime on the CPU where an up-to-date export that
    describes its model sits beside the checkpoint (no PyTorch needed), else PyTorch."""
    where, torch_installed = _device(device, installed("torch"))
    if backend == "torch" and not torch_installed:
        raise OptionError(f"backend 'torch' needs {TORCH_HINT}")
    onnx = None
    if backend == "onnx" or (backend == "auto" and str(where) == "cpu"):
        torch = sys.modules.get("torch")
        threads = threads or (torch.get_num_threads() if torch else 0)  # 0: ONNX Runtime's own choice
        try:
            onnx = OnnxRunner.open(path, threads, required=backend == "onnx" or not torch_installed)
        except CheckpointError as e:
            if torch_installed or backend == "onnx":
                raise
            raise CheckpointError(f"{e}; without it, reading needs {TORCH_HINT}") from None
        if onnx is not None and onnx.about is not None:
            return where, onnx
    if not torch_installed:
        raise CheckpointError(f"{path.with_suffix('.onnx')}: made by an older crnn_captcha, it does not describe its "
                              f"model; export it again (python -m crnn_captcha.export --checkpoint {path}) or install "
                              f"{TORCH_HINT}")
    from .checkpoint import build_crnn, load_checkpoint  # PyTorch loads here

    ckpt = load_checkpoint(path)
    model, charset, pre = build_crnn(ckpt, path)
    about = Described(charset, pre, model.config.frames, dict(ckpt.get("metrics", {})))
    if onnx is not None:  # an export from before exports described their model: the checkpoint does
        try:
            onnx.describe(about)
            return where, onnx
        except CheckpointError as e:
            if backend == "onnx":
                raise
            warnings.warn(f"{e}; reading with PyTorch instead", CaptchaWarning, stacklevel=3)
    return where, TorchRunner(model, where, about)


#: Readings less confident than this are flagged (:attr:`Prediction.unsure`). The shipped captcha v2
#: reader gave 1 of its 125 validation images (all read right) less, and 80% and 95% of two captcha
#: families it was never trained on (of which it read 9% and 4% right; docs/results.md).
UNSURE = 0.9


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

    @property
    def unsure(self) -> bool:
        """Read, but with a confidence under :data:`UNSURE`: often a kind of captcha the model was not
        trained on."""
        return self.ok and self.confidence < UNSURE


class CaptchaReader:
    """Reads whole captchas with a CRNN checkpoint.

    Args:
        checkpoint: a shipped model's name ("captcha_v2", the default; "pretrained", the start
            training fine-tunes) or the path of a checkpoint of ours.
        device: "auto" (CUDA if available), "cpu" or "cuda".
        options: how to decode (:class:`DecodeOptions`: decoder, beam_width, length, allowed, ignore_case);
            single options may be given as keywords instead, e.g. ``decoder="beam"``.
        threads: CPU threads for ONNX Runtime (default: PyTorch's current setting where PyTorch is
            loaded, else ONNX Runtime's own choice). The reader never changes the process's PyTorch
            thread count; call ``torch.set_num_threads`` for that.
        backend: "auto" (ONNX Runtime on the CPU when an up-to-date export sits beside the
            checkpoint, else PyTorch), "torch" or "onnx". Reading through ONNX Runtime needs no
            PyTorch: the export describes its model (alphabet, preprocessing) itself.
        widths: read each image drawn at each of these widths (factors of the width the model was
            trained to read at) and keep the most confident reading. ``(1, 2)`` lets the general
            reader read text a generator squeezed together (docs/reading.md), at two reads an image.

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
        widths: Sequence[float] = (1.0,),
        **decoding: Any,
    ):
        if backend not in BACKENDS:
            raise OptionError(f"backend {backend!r} is unknown; use 'auto', 'torch' or 'onnx'")
        self.options = (options or DecodeOptions()).replace(**decoding)
        path = model_path(checkpoint) if checkpoint is not None else default_checkpoint()
        if (checkpoint is None or checkpoint in MODELS) and not path.exists():
            raise CheckpointError(f"{path}: the shipped model {checkpoint or 'captcha_v2'!r} is missing from this install")
        problem = file_problem(path, "checkpoint file")
        if problem:
            raise CheckpointError(f"{path}: {problem}")
        self.checkpoint_path = path
        self.device, self.runner = _open(path, device, backend, threads)
        about = self.runner.about
        self.charset, self.preprocess, self.frames, self.metrics = about.charset, about.preprocess, about.frames, \
            dict(about.metrics)
        self._check(self.options)  # fail now on options the model cannot honour
        self.widths = self._widths(widths)
        self.backend = self.runner.name

    def __repr__(self) -> str:
        return (f"CaptchaReader({str(self.checkpoint_path)!r}, device={str(self.device)!r}, "
                f"backend={self.backend!r}, charset={self.charset.chars!r})")

    # ----- core ---------------------------------------------------------------------------------
    def log_probs(self, batch) -> np.ndarray:
        """(N, C_in, H, W) preprocessed images (numpy or a tensor) -> (N, T, C) log-probabilities."""
        return self.runner.log_probs(batch)

    def _options(self, options: DecodeOptions | None, changes: dict[str, Any]) -> DecodeOptions:
        """This call's options: ``options`` (or the reader's) with ``changes``, checked against the model."""
        opts = (options or self.options).replace(**changes)
        if opts is not self.options:
            self._check(opts)
        return opts

    def _check(self, opts: DecodeOptions) -> None:
        """Options this model can honour: allowed characters it knows, a length its frames hold."""
        allowed_mask(self.charset, opts.allowed, opts.ignore_case)
        if opts.length is not None and opts.length > self.frames:
            raise OptionError(f"length {opts.length} is more than this model can read: its input gives "
                              f"{self.frames} frames, so at most {self.frames} characters")

    def _widths(self, widths: Sequence[float]) -> tuple[float, ...]:
        """``widths`` checked: numbers from 0.25 to 4, and other than 1 only for a model that pads."""
        try:
            values = () if isinstance(widths, (str, bytes)) else \
                tuple(float(w) if not isinstance(w, bool) else math.nan for w in widths)
        except (TypeError, ValueError):
            values = ()
        if not values or not all(0.25 <= w <= 4 for w in values):
            raise OptionError(f"widths must be one or more numbers from 0.25 to 4, got {widths!r}")
        if values != (1.0,) and self.preprocess.resize != "pad":
            raise OptionError(f"widths {list(values)}: {self.checkpoint_path} stretches every image to its input, "
                              "so it reads at one width only")
        if not all(0.1 <= w * self.preprocess.x_scale <= 16 for w in values):  # what a preprocessing may draw
            raise OptionError(f"widths {list(values)}: this model already draws images {self.preprocess.x_scale:g} "
                              "times as wide, and the width drawn must stay from 0.1 to 16 times the image's")
        return tuple(dict.fromkeys(values))  # each width once, in the order given

    # ----- public API ---------------------------------------------------------------------------
    def predict(self, image: ImageInput, *, options: DecodeOptions | None = None, **changes: Any) -> Prediction:
        """Read one image; returns text, confidence and per-character confidences.

        ``options`` replaces the reader's decoding options for this call; keywords change single
        ones (``decoder``, ``beam_width``, ``length``, ``allowed``, ``ignore_case``); any other keyword is an error.

        Raises:
            ImageError: naming the image and what is wrong with it.
            OptionError: a bad option value.
        """
        return self.predict_batch([image], 1, options=options, **changes)[0]

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
            inputs, owners = [], []  # several widths, or an animated image read "confident", give several inputs
            for i in range(start, min(start + batch_size, len(images))):
                name = describe(images[i])
                try:
                    candidates = preprocess_candidates(images[i], self.preprocess, name, self.widths)
                except ImageError as e:
                    if errors == "raise":
                        raise
                    results[i] = Prediction("", 0.0, (), name, str(e))
                    continue
                inputs += candidates
                owners += [(i, name)] * len(candidates)
            if inputs:
                decoded = decode_batch(self.log_probs(np.stack(inputs)), self.charset, opts)
                for (i, name), d in zip(owners, decoded):
                    if results[i] is None or d.confidence > results[i].confidence:  # the most confident reading
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
