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


def ink(pixels: np.ndarray, threshold: int = 48) -> np.ndarray:
    """Boolean (H, W): pixels that differ from the background (the median colour of the border) by
    more than ``threshold`` in some channel, so light text on dark ground counts as well as dark on
    light, gray or colour."""
    p = pixels.astype(np.int16)
    if p.ndim == 2:
        p = p[:, :, None]
    border = np.concatenate([p[0], p[-1], p[:, 0], p[:, -1]])
    background = np.median(border, axis=0)
    return (np.abs(p - background).max(axis=2)) > threshold


def cut_points(pixels: np.ndarray, n: int, search: float = 0.3) -> np.ndarray:
    """``n + 1`` x positions between the ``n`` characters of a captcha: equal cells across the
    columns that hold ink, each inner cut then moved to the column with the least ink within
    ``search`` of a cell's width (the gap between two characters, where there is one)."""
    columns = ink(pixels).sum(axis=0)
    h = pixels.shape[0]
    filled = np.flatnonzero(columns >= max(3, h // 8))  # a thin strike line or a dot is not text
    x0, x1 = (int(filled[0]), int(filled[-1]) + 1) if filled.size else (0, pixels.shape[1])
    edges = cell_edges(x0, x1, n)
    reach = max(1, int(search * (x1 - x0) / max(n, 1)))
    for k in range(1, n):
        lo, hi = max(x0, int(edges[k]) - reach), min(x1, int(edges[k]) + reach + 1)
        if hi > lo:
            edges[k] = lo + int(np.argmin(columns[lo:hi]))
    return edges
