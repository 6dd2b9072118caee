"""Where the characters of a captcha sit, found from the pixels alone (no model): the text's
horizontal extent and equal cells across it. Glyph cutting and splicing use it."""
from __future__ import annotations

import numpy as np


def text_extent(gray: np.ndarray, dark: int = 128, min_dark: int = 4) -> tuple[int, int]:
    """Columns [x0, x1) where at least ``min_dark`` pixels are dark: the text's horizontal extent
    (a captcha's thin strike line alone stays below the threshold)."""
    cols = np.flatnonzero((gray < dark).sum(axis=0) >= min_dark)
    if cols.size == 0:
        return 0, gray.shape[1]
    return int(cols[0]), int(cols[-1]) + 1


def cell_edges(x0: float, x1: float, n: int) -> np.ndarray:
    """``n + 1`` x positions cutting [x0, x1) into ``n`` equal cells, one per character."""
    return x0 + (x1 - x0) * np.arange(n + 1) / n


def char_boundaries(gray: np.ndarray, n: int) -> np.ndarray:
    """:func:`cell_edges` of the text extent of ``gray``."""
    return cell_edges(*text_extent(gray), n)
