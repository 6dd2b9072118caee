"""Splitting labelled samples into train/val/test, the same for the same seed on any machine."""
from __future__ import annotations

import random
from typing import Sequence

from ..errors import OptionError
from .labels import Sample


def split_samples(
    samples: Sequence[Sample], ratios: Sequence[float] = (0.75, 0.125, 0.125), seed: int = 0
) -> dict[str, list[Sample]]:
    """Disjoint train/val/test lists that together hold every sample once.

    Sizes are ``round(n * ratio)`` for val and test, the rest for train.
    """
    if len(ratios) != 3 or any(not 0 <= r < float("inf") for r in ratios) or not 0 < sum(ratios) < float("inf"):
        raise OptionError(f"ratios must be three non-negative numbers, got {list(ratios)}")
    total = float(sum(ratios))
    ordered = sorted(samples, key=lambda s: (s.path.name, s.label))
    random.Random(seed).shuffle(ordered)
    n = len(ordered)
    n_val = round(n * ratios[1] / total)
    n_test = round(n * ratios[2] / total)
    n_train = n - n_val - n_test
    return {
        "train": ordered[:n_train],
        "val": ordered[n_train : n_train + n_val],
        "test": ordered[n_train + n_val :],
    }


