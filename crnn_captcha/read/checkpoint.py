"""The one checkpoint format, for training and for reading (where the shipped ones live: :mod:`.shipped`).

A plain dict of plain Python values and tensors, so ``torch.load(path, weights_only=True)`` always
works (nothing is unpickled that could run code):

    format_version, kind ("crnn" or "glyph"), model_config, charset, preprocess, state_dict,
    metrics, train_args, versions
    + in a resumable "last" checkpoint: optimizer, scheduler, scaler, epoch, best, history, rng

``charset`` is the model's characters in class order. A CRNN's class 0 is the CTC blank, so its
character ``i`` is class ``i + 1``; a glyph classifier has no blank, so its character ``i`` is
class ``i``.

Writes go to a temporary file in the same folder that is then renamed into place, so an interrupted
run never leaves a half-written checkpoint. An ONNX export records the SHA-256 of the checkpoint it
was made from, so a stale export is never used in place of a retrained model (:mod:`.onnx_model`).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from .._version import __version__
from ..errors import CheckpointError, brief
from ..files import atomic_write
from .charset import Charset
from .images import PreprocessConfig, file_problem
from .model import CRNN, CRNNConfig, GlyphClassifier
from .shipped import default_checkpoint

FORMAT_VERSION = 1


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP's ``module`` and torch.compile's ``_orig_mod`` wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def clean_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict without DDP's ``module.`` or torch.compile's ``_orig_mod.`` prefixes."""
    return {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, synced, then renamed into place."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            try:
                torch.save(obj, f)
            except RuntimeError as e:  # torch's zip writer reports a failed write (a full disk) this way
                raise _write_failed(Path(path), e) from None
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


#: Less free space than this after a failed write: the disk is full.
_NEARLY_FULL = 64 * 1024 * 1024


def _write_failed(path: Path, error: RuntimeError) -> OSError:
    """The OSError a failed ``torch.save`` stands for: no space left (the usual cause), or an I/O error."""
    folder = path.parent if str(path.parent) else Path(".")
    if shutil.disk_usage(folder).free < _NEARLY_FULL:
        return OSError(errno.ENOSPC, f"no space left to write {path.name} (the previous one is kept)", str(folder))
    return OSError(errno.EIO, f"could not write {path.name} ({brief(error, 160)}); the previous one "
                              "is kept", str(folder))


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the weights (names, dtypes, shapes and bytes, in name order): stored in every
    checkpoint and checked on load, so a damaged file is refused instead of reading wrongly."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def make_checkpoint(
    model: nn.Module,
    charset: Charset,
    preprocess: PreprocessConfig,
    metrics: dict[str, Any] | None = None,
    train_args: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The checkpoint dict for ``model`` (a CRNN or a glyph classifier; either carries its config).

    ``extra`` adds fields, e.g. the optimizer state of a resumable checkpoint.
    """
    inner = unwrap(model)
    state = clean_state_dict(model)
    ckpt = {
        "format_version": FORMAT_VERSION,
        "kind": "glyph" if isinstance(inner, GlyphClassifier) else "crnn",
        "model_config": inner.config.to_dict(),
        "charset": charset.chars,
        "preprocess": preprocess.to_dict(),
        "state_dict": state,
        "weights_sha256": weights_sha256(state),
        "metrics": dict(metrics or {}),
        "train_args": dict(train_args or {}),
        "versions": {"crnn_captcha": __version__, "torch": str(torch.__version__)},  # plain str: weights_only
        **extra,
    }
    ckpt["checksums"] = checksums(ckpt)
    return ckpt


#: The fields :func:`checksums` covers: everything that decides what a model reads.
CHECKED_FIELDS = ("state_dict", "charset", "preprocess", "model_config")


def checksums(ckpt: dict[str, Any]) -> dict[str, str]:
    """A SHA-256 of each of :data:`CHECKED_FIELDS` (so a mismatch names the field that changed)."""
    def text(value: Any) -> bytes:
        return json.dumps(value, sort_keys=True, default=list).encode()

    return {name: weights_sha256(ckpt[name]) if name == "state_dict" else hashlib.sha256(text(ckpt[name])).hexdigest()
            for name in CHECKED_FIELDS}


def _load_error(path: Path, e: Exception) -> CheckpointError:
    """One line for what ``torch.load`` refused, keeping the reason a file with code in it was refused."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    reason = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line or "WeightsUnpickler" in line),
                  None)
    if reason:
        return CheckpointError(f"{path}: refused: the file holds objects that would run code when loaded, not only "
                               f"weights ({reason[:200]})")
    first = lines[0][:200] if lines else ""
    return CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {first})")


