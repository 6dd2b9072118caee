"""Labelled files: folder scanning, manifests and the two datasets (whole captchas, single glyphs).

A captcha's label is its file name without the extension (``226md.png`` reads ``226md``). A glyph's
label is the part of its name before the first underscore (``d_7678.png`` is a ``d``), the Kaggle
"CAPTCHA Characters Dataset (118K)" convention; glyphs may also sit in one folder per class.
"""
from __future__ import annotations

import csv
import os
import sys
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .charset import Charset
from .errors import LabelError
from .images import PreprocessConfig, load_image, resize_image, to_tensor
from .layout import char_boundaries

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Sample:
    """One labelled image file."""

    path: Path
    label: str


def label_problem(label: str, length: int | None, alphabet: str | None) -> str | None:
    """Why ``label`` is not valid, or None when it is."""
    if not label:
        return "empty label"
    if length is not None and len(label) != length:
        return f"label {label!r} has {len(label)} characters, expected {length}"
    if not label.isalnum() or not label.isascii():
        return f"label {label!r} holds characters other than ASCII letters and digits"
    if alphabet is not None:
        bad = "".join(dict.fromkeys(c for c in label if c not in alphabet))
        if bad:
            return f"label {label!r} holds {bad!r}, outside the alphabet {alphabet!r}"
    return None


def _check(
    pairs: Iterable[tuple[Path, str]],
    length: int | None,
    alphabet: str | None,
    skip_invalid: bool,
    where: str,
) -> list[Sample]:
    good: list[Sample] = []
    bad: list[str] = []
    for path, label in pairs:
        problem = label_problem(label, length, alphabet)
        if problem:
            bad.append(f"{path}: {problem}")
        else:
            good.append(Sample(path, label))
    if bad:
        listing = "\n  ".join(bad)
        if not skip_invalid:
            raise LabelError(
                f"{len(bad)} file(s) in {where} are not valid labels (pass skip_invalid / "
                f"--skip-invalid to leave them out):\n  {listing}"
            )
        warnings.warn(f"skipped {len(bad)} file(s) in {where} that are not valid labels:\n  {listing}")
    return good


def scan_folder(
    folder: str | Path,
    length: int | None = 5,
    alphabet: str | None = None,
    skip_invalid: bool = False,
) -> list[Sample]:
    """Every ``<label>.<png|jpg|jpeg>`` file directly in ``folder``, sorted by file name.

    Args:
        length: the label length every file must have (None: any).
        alphabet: if given, the characters labels may use.
        skip_invalid: leave out invalid names with a warning that counts them, instead of raising.

    Raises:
        FileNotFoundError: the folder does not exist.
        LabelError: listing every file whose name is not a valid label.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return _check(((p, p.stem) for p in files), length, alphabet, skip_invalid, str(folder))


def read_manifest(
    path: str | Path,
    length: int | None = None,
    alphabet: str | None = None,
    skip_invalid: bool = False,
) -> list[Sample]:
    """Samples from a CSV manifest with columns ``path,label``; relative paths are taken from the
    manifest's own folder, so a split stays valid wherever the repository is cloned."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    base = path.parent
    pairs: list[tuple[Path, str]] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"path", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: a manifest needs a header with columns 'path,label'")
        for row in reader:
            p = Path(row["path"])
            pairs.append((p if p.is_absolute() else Path(os.path.normpath(base / p)), row["label"]))
    return _check(pairs, length, alphabet, skip_invalid, str(path))


def write_manifest(path: str | Path, samples: Sequence[Sample], relative_to: Path | None = None) -> None:
    """Write ``path,label`` rows; paths relative to the manifest's folder where possible."""
    path = Path(path)
    base = (relative_to or path.parent).resolve()
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for s in samples:
            w.writerow([_relpath(s.path, base), s.label])


def _relpath(p: Path, base: Path) -> str:
    try:
        return os.path.relpath(Path(p).resolve(), base)
    except ValueError:  # another drive on Windows
        return str(Path(p).resolve())


