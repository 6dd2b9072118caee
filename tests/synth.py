"""Generated captcha-like images for fast tests (no third-party data needed)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ALPHABET = "2345678bcdefgmnpwxy"


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def render(text: str, size=(200, 50), seed: int = 0) -> Image.Image:
    """A gray 200x50 image with ``text`` drawn in large dark characters and a little noise."""
    rng = random.Random(seed)
    img = Image.new("L", size, 235)
    draw = ImageDraw.Draw(img)
    font = _font(34)
    x = 22 + rng.randint(-3, 3)
    for ch in text:
        draw.text((x, 6 + rng.randint(-2, 2)), ch, fill=rng.randint(0, 40), font=font)
        x += 30
    arr = np.asarray(img, dtype=np.int16) + np.random.default_rng(seed).integers(-8, 9, (size[1], size[0]))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")


def make_folder(folder: Path, n: int, seed: int = 0, length: int = 5, alphabet: str = ALPHABET,
                size=(200, 50)) -> list[str]:
    """Write ``n`` generated captchas named ``<label>.png`` (distinct labels); returns the labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    labels: list[str] = []
    while len(labels) < n:
        label = "".join(rng.choice(alphabet) for _ in range(length))
        if label not in labels:
            labels.append(label)
    for i, label in enumerate(labels):
        render(label, size, seed=seed * 1000 + i).convert("RGBA").save(folder / f"{label}.png")
    return labels


def strips_gif(still: Image.Image, parts: int = 5, fmt: str = "GIF") -> bytes:
    """An animated image (GIF, PNG for APNG, or WEBP) of ``still`` shown a vertical strip a frame: frame k
    holds the k-th of ``parts`` equal strips of the gray image and its median colour elsewhere, so no
    frame shows the whole text and every pixel is shown by exactly one frame."""
    import io

    gray = np.asarray(still.convert("L"))
    fill = int(np.median(gray))
    edges = np.linspace(0, gray.shape[1], parts + 1).round().astype(int)
    frames = []
    for a, b in zip(edges[:-1], edges[1:]):
        frame = np.full_like(gray, fill)
        frame[:, a:b] = gray[:, a:b]
        frames.append(Image.fromarray(frame, "L"))
    buf = io.BytesIO()
    extra = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **extra)
    return buf.getvalue()


def noisy_gif(still: Image.Image, frames: int = 7, seed: int = 0) -> bytes:
    """An animated GIF of the gray ``still`` under dark strokes drawn anew in every frame."""
    import io

    rng = random.Random(seed)
    out = []
    for _ in range(frames):
        frame = still.convert("L").copy()
        draw = ImageDraw.Draw(frame)
        for _ in range(6):
            draw.line([(rng.uniform(0, frame.width), rng.uniform(0, frame.height)) for _ in range(2)], fill=20,
                      width=3)
        out.append(frame)
    buf = io.BytesIO()
    out[0].save(buf, "GIF", save_all=True, append_images=out[1:], duration=100, loop=0)
    return buf.getvalue()
