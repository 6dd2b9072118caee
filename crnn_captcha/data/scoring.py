"""Exact-match accuracy, character accuracy, CER and a confidence interval."""
from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import editdistance


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default); (0, 1) when n == 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def score(preds: Sequence[str], truths: Sequence[str]) -> dict:
    """Counts behind the metrics, summable across processes.

    ``char_correct`` counts positions where prediction and truth agree (a string of the wrong
    length loses the positions it lacks); ``edits`` is the Levenshtein distance summed.
    """
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predictions for {len(truths)} labels")
    return {
        "n": len(truths),
        "correct": sum(p == t for p, t in zip(preds, truths)),
        "chars": sum(len(t) for t in truths),
        "char_correct": sum(sum(a == b for a, b in zip(p, t)) for p, t in zip(preds, truths)),
        "edits": sum(editdistance.eval(p, t) for p, t in zip(preds, truths)),
    }


def summarize(counts: dict) -> dict:
    """Accuracy (with 95% Wilson interval), character accuracy and CER from :func:`score` counts."""
    n, chars = counts["n"], max(counts["chars"], 1)
    lo, hi = wilson_interval(counts["correct"], n)
    return {
        "n": n,
        "accuracy": counts["correct"] / n if n else 0.0,
        "accuracy_ci95": [lo, hi],
        "char_accuracy": counts["char_correct"] / chars,
        "cer": counts["edits"] / chars,
    }


def confusions(preds: Sequence[str], truths: Sequence[str]) -> Counter:
    """(truth char, predicted char) pairs at the positions where equal-length strings differ."""
    pairs: Counter = Counter()
    for p, t in zip(preds, truths):
        if len(p) == len(t):
            pairs.update((a, b) for a, b in zip(t, p) if a != b)
    return pairs