def load_samples(
    src: str | Path, length: int | None = 5, alphabet: str | None = None, skip_invalid: bool = False
) -> list[Sample]:
    """Samples from a folder of labelled images or a CSV manifest."""
    src = Path(src)
    if src.is_dir():
        return scan_folder(src, length, alphabet, skip_invalid)
    return read_manifest(src, length, alphabet, skip_invalid)


def alphabet_of(samples: Iterable[Sample]) -> str:
    """The sorted set of characters of the samples' labels."""
    return Charset.from_labels(s.label for s in samples).chars


# ----- datasets --------------------------------------------------------------------------------
Augment = Callable[[np.ndarray], np.ndarray]


class CaptchaDataset(Dataset):
    """Whole captchas: item ``i`` is ``(image (C, H, W), target indices (L,), label)``.

    Images are decoded once and kept in memory at model size (a captcha set of a few thousand
    images is a few MB); augmentation, if any, is applied each time an item is read.

    With ``mix_prob`` > 0 an item is, with that probability, spliced with another captcha of the
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
        mix_prob: float = 0.0,
        seed: int = 0,
    ):
        self.samples = list(samples)
        self.charset = charset
        self.cfg = cfg
        self.augment = augment
        self.mix_prob = mix_prob
        self.targets = [charset.encode(s.label, source=str(s.path)) for s in self.samples]
        self.images = [resize_image(load_image(s.path, color=cfg.color), cfg, str(s.path)) for s in self.samples]
        # cell boundaries (model-size columns) of each image's text, for splicing
        self.cuts = [char_boundaries(_gray(img), len(s.label)) for img, s in zip(self.images, self.samples)] \
            if mix_prob > 0 else []
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the random stream of splicing (and augmentation); each loader worker calls it."""
        self.rng = np.random.default_rng(seed)
        if self.augment is not None and hasattr(self.augment, "pipeline"):
            self.augment.pipeline.set_random_seed(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def _splice(self, i: int) -> tuple[np.ndarray, list[int], str]:
        n = len(self.targets[i])
        j = int(self.rng.integers(len(self.samples)))
        if len(self.targets[j]) != n or n < 2:
            return self.images[i], self.targets[i], self.samples[i].label
        k = int(self.rng.integers(1, n))
        a, b = int(round(self.cuts[i][k])), int(round(self.cuts[j][k]))
        joined = np.concatenate([self.images[i][:, :a], self.images[j][:, b:]], axis=1)
        if joined.shape[1] != self.cfg.width:
            mode = "L" if joined.ndim == 2 else "RGB"
            joined = np.asarray(Image.fromarray(joined, mode).resize((self.cfg.width, self.cfg.height), Image.BILINEAR))
        label = self.samples[i].label[:k] + self.samples[j].label[k:]
        return joined, self.targets[i][:k] + self.targets[j][k:], label

    def __getitem__(self, i: int):
        pixels, target, label = self.images[i], self.targets[i], self.samples[i].label
        if self.mix_prob > 0 and self.rng.random() < self.mix_prob:
            pixels, target, label = self._splice(i)
        if self.augment is not None:
            pixels = self.augment(pixels)
        return to_tensor(pixels, self.cfg), torch.tensor(target, dtype=torch.long), label


def _gray(pixels: np.ndarray) -> np.ndarray:
    """uint8 gray of (H, W) or (H, W, 3) pixels."""
    return pixels if pixels.ndim == 2 else np.asarray(Image.fromarray(pixels, "RGB").convert("L"))


def collate_ctc(batch):
    """Stack images; concatenate targets as CTC wants them, with their lengths."""
    images, targets, labels = zip(*batch)
    lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    return torch.stack(images), torch.cat(targets), lengths, list(labels)


def _glyph_label(name: str) -> str:
    return Path(name).name.split("_")[0]


def read_glyph_files(src: str | Path, subfolder: str | None = None) -> list[tuple[str, str, bytes]]:
    """``(name, label, png bytes)`` for every glyph image in a folder (flat or one folder per
    class) or a ``.tar.gz``/``.tar`` archive, sorted by name. The label is the file name's part
    before the first ``_``; a file without ``_`` takes its class folder's name. With ``subfolder``
    only files below a folder of that name are read."""
    src = Path(src)
    out: list[tuple[str, str, bytes]] = []

    def wanted(rel: str) -> bool:
        if Path(rel).suffix.lower() not in IMAGE_SUFFIXES:
            return False
        return subfolder is None or subfolder.strip("/") in rel.split("/")[:-1]

    def label_for(rel: str) -> str:
        parts = rel.split("/")
        if "_" in parts[-1]:
            return _glyph_label(parts[-1])
        return parts[-2] if len(parts) >= 2 else ""

    if src.is_dir():
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src).as_posix()
            if p.is_file() and wanted(rel):
                out.append((str(p), label_for(rel), p.read_bytes()))
    elif src.is_file() and src.name.endswith((".tar.gz", ".tgz", ".tar")):
        # Read members in archive order (a gzip stream cannot seek back cheaply), in memory:
        # the archive is never unpacked to disk.
        with tarfile.open(src) as tar:
            for m in tar:
                if m.isfile() and wanted(m.name):
                    f = tar.extractfile(m)
                    if f is not None:
                        out.append((f"{src}:{m.name}", label_for(m.name), f.read()))
        out.sort(key=lambda item: item[0])
    else:
        raise FileNotFoundError(f"{src}: not a folder or a .tar.gz of glyph images")
    return out


