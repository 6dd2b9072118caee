"""A grid of synthetic samples with their labels beneath, and the renderer's speed."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from ..errors import OptionError
from .config import STYLES, SynthConfig
from .renderer import SynthRenderer


# ----- the sample sheet and the command -----------------------------------------------------------
def _label_font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def sample_sheet(renderer: SynthRenderer, n: int, path: str | os.PathLike, *, glyphs: bool = False,
                 start: int = 0, columns: int | None = None) -> Path:
    """Write a PNG grid of samples ``start`` .. ``start + n - 1`` (or glyphs), each with its label
    beneath; returns the path. Images keep their shapes: shrunk to fit a cell, or enlarged (at most
    twice, pixels kept sharp) where small."""
    if n < 1:
        raise OptionError(f"n {n}: give at least 1")
    items = [renderer.glyph(i) if glyphs else renderer.sample(i) for i in range(start, start + n)]
    box_w, box_h = (64, 104) if glyphs else (300, 110)
    cols = columns or (12 if glyphs else 4)
    label_h, pad = 20, 6
    cell_w, cell_h = box_w + 2 * pad, box_h + label_h + 2 * pad
    rows = (n + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _label_font(15)
    for k, (img, label) in enumerate(items):
        h, w = img.shape[:2]
        f = min(box_w / w, box_h / h, 2.0)
        tile = Image.fromarray(img).resize((max(1, round(w * f)), max(1, round(h * f))),
                                           Image.NEAREST if f > 1 else Image.LANCZOS)
        cx, cy = (k % cols) * cell_w, (k // cols) * cell_h
        sheet.paste(tile, (cx + pad + (box_w - tile.width) // 2, cy + pad + (box_h - tile.height) // 2))
        if isinstance(font, ImageFont.FreeTypeFont):
            draw.text((cx + cell_w // 2, cy + pad + box_h + 3), label, fill=(0, 0, 0), font=font, anchor="mt")
        else:  # Pillow's bitmap fallback font cannot be anchored
            draw.text((cx + pad, cy + pad + box_h + 3), label, fill=(0, 0, 0), font=font)
    out = Path(path)
    sheet.save(out)
    return out


def style_sheet(path: str | os.PathLike, *, per_style: int = 4, seed: int = 0,
                styles: Sequence[str] | None = None) -> Path:
    """Write a PNG with one row per style of :data:`~.config.STYLES` (that style alone, always on),
    ``per_style`` captchas each, the style's name on the left; returns the path."""
    names = list(styles or STYLES)
    rows = [[SynthRenderer(SynthConfig.style(name), seed=seed).sample(i) for i in range(per_style)] for name in names]
    name_w, box_w, box_h, pad = 150, 220, 80, 5
    sheet = Image.new("RGB", (name_w + per_style * (box_w + pad), len(names) * (box_h + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _label_font(15)
    for k, (name, row) in enumerate(zip(names, rows)):
        y = k * (box_h + pad)
        draw.text((pad, y + box_h // 2 - 8), name, fill=(0, 0, 0), font=font)
        for j, (img, _) in enumerate(row):
            h, w = img.shape[:2]
            f = min(box_w / w, box_h / h)
            tile = Image.fromarray(img).resize((max(1, round(w * f)), max(1, round(h * f))), Image.LANCZOS)
            sheet.paste(tile, (name_w + j * (box_w + pad), y + (box_h - tile.height) // 2))
    out = Path(path)
    sheet.save(out)
    return out


def images_per_second(renderer: SynthRenderer, n: int, start: int = 1_000_000,
                      glyphs: bool = False, warm: int = 20) -> tuple[float, float]:
    """(images per second of wall time, per second of this process's CPU time) over ``n`` images
    from index ``start``, rendered by this thread after ``warm`` that fill the caches (a rendering
    worker of a long run has drawn tens of thousands). On a machine busy with other work the CPU
    figure is the one that says what one free core would do."""
    draw = renderer.glyph if glyphs else renderer.sample
    for i in range(start - warm, start):
        draw(i)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(start, start + n):
        draw(i)
    return n / (time.perf_counter() - wall), n / max(time.process_time() - cpu, 1e-9)


