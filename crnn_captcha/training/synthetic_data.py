"""Synthetic captchas and glyphs as datasets, drawn in loader workers: the pretraining data."""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.datasets import collate_ctc
from ..read.charset import Charset
from ..read.frames import fuse_frames
from ..read.images import PreprocessConfig, drawn_at, resize_image, to_tensor
from .runtime import leave_interrupts_to_main


# ----- synthetic data ------------------------------------------------------------------------------
class FreshSampler(Sampler[int]):
    """Indices ``epoch * size + rank, ... `` a new stretch every epoch, so an on-the-fly renderer
    draws images never seen before; the stretch depends only on the epoch (resumes see the same)."""

    def __init__(self, size: int, rank: int = 0, world: int = 1):
        self.size, self.rank, self.world, self.epoch = size, rank, world, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        base = (self.epoch - 1) * self.size * self.world
        return iter(range(base + self.rank, base + self.size * self.world, self.world))

    def __len__(self) -> int:
        return self.size


class SynthCaptchas(Dataset):
    """Synthetic captchas as training items ``(image (3, H, W), target, label)``; item ``i`` is the
    renderer's image ``i``. With ``cache`` the items are rendered once (a fixed validation set).
    With ``x_spread`` s > 1 each image is drawn at ``cfg.x_scale`` times a factor from 1/s to s (even
    on a log scale, the same for item ``i`` on every pass), so the model learns text squeezed and
    stretched across its input, not at one width alone."""

    def __init__(self, renderer, charset: Charset, cfg: PreprocessConfig, cache: int = 0, x_spread: float = 1.0):
        self.renderer, self.charset, self.cfg, self.x_spread = renderer, charset, cfg, x_spread
        self.augment = None
        self.cached = [self._pixels(i) for i in range(cache)]

    def drawn_as(self, i: int) -> PreprocessConfig:
        """The input item ``i`` is drawn to: ``cfg``, at its own width within the spread."""
        if self.x_spread == 1:
            return self.cfg
        u = np.random.default_rng([i, 0x5CA1E]).uniform(-1.0, 1.0)  # its own stream: the renderer's is untouched
        return drawn_at(self.cfg, math.exp(u * math.log(self.x_spread)))

    def _pixels(self, i: int):
        animation = self.renderer.animation(i)
        if animation is not None:  # read as a reader reads an animated captcha: its frames fused
            rgb, label = fuse_frames(animation.frames, animation.fusion), animation.text
        else:
            rgb, label = self.renderer.sample(i)
        return resize_image(rgb if self.cfg.color else _gray(rgb), self.drawn_as(i), f"synthetic {i}"), label

    def __len__(self) -> int:
        return len(self.cached) or 2**31 - 1

    def __getitem__(self, i: int):
        pixels, label = self.cached[i] if self.cached else self._pixels(i)
        return to_tensor(pixels, self.cfg), torch.tensor(self.charset.encode(label), dtype=torch.long), label


class SynthGlyphs(Dataset):
    """Synthetic single characters ``(image (3, H, W), class)``: the glyph stage's data."""

    def __init__(self, renderer, charset: Charset, cfg: PreprocessConfig, cache: int = 0):
        self.renderer, self.charset, self.cfg = renderer, charset, cfg
        self.cached = [self._item(i) for i in range(cache)]

    def _item(self, i: int):
        rgb, char = self.renderer.glyph(i)
        return to_tensor(resize_image(rgb, self.cfg, f"glyph {i}"), self.cfg), self.charset.encode(char)[0] - 1

    def __len__(self) -> int:
        return len(self.cached) or 2**31 - 1

    def __getitem__(self, i: int):
        return self.cached[i] if self.cached else self._item(i)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"))


def _one_thread_worker(worker_id: int) -> None:
    """A rendering worker keeps to one core: OpenCV would start a thread per core (torch's own
    thread count is already 1 in a loader worker)."""
    import cv2

    cv2.setNumThreads(1)
    leave_interrupts_to_main()


def worker_options(workers: int) -> dict:
    """DataLoader settings for rendering workers: started once and by spawning, not forking (a
    fork of a process whose OpenMP threads have run can hang in the child)."""
    if not workers:
        return {"num_workers": 0}
    return {"num_workers": workers, "worker_init_fn": _one_thread_worker, "persistent_workers": True,
            "multiprocessing_context": "spawn", "prefetch_factor": 4}


def synthetic_loader(renderer, charset: Charset, pre: PreprocessConfig, batch_size: int, sampler: Sampler,
                     cuda: bool, workers: int, seed: int, x_spread: float = 1.0) -> DataLoader:
    """Batches of fresh synthetic captchas, drawn in ``workers`` processes: the sequence stage's data."""
    return DataLoader(SynthCaptchas(renderer, charset, pre, x_spread=x_spread), batch_size=batch_size, sampler=sampler,
                      collate_fn=collate_ctc, pin_memory=cuda, generator=torch.Generator().manual_seed(seed),
                      drop_last=True, **worker_options(workers))


