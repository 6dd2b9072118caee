"""More training images from each rendered one, drawn on the device: pretraining's answer to a
renderer slower than the GPU.

On a GPU machine the synthetic captchas' renderer, not the model, limits pretraining (an H200 steps
through about 4 times as many images a second as 14 rendering workers draw). With ``views`` of K, each
rendered batch is trained on K times in one step: as drawn, and K - 1 times re-drawn on the device by
cheap changes that keep the label (a small affine warp, colour and contrast, inversion, blur, noise
and speckles), all as batched tensor operations. A view is not a fresh captcha (the glyphs, fonts
and layout are the same), so whether K views of one render teach as much as K renders is measured,
not assumed (docs/pretraining.md).

The changes are random per image and seeded by the batch's labels and the run's seed, so a resumed
run draws the same views again.
"""
from __future__ import annotations

import math
import zlib

import torch
import torch.nn.functional as F

from ..errors import OptionError
from ..read.images import PreprocessConfig

#: The most views a batch may be trained in: beyond this a rendered image is seen too often.
MAX_VIEWS = 8


def check_views(views: int) -> None:
    if not isinstance(views, int) or not 1 <= views <= MAX_VIEWS:
        raise OptionError(f"--views {views!r}: give a whole number from 1 (off) to {MAX_VIEWS}")


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, device=device)


def _chance(n: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) < p


def warp(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A small random affine change per image (rotation, shear, scale, shift), the edges repeated.
    Mostly shrinking, never enlarging by more than a few per cent: text that fills the canvas keeps
    its first and last characters."""
    n, (h, w), device = x.shape[0], x.shape[2:], x.device
    angle = _uniform(n, -3.0, 3.0, gen, device) * math.pi / 180
    shear = _uniform(n, -0.25, 0.25, gen, device)
    sx, sy = _uniform(n, 0.98, 1.12, gen, device), _uniform(n, 0.95, 1.1, gen, device)
    tx, ty = _uniform(n, -0.02, 0.02, gen, device), _uniform(n, -0.06, 0.06, gen, device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # the change in pixels (scale after rotation after shear), then in affine_grid's coordinates,
    # which run from -1 to 1 across both the width and the height
    theta = torch.stack([torch.stack([sx * cos, sx * (shear * cos - sin) * h / w, tx], 1),
                         torch.stack([sy * sin * w / h, sy * (shear * sin + cos), ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def recolour(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random contrast, brightness and gamma; a quarter of the images inverted; for colour, the
    channels of half the images shuffled (text and background keep their contrast, not their hue)."""
    n, device = x.shape[0], x.device
    if x.shape[1] == 3:
        perm = torch.argsort(torch.rand(n, 3, generator=gen, device=device), dim=1)
        shuffled = torch.gather(x, 1, perm[:, :, None, None].expand_as(x))
        x = torch.where(_chance(n, 0.5, gen, device)[:, None, None, None], shuffled, x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(n, 0.6, 1.3, gen, device)[:, None, None, None]
    bright = _uniform(n, -0.12, 0.12, gen, device)[:, None, None, None]
    x = ((x - mean) * contrast + mean + bright).clamp(0, 1)
    x = x ** torch.exp(_uniform(n, -0.4, 0.4, gen, device))[:, None, None, None]
    return torch.where(_chance(n, 0.25, gen, device)[:, None, None, None], 1 - x, x)


def soften(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A 3x3 blur on a third of the images, then Gaussian noise of a random strength and, on a fifth
    of them, black and white speckles."""
    n, c, device = x.shape[0], x.shape[1], x.device
    kernel = torch.tensor([1.0, 2.0, 1.0], device=device)
    kernel = (kernel[:, None] * kernel[None, :] / 16).expand(c, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
    x = torch.where(_chance(n, 1 / 3, gen, device)[:, None, None, None], blurred, x)
    sigma = _uniform(n, 0.0, 0.06, gen, device)[:, None, None, None]
    x = x + sigma * torch.randn(x.shape, generator=gen, device=device)
    density = _uniform(n, 0.0, 0.03, gen, device) * _chance(n, 0.2, gen, device)
    dots = torch.rand(n, 1, *x.shape[2:], generator=gen, device=device) < density[:, None, None, None]
    ink = (torch.rand(n, 1, *x.shape[2:], generator=gen, device=device) < 0.5).to(x.dtype)
    return torch.where(dots, ink, x).clamp(0, 1)


def new_views(images: torch.Tensor, views: int, pre: PreprocessConfig, gen: torch.Generator) -> torch.Tensor:
    """``images`` (N, C, H, W), normalised as the model reads them, followed by ``views - 1`` changed
    copies: (N * views, C, H, W)."""
    if views == 1:
        return images
    x = images * pre.std + pre.mean  # back to [0, 1]
    copies = [soften(recolour(warp(x, gen), gen), gen) for _ in range(views - 1)]
    return torch.cat([images] + [(c - pre.mean) / pre.std for c in copies])


def batch_seed(labels: list[str], seed: int) -> int:
    """A seed for one batch's views: the same batch of the same run draws the same views."""
    return zlib.crc32("\n".join(labels).encode()) ^ (seed * 0x9E3779B1 & 0xFFFFFFFF)