def load_checkpoint(path: str | Path, kind: str | None = "crnn", *, unchecked: bool = False) -> dict[str, Any]:
    """Load and check a checkpoint (``weights_only=True``, on the CPU): every field is checked, and
    the weights, alphabet, preprocessing and model description against their checksums. A file
    without checksums is refused unless ``unchecked`` (for a checkpoint you trust that another tool
    wrote).

    Raises:
        CheckpointError: naming the file, the field and what is wrong with it.
    """
    path = Path(path)
    problem = file_problem(path, "checkpoint file")
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    with path.open("rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save writes a zip (or, long ago, a pickle)
        raise CheckpointError(f"{path}: not a PyTorch checkpoint file (it starts with {head!r})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file; all mean the same here
        raise _load_error(path, e) from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path}: not a crnn_captcha checkpoint (no format_version)")
    version = ckpt["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: format_version {version!r} is not a checkpoint format version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this crnn_captcha reads ({FORMAT_VERSION}); "
            "upgrade crnn_captcha"
        )
    missing = [k for k in ("model_config", "charset", "preprocess", "state_dict") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if kind is not None and ckpt.get("kind", "crnn") != kind:
        raise CheckpointError(f"{path}: holds a {ckpt.get('kind')!r} model, expected {kind!r}")
    check_fields(ckpt, path, unchecked)
    return ckpt


def check_fields(ckpt: dict[str, Any], path: Path, unchecked: bool = False) -> None:
    """Every field of a loaded checkpoint has the type and values it should.

    Raises:
        CheckpointError: naming the field.
    """
    for key in ("model_config", "preprocess", "metrics", "train_args"):
        if key in ckpt and not isinstance(ckpt[key], dict):
            raise CheckpointError(f"{path}: field {key} should be a dict, found {type(ckpt[key]).__name__}")
    if not isinstance(ckpt["charset"], str):
        raise CheckpointError(f"{path}: field charset should be a string, found {type(ckpt['charset']).__name__}")
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: field state_dict should map names to tensors")
    if any(v.device.type == "meta" for v in state.values()):
        raise CheckpointError(f"{path}: field state_dict holds weights on the meta device, which have no values")
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad:
        raise CheckpointError(f"{path}: field state_dict: weights {bad!r} hold NaN or infinite values")
    _check_sums(ckpt, path, unchecked)


def _check_sums(ckpt: dict[str, Any], path: Path, unchecked: bool) -> None:
    """The checksums stored with the checkpoint match what it holds (weights, alphabet, preprocessing,
    model description); a checkpoint with none is refused unless ``unchecked``. A checkpoint written
    before the alphabet and preprocessing were covered has its weights checked alone."""
    stored = ckpt.get("checksums")
    if isinstance(stored, dict):
        now = checksums(ckpt)
        changed = [name for name in CHECKED_FIELDS if stored.get(name) != now[name]]
        if changed:
            raise CheckpointError(f"{path}: field {', '.join(changed)} does not match the checksum stored with it: "
                                  "the file is damaged or was edited")
    elif "weights_sha256" in ckpt:
        if ckpt["weights_sha256"] != weights_sha256(ckpt["state_dict"]):
            raise CheckpointError(f"{path}: the weights do not match the checksum stored with them: the file is damaged")
    elif not unchecked:
        raise CheckpointError(f"{path}: no checksum is stored with it (not written by crnn_captcha, or edited); "
                              "load_checkpoint(path, unchecked=True) loads it anyway, if you trust it")


def _field(path: Path | str, name: str, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except (TypeError, ValueError, KeyError) as e:  # a hand-edited or damaged description
        raise CheckpointError(f"{path}: field {name} is not valid ({brief(e)})") from None


def _check_shapes(config: CRNNConfig, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """The weights' shapes agree with the config, checked before the model is built (a config that
    claims a larger model than its weights would be built first, and could take GBs)."""
    expected = {"head.weight": (config.num_classes, 2 * config.hidden),
                "rnn.weight_hh_l0": (4 * config.hidden, config.hidden),
                f"rnn.weight_hh_l{config.lstm_layers - 1}": (4 * config.hidden, config.hidden),
                "backbone.features.0.0.weight": (config.channels[0], config.in_channels, 3, 3)}
    for key, shape in expected.items():
        found = tuple(state[key].shape) if key in state else None
        if found != shape:
            raise CheckpointError(f"{path}: weights do not fit the model config ({key}: the config needs {shape}, "
                                  f"the weights are {found or 'missing'})")
    if f"rnn.weight_hh_l{config.lstm_layers}" in state:
        raise CheckpointError(f"{path}: weights do not fit the model config (more LSTM layers than its "
                              f"lstm_layers {config.lstm_layers})")


def build_crnn(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> tuple[CRNN, Charset, PreprocessConfig]:
    """Rebuild the model, charset and preprocessing from a loaded checkpoint.

    Raises:
        CheckpointError: the charset does not fit the head, or the weights do not fit the config.
    """
    config = _field(path, "model_config", lambda: CRNNConfig.from_dict(ckpt["model_config"]))
    charset = _field(path, "charset", lambda: Charset(ckpt["charset"]))
    preprocess = _field(path, "preprocess", lambda: PreprocessConfig.from_dict(ckpt["preprocess"]))
    if (preprocess.height, preprocess.width, preprocess.channels) != (config.height, config.width, config.in_channels):
        raise CheckpointError(
            f"{path}: field preprocess ({preprocess.channels}x{preprocess.height}x{preprocess.width}) does not match "
            f"the model's input ({config.in_channels}x{config.height}x{config.width})"
        )
    if charset.num_classes != config.num_classes:
        raise CheckpointError(
            f"{path}: charset {charset.chars!r} has {len(charset)} characters (+ blank = "
            f"{charset.num_classes} classes) but the model's head has {config.num_classes} outputs"
        )
    _check_shapes(config, ckpt["state_dict"], path)
    model = CRNN(config)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the model config ({first[:200]})") from None
    model.eval()
    return model, charset, preprocess


class LoadedModel(NamedTuple):
    """A CRNN rebuilt from its checkpoint, in eval mode on the CPU."""

    model: CRNN
    charset: Charset
    preprocess: PreprocessConfig
    checkpoint: dict[str, Any]


def load_model(path: str | Path | None = None) -> LoadedModel:
    """Load a CRNN checkpoint (default: the shipped model) and rebuild its model.

    Raises:
        CheckpointError: naming the file and what is wrong with it.
    """
    path = Path(path) if path is not None else default_checkpoint()
    ckpt = load_checkpoint(path)
    model, charset, preprocess = build_crnn(ckpt, path)
    return LoadedModel(model, charset, preprocess, ckpt)
