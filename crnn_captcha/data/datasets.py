"""Training datasets of whole captchas, with augmentation and splicing, and their batching."""
from __future__ import annotations

import copy
import sys
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from ..read.charset import Charset
from ..read.images import PreprocessConfig, load_for, resize_image, to_tensor
from .labels import Augment, Sample
from .positions import cut_points


class CaptchaDataset(Dataset):
    """Whole captchas: item ``i`` is ``(image (C, H, W), target indices (L,), label)``.

    Images are decoded once and kept in memory at model size (a captcha set of a few thousand
    images is a few MB); augmentation, if any, is applied each time an item is read. A label with a
    character the charset lacks raises :class:`UnknownCharacterError` (``unknown="raise"``) or, for
    validation, keeps its label and leaves the character out of the target (``unknown="drop"``).

    With ``splice_prob`` > 0 an item is, with that probability, spliced with another captcha of the
    same label length: the first ``k`` characters of one and the rest of the other, cut at the
    boundary between character cells (the text extent split evenly). The new strings never occur
    in the data, so the model cannot pass by memorising whole training strings and must read each
    character where it stands.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        charset: Charset,
        cfg: PreprocessConfig,
        augment: Augment | None = None,
        splice_prob: float = 0.0,
        seed: int = 0,
        unknown: str = "raise",
        progress: bool = False,
    ):
        self.samples = list(samples)
        self.charset = charset
        self.cfg = cfg
        self.augment = augment
        self.splice_prob = splice_prob
        if unknown == "raise":
            self.targets = [charset.encode(s.label, source=str(s.path)) for s in self.samples]
        else:  # "drop": characters the model cannot emit leave the target (the label still counts them)
            self.targets = [charset.encode("".join(c for c in s.label if c in charset)) for s in self.samples]
        rows = tqdm(self.samples, desc="decoding images", file=sys.stderr, leave=False, disable=not progress or None)
        self.images = [resize_image(load_for(s.path, cfg, str(s.path)), cfg, str(s.path)) for s in rows]
        # where each image's characters meet (model-size columns), for splicing
        self.cuts = [cut_points(img, len(s.label)) for img, s in zip(self.images, self.samples)] if splice_prob > 0 else []
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the random stream of splicing (and augmentation); each loader worker calls it."""
        self.rng = np.random.default_rng(seed)
        if self.augment is not None and hasattr(self.augment, "pipeline"):
            self.augment.pipeline.set_random_seed(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def plain(self) -> "CaptchaDataset":
        """The same items as they are: no augmentation and no splicing (for the last epochs)."""
        out = copy.copy(self)
        out.augment, out.splice_prob = None, 0.0
        return out

    def _splice(self, i: int) -> tuple[np.ndarray, list[int], str]:
        """The first k characters of item i and the last characters of another item j (its own
        cut after character m), so the result reads label_i[:k] + label_j[m:]."""
        li, j = self.samples[i].label, int(self.rng.integers(len(self.samples)))
        lj = self.samples[j].label
        if len(li) < 2 or len(lj) < 2 or len(self.targets[i]) != len(li) or len(self.targets[j]) != len(lj):
            return self.images[i], self.targets[i], li
        k = int(self.rng.integers(1, len(li)))
        m = int(np.clip(k + self.rng.integers(-1, 2), 1, len(lj) - 1))  # a similar place in j, lengths may differ
        a, b = int(round(self.cuts[i][k])), int(round(self.cuts[j][m]))
        joined = np.concatenate([self.images[i][:, :a], self.images[j][:, b:]], axis=1)
        if joined.shape[1] != self.cfg.width:
            mode = "L" if joined.ndim == 2 else "RGB"
            joined = np.asarray(Image.fromarray(joined, mode).resize((self.cfg.width, self.cfg.height), Image.BILINEAR))
        return joined, self.targets[i][:k] + self.targets[j][m:], li[:k] + lj[m:]

    def __getitem__(self, i: int):
        pixels, target, label = self.images[i], self.targets[i], self.samples[i].label
        if self.splice_prob > 0 and self.rng.random() < self.splice_prob:
            pixels, target, label = self._splice(i)
        if self.augment is not None:
            pixels = self.augment(pixels)
        return to_tensor(pixels, self.cfg), torch.tensor(target, dtype=torch.long), label


def collate_ctc(batch):
    """Stack images; concatenate targets as CTC wants them, with their lengths."""
    images, targets, labels = zip(*batch)
    lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    return torch.stack(images), torch.cat(targets), lengths, list(labels)


