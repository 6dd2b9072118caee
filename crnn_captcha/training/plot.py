"""A small PNG line chart drawn with Pillow (no plotting library needed for two curves)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def line_chart(
    path: str | Path,
    panels: Sequence[tuple[str, dict[str, Sequence[float]]]],
    xlabel: str = "epoch",
    size: tuple[int, int] = (520, 300),
) -> None:
    """Write side-by-side panels; each panel is ``(title, {series name: values})``."""
    w, h = size
    img = Image.new("RGB", (w * len(panels), h), "white")
    draw = ImageDraw.Draw(img)
    for i, (title, series) in enumerate(panels):
        x0, y0, x1, y1 = i * w + 50, 30, i * w + w - 15, h - 50
        draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
        draw.text((x0, 8), title, fill=(0, 0, 0))
        draw.text(((x0 + x1) // 2 - 15, h - 18), xlabel, fill=(0, 0, 0))
        # the legend above the box, right-aligned, so it never covers a line
        right = x1
        for j, name in reversed(list(enumerate(series))):
            right -= 7 * len(name) + 12
            draw.text((right, 8), name, fill=COLORS[j % len(COLORS)])
        values = [v for vs in series.values() for v in vs if v == v]
        if not values:
            continue
        lo, hi = min(values), max(values)
        if hi == lo:
            hi = lo + 1.0
        draw.text((i * w + 2, y0), f"{hi:.3g}", fill=(0, 0, 0))
        draw.text((i * w + 2, y1 - 10), f"{lo:.3g}", fill=(0, 0, 0))
        n = max(max(len(vs) for vs in series.values()) - 1, 1)
        for k in sorted({0, n // 2, n}):  # epoch numbers under the first, middle and last points
            draw.text((x0 + (x1 - x0) * k / n - 4, y1 + 4), str(k + 1), fill=(0, 0, 0))
        for j, (name, vs) in enumerate(series.items()):
            color = COLORS[j % len(COLORS)]
            pts = [(x0 + (x1 - x0) * k / n, y1 - (y1 - y0) * (v - lo) / (hi - lo)) for k, v in enumerate(vs)]
            if len(pts) > 1:
                draw.line(pts, fill=color, width=2)
            elif pts:
                draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=color)
    img.save(path)
