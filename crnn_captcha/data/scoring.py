"""Scoring read texts against labels: exact-match accuracy with its confidence interval, character
accuracy, CER, confusions, the report ``evaluate`` prints and its gallery of misreads."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Sequence

import editdistance
import numpy as np
from PIL import Image, ImageDraw

from ..errors import ImageError, OptionError
from ..read.images import load_image


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


def gallery(path: str | Path, rows: Sequence[tuple[str, str, str]], scale: int = 2, frames: str = "first") -> None:
    """A PNG with each misread image (an animated one as the picture its frames fuse into, see
    :data:`~crnn_captcha.read.images.FRAME_FUSIONS`) and its truth / prediction beneath it."""
    cells = []
    for src, truth, pred in rows:
        try:
            gray = load_image(src, frames=frames)
        except ImageError:  # already reported as unreadable
            continue
        img = Image.fromarray(gray, "L").resize((gray.shape[1] * scale // 2, gray.shape[0] * scale // 2))
        cell = Image.new("RGB", (max(img.width, 160), img.height + 16), "white")
        cell.paste(img.convert("RGB"), (0, 0))
        ImageDraw.Draw(cell).text((2, img.height + 2), f"true {truth}  read {pred or '-'}", fill=(200, 0, 0))
        cells.append(cell)
    if not cells:
        Image.new("RGB", (220, 20), "white").save(path)
        return
    cols = 4
    w, h = max(c.width for c in cells), max(c.height for c in cells)
    sheet = Image.new("RGB", (cols * w, ((len(cells) + cols - 1) // cols) * h), "white")
    for i, c in enumerate(cells):
        sheet.paste(c, ((i % cols) * w, (i // cols) * h))
    sheet.save(path)


def folding(groups: Sequence[str]) -> dict[int, str]:
    """A str.translate table that writes every character of a group as the group's first."""
    table: dict[int, str] = {}
    for group in groups:
        for ch in group:
            if ord(ch) in table:
                raise OptionError(f"--alike: {ch!r} is in more than one group")
            table[ord(ch)] = group[0]
    return table


def report(samples: Sequence, preds: Sequence, alike: Sequence[str] = (), top: int = 10, **about) -> dict:
    """What ``evaluate`` prints: :func:`summarize`'s figures for ``preds`` (Predictions) against the
    ``samples``' labels, then ``about`` (what was read, with what), then accuracy ignoring case,
    with each group of ``alike`` characters counted as one, the ``top`` confusions, every misread
    and the mean confidence."""
    texts = [p.text for p in preds]
    truths = [s.label for s in samples]
    result = {**summarize(score(texts, truths)), **about}
    # many sites take an answer in either case, and some generators draw both cases of a letter alike
    result["accuracy_ignoring_case"] = sum(p.casefold() == t.casefold() for p, t in zip(texts, truths)) / len(truths)
    if alike:
        fold = folding(alike)
        result["alike"] = list(alike)
        result["accuracy_alike"] = sum(p.translate(fold) == t.translate(fold) for p, t in zip(texts, truths)) / len(truths)
    result["confusions"] = [[t, p, n] for (t, p), n in confusions(texts, truths).most_common(top)]
    result["misreads"] = [
        {"path": str(s.path), "truth": s.label, "read": p.text, "confidence": round(p.confidence, 4)}
        for s, p in zip(samples, preds) if p.text != s.label
    ]
    result["mean_confidence"] = float(np.mean([p.confidence for p in preds]))
    # readings the reader flags as unsure (Prediction.unsure), and how many of those were right anyway
    unsure = [p.text == s.label for s, p in zip(samples, preds) if p.unsure]
    result["unsure"] = len(unsure) / len(preds)
    result["unsure_right"] = sum(unsure) / len(unsure) if unsure else None
    return result
