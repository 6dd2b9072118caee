"""Where a model runs: the device a name asks for, checked."""
from __future__ import annotations

import torch

from ..errors import OptionError

DEVICES = ("auto", "cpu", "cuda")


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` (CUDA when a GPU is there, else the CPU), ``"cpu"`` or ``"cuda"``.

    Raises:
        OptionError: an unknown name, or "cuda" without a GPU.
    """
    if name not in DEVICES:
        raise OptionError(f"device {name!r} is unknown; use one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise OptionError("device 'cuda' was asked for, but no CUDA GPU is available")
        return torch.device("cuda", local_rank)
    return torch.device(name)


