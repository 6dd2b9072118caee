"""Where a model runs: the device a name asks for, checked; and whether a package is installed."""
from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from ..errors import OptionError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


def installed(package: str) -> bool:
    """Whether ``package`` can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a package blocked or half-imported counts as missing
        return False


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` (CUDA when a GPU is there, else the CPU), ``"cpu"`` or ``"cuda"``.

    Raises:
        OptionError: an unknown name, or "cuda" without a GPU.
    """
    if name not in DEVICES:
        raise OptionError(f"device {name!r} is unknown; use one of {', '.join(DEVICES)}")
    import torch  # training, and reading on a GPU, need it; reading through ONNX Runtime does not

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise OptionError("device 'cuda' was asked for, but no CUDA GPU is available")
        return torch.device("cuda", local_rank)
    return torch.device(name)


