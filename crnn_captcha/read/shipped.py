"""Where the shipped checkpoints live, and a file's SHA-256 (what ties an export to its checkpoint)."""
from __future__ import annotations

import hashlib
from pathlib import Path

DEFAULT_CHECKPOINT_NAME = "captcha_v2.pt"


#: The smaller pretrained start (``train --init pretrained``): quicker to fine-tune on a CPU.
PRETRAINED_NAME = "pretrained.pt"


def shipped(name: str) -> Path:
    """A shipped checkpoint: packaged as ``crnn_captcha.checkpoints`` (the repository's
    ``checkpoints/`` folder), found in the source tree for an editable install."""
    try:
        from importlib.resources import files

        path = Path(str(files("crnn_captcha.checkpoints") / name))
        if path.exists():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "checkpoints" / name


#: The general reader: pretrained on synthetic captchas of many styles, larger than the pretrained
#: start; read by name for captchas no model was trained on (docs/pretraining.md says how far it has got).
GENERAL_NAME = "general.pt"

#: The shipped models by name: what ``CaptchaReader(NAME)`` and ``--model NAME`` read with.
MODELS = {"captcha_v2": DEFAULT_CHECKPOINT_NAME, "general": GENERAL_NAME, "pretrained": PRETRAINED_NAME}


def model_path(model: str | Path) -> Path:
    """A shipped model's checkpoint (by its name in :data:`MODELS`), or ``model`` as a path."""
    if isinstance(model, str) and model in MODELS:
        return shipped(MODELS[model])
    return Path(model)


def default_checkpoint() -> Path:
    """The shipped captcha v2 reader, the one :class:`CaptchaReader` uses by default."""
    return shipped(DEFAULT_CHECKPOINT_NAME)


def pretrained_checkpoint() -> Path:
    """The shipped smaller pretrained start (``--init pretrained``)."""
    return shipped(PRETRAINED_NAME)


def default_start() -> str | None:
    """The shipped model training starts from and the labelling page proposes with by default: the
    general reader, which reads more of unseen captchas than the smaller start and fine-tunes as well
    or better (docs/pretraining.md); the smaller start where an install lacks it; None where neither
    is installed."""
    for name in ("general", "pretrained"):
        if shipped(MODELS[name]).exists():
            return name
    return None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


