"""Training-time augmentation (albumentations) for uint8 images at model size, gray or RGB.

Small geometric changes (rotation, shear, shift, scale) and photometric ones (blur, noise,
contrast), and optionally a random strike line like the one the captcha v2 images carry. Never used
at evaluation or reading time.

``python -m crnn_captcha.augment`` writes a grid of examples.
"""
from __future__ import annotations

import os
from typing import Any

# albumentations asks PyPI for a newer version when imported (one network call in every loader
# worker, and a warning where there is no network): a reader of captchas has no need of it
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402
import cv2
import numpy as np


class StrikeLine(A.ImageOnlyTransform):
    """Draw a dark, slightly curved line across the image, as the captcha generator does."""

    def __init__(self, thickness: tuple[int, int] = (1, 2), p: float = 0.3):
        super().__init__(p=p)
        self.thickness = thickness

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        rnd = self.py_random
        x0, x1 = rnd.uniform(0, 0.3) * w, rnd.uniform(0.7, 1.0) * w
        y0, y1 = rnd.uniform(0.3, 0.8) * h, rnd.uniform(0.2, 0.8) * h
        bend = rnd.uniform(-0.2, 0.2) * h
        return {
            "points": (x0, y0, x1, y1, bend),
            "thick": rnd.randint(self.thickness[0], self.thickness[1]),
            "shade": tuple(rnd.randint(0, 80) for _ in range(3)),
        }

    def apply(self, img: np.ndarray, points=(0, 0, 0, 0, 0), thick: int = 1, shade=(0, 0, 0), **_) -> np.ndarray:
        x0, y0, x1, y1, bend = points
        s = np.linspace(0.0, 1.0, 24)
        xs = x0 + (x1 - x0) * s
        ys = y0 + (y1 - y0) * s + bend * np.sin(np.pi * s)
        pts = np.stack([xs, ys], axis=1).round().astype(np.int32).reshape(-1, 1, 2)
        out = img.copy()
        colour = int(shade[0]) if img.ndim == 2 else tuple(int(v) for v in shade)  # dark, any hue on RGB
        cv2.polylines(out, [pts], False, colour, thickness=int(thick), lineType=cv2.LINE_AA)
        return out

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("thickness",)


class Augmenter:
    """Callable ``uint8 (H, W[, 3]) -> uint8 of the same shape``; repeatable for a given seed, and
    its random state can be saved and restored (:meth:`state`, :meth:`restore`) for exact resumes."""

    def __init__(self, strength: float = 1.0, strike_line: bool = True, seed: int | None = None):
        s = strength
        transforms = [
            A.Affine(
                rotate=(-4 * s, 4 * s),
                shear={"x": (-10 * s, 10 * s), "y": (-2 * s, 2 * s)},
                translate_percent={"x": (-0.04 * s, 0.04 * s), "y": (-0.08 * s, 0.08 * s)},
                scale=(1 - 0.08 * s, 1 + 0.08 * s),
                border_mode=cv2.BORDER_REPLICATE,
                p=0.9,
            ),
            A.OneOf(
                [A.GaussianBlur(blur_limit=(3, 3), p=1.0), A.MotionBlur(blur_limit=(3, 3), p=1.0)],
                p=0.2 * s,
            ),
            A.GaussNoise(std_range=(0.01, 0.06 * s), p=0.3),
            A.RandomBrightnessContrast(brightness_limit=0.2 * s, contrast_limit=0.3 * s, p=0.5),
        ]
        if strike_line:
            transforms.append(StrikeLine(p=0.25))
        self.pipeline = A.Compose(transforms, seed=seed)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.pipeline(image=pixels)["image"]

    def _transforms(self) -> list:
        """Every transform (and the pipeline itself): each keeps random generators of its own."""
        found, todo = [], [self.pipeline]
        while todo:
            t = todo.pop(0)
            found.append(t)
            todo.extend(getattr(t, "transforms", []))
        return found

    def state(self) -> list:
        """The random state of every transform, in plain types."""
        return [[list(_plain(t.py_random.getstate())), _plain(t.random_generator.bit_generator.state)]
                for t in self._transforms()]

    def restore(self, state: list) -> None:
        for t, (py, np_state) in zip(self._transforms(), state):
            t.py_random.setstate(as_tuples(py))
            t.random_generator.bit_generator.state = np_state


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return int(x) if isinstance(x, np.integer) else x


def sample_grid(images: list[np.ndarray], augmenter: Augmenter, copies: int = 5) -> np.ndarray:
    """A grid: each row an original followed by ``copies`` augmented versions, 2 px white gaps."""
    h, w = images[0].shape
    rows = []
    gap_v = np.full((h, 2), 255, np.uint8)
    for img in images:
        cells = [img] + [augmenter(img) for _ in range(copies)]
        row = np.concatenate([c for cell in cells for c in (cell, gap_v)][:-1], axis=1)
        rows.append(row)
        rows.append(np.full((2, row.shape[1]), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def as_tuples(x):
    """Lists (as a checkpoint stores them) back into the tuples a random state is made of."""
    return tuple(as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