class GlyphDataset(Dataset):
    """Single characters: item ``i`` is ``(image (1, H, W), class index)``.

    Args:
        src: folder or archive (see :func:`read_glyph_files`), or a list of ``(name, label, bytes)``.
        cfg: the glyph input size (its aspect check is off: glyphs vary in shape).
        charset: the classes; by default found from the labels and printed.
        subfolder: keep only files under this folder of the archive/folder (e.g.
            ``tahabakhtari_subset``).
        skip_invalid: leave out files whose label is not one character of the charset.
    """

    def __init__(
        self,
        src,
        cfg: PreprocessConfig,
        charset: Charset | None = None,
        augment: Augment | None = None,
        subfolder: str | None = None,
        skip_invalid: bool = False,
    ):
        files = read_glyph_files(src, subfolder) if isinstance(src, (str, Path)) else list(src)
        if charset is None:
            charset = Charset.from_labels(lbl for _, lbl, _ in files if len(lbl) == 1 and lbl.isalnum())
            print(f"glyph alphabet ({len(charset)}): {charset.chars}", file=sys.stderr)
        bad = [f"{n}: label {lbl!r} is not one character of {charset.chars!r}"
               for n, lbl, _ in files if len(lbl) != 1 or lbl not in charset]
        if bad and not skip_invalid:
            raise LabelError(f"{len(bad)} glyph file(s) have invalid labels:\n  " + "\n  ".join(bad[:20]))
        if bad:
            warnings.warn(f"skipped {len(bad)} glyph file(s) with invalid labels")
        files = [f for f in files if len(f[1]) == 1 and f[1] in charset]
        self.cfg = PreprocessConfig(**{**cfg.to_dict(), "max_aspect_error": 0.0})
        self.charset = charset
        self.augment = augment
        self.names = [n for n, _, _ in files]
        self.labels = [charset.encode(lbl, source=n)[0] - 1 for n, lbl, _ in files]  # 0-based class
        self.images = [resize_image(load_image(b, n, color=self.cfg.color), self.cfg, n) for n, _, b in files]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        gray = self.images[i]
        if self.augment is not None:
            gray = self.augment(gray)
        return to_tensor(gray, self.cfg), self.labels[i]
