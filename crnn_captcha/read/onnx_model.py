"""Reading a model's ONNX export with ONNX Runtime: no PyTorch needed.

An export records the SHA-256 of the checkpoint it was made from (:data:`SHA_KEY`), so a stale
export is never used in place of a retrained model, and what a reader needs to know of the model
(:data:`ABOUT_KEY`: its alphabet, preprocessing, frames and metrics, as JSON), so reading needs
neither PyTorch nor the checkpoint's weights. :func:`describe_model` writes that description;
:func:`described` reads it back.
"""
from __future__ import annotations

import base64
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import CaptchaWarning, CheckpointError, OptionError, brief
from .charset import Charset
from .ctc import log_softmax
from .images import PreprocessConfig, file_problem
from .shipped import file_sha256

#: The ONNX metadata key that holds the SHA-256 of the checkpoint an export was made from.
SHA_KEY = "crnn_captcha.checkpoint_sha256"
#: The ONNX metadata key that describes the model to a reader (JSON; see :func:`describe_model`).
ABOUT_KEY = "crnn_captcha.model"
#: The ONNX metadata key that holds the export's own outputs for :func:`probe_input`, recorded when it
#: was made (base64 of float32), so damaged weights are found when the export is opened.
PROBE_KEY = "crnn_captcha.probe"


class Described(NamedTuple):
    """What a reader needs to know of a model besides its weights."""

    charset: Charset
    preprocess: PreprocessConfig
    frames: int
    metrics: dict[str, Any]


def describe_model(ckpt: dict[str, Any], frames: int) -> str:
    """The :data:`ABOUT_KEY` text for a loaded checkpoint whose model gives ``frames`` frames, with a
    SHA-256 of the rest, so a damaged or edited description (another alphabet) is refused."""
    about = {"charset": ckpt["charset"], "preprocess": ckpt["preprocess"], "frames": frames,
             "metrics": ckpt.get("metrics", {})}
    return json.dumps({**about, "sha256": _about_sha256(about)})


def _about_sha256(about: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(about, sort_keys=True).encode()).hexdigest()


def described(session, where: Path) -> Described | None:
    """The model an export describes, or None for an export that does not (made before exports did).

    Raises:
        CheckpointError: a description that is not one (naming the export).
    """
    text = session.get_modelmeta().custom_metadata_map.get(ABOUT_KEY)
    if text is None:
        return None
    try:
        about = json.loads(text)
        stored = about.pop("sha256")
        if stored != _about_sha256(about):
            raise CheckpointError(f"{where}: its description of the model (alphabet, preprocessing) does not match "
                                  "the checksum stored with it: the file is damaged or was edited; export again")
        return Described(Charset(about["charset"]), PreprocessConfig.from_dict(about["preprocess"]),
                         int(about["frames"]), dict(about["metrics"]))
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{where}: its description of the model is damaged ({type(e).__name__}: {e})") from None


def probe_input(pre: PreprocessConfig) -> np.ndarray:
    """A fixed input of the model's shape (1, C, H, W): smooth stripes in [-1, 1], the same everywhere."""
    size = pre.channels * pre.height * pre.width
    return np.sin(np.arange(size, dtype=np.float64) * 0.37).astype(np.float32).reshape(
        1, pre.channels, pre.height, pre.width)


def probe_output(session, pre: PreprocessConfig) -> np.ndarray:
    """The export's outputs for :func:`probe_input`, flat, as float32."""
    return session.run(None, {"image": probe_input(pre)})[0].astype(np.float32).ravel()


def record_probe(session, pre: PreprocessConfig) -> str:
    """The :data:`PROBE_KEY` text: :func:`probe_output`, base64."""
    return base64.b64encode(probe_output(session, pre).tobytes()).decode()


def check_export(session, pre: PreprocessConfig, where: Path) -> None:
    """The export takes the input ``pre`` describes and, where it recorded them, still gives the
    outputs it gave when it was made (bit flips in its weights change them).

    Raises:
        CheckpointError: naming the export and what is wrong.
    """
    shape = session.get_inputs()[0].shape[1:]
    wanted = [pre.channels, pre.height, pre.width]
    if any(isinstance(d, int) and d != w for d, w in zip(shape, wanted)) or len(shape) != 3:
        raise CheckpointError(f"{where}: its model takes input {shape}, not the {wanted} (channels, height, width) "
                              "its checkpoint describes; export again")
    text = session.get_modelmeta().custom_metadata_map.get(PROBE_KEY)
    if text is None:  # made before exports recorded their outputs
        return
    try:
        expected = np.frombuffer(base64.b64decode(text), dtype=np.float32)
        got = probe_output(session, pre)
    except Exception as e:  # onnxruntime raises its own types; a damaged record fails to decode
        raise CheckpointError(f"{where}: cannot run its model ({brief(e)})") from None
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-3, atol=1e-3):
        raise CheckpointError(f"{where}: its weights are damaged (it no longer gives the outputs recorded when it "
                              "was exported); export again")


class OnnxRunner:
    """The model's ONNX export on ONNX Runtime (CPU): the faster path for one image at a time."""

    name = "onnx"

    def __init__(self, session, about: Described | None, where: Path):
        self.session, self.where = session, where
        self.about = about  # None for an export made before exports described their model
        if about is not None:
            check_export(session, about.preprocess, where)

    def describe(self, about: Described) -> None:
        """Take the description from the checkpoint (an export made before exports described their
        model), checked as the export's own would be."""
        check_export(self.session, about.preprocess, self.where)
        self.about = about

    def log_probs(self, batch) -> np.ndarray:
        """(N, C_in, H, W) preprocessed images (numpy, or a CPU tensor) -> (N, T, C) log-probabilities."""
        return log_softmax(self.session.run(None, {"image": np.asarray(batch, dtype=np.float32)})[0])

    @classmethod
    def open(cls, checkpoint: Path, threads: int, required: bool) -> "OnnxRunner | None":
        """A runner for the export beside ``checkpoint`` (``<name>.onnx``), or None where there
        is none, onnxruntime is missing, or the export is unusable or was made from another
        checkpoint (then with a warning). With ``required`` each of those is an error instead."""
        try:
            session = _onnx_session(checkpoint, threads)
            where = checkpoint.with_suffix(".onnx")
            return cls(session, described(session, where), where)
        except (CheckpointError, OptionError) as e:
            if required:
                raise
            if not isinstance(e, _NoExport):
                warnings.warn(f"{e}; reading with PyTorch instead", CaptchaWarning, stacklevel=4)
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
        raise CheckpointError(f"{onnx_path}: not a readable ONNX model ({brief(e)})") from None
    if made_from != file_sha256(checkpoint):
        raise CheckpointError(f"{onnx_path}: exported from another checkpoint than {checkpoint}; export again")
    return session


