"""Labelled files: folder scanning, manifests and the two datasets (whole captchas, single glyphs).

Labels come from a manifest (CSV with the header ``path,label``, TSV with ``path<TAB>label``, or
JSON lines ``{"path": ..., "label": ...}``), or from file names: the whole stem (``226md.png`` reads
``226md``), the part before the first underscore (``aB3x_17.png`` reads ``aB3x``, for sets where
labels repeat), or the first group of a regular expression. A label may hold any printable
characters: upper and lower case stay apart, digits, punctuation, other scripts, any length.
Manifests are the safer choice: file systems that ignore case (macOS, Windows) cannot hold
``aB3x.png`` and ``Ab3x.png`` side by side.

A glyph's label is the part of its name before the first underscore (``d_7678.png`` is a ``d``), the
Kaggle "CAPTCHA Characters Dataset (118K)" convention; glyphs may also sit in one folder per class.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
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
from tqdm import tqdm

from .charset import Charset
from .errors import CaptchaWarning, LabelError, OptionError
from .images import PreprocessConfig, file_problem, load_image, printable, resize_image, to_tensor
from .layout import cut_points

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".avif")
LABEL_SOURCES = ("stem", "prefix", "regex")
#: A listing in an error names at most this many files, then says how many more there are.
LISTED = 8


@dataclass(frozen=True)
class Sample:
    """One labelled image file."""

    path: Path
    label: str


def label_problem(label: str, length: int | None, alphabet: str | None) -> str | None:
    """Why ``label`` is not valid, or None when it is."""
    if not label:
        return "empty label"
    if not label.isprintable() or label != label.strip():
        return f"label {label!r} holds line breaks, tabs or other control characters, or spaces at an end"
    if length is not None and len(label) != length:
        return f"label {label!r} has {len(label)} characters, expected {length}"
    if alphabet is not None:
        bad = "".join(dict.fromkeys(c for c in label if c not in alphabet))
        if bad:
            return f"label {label!r} holds {bad!r}, outside the alphabet {alphabet!r}"
    return None


def listing(items: Sequence[str], limit: int = LISTED) -> str:
    """``a; b; c`` for a one-line message, with "and N more" past ``limit``."""
    shown = "; ".join(printable(i) for i in items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


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
            bad.append(f"{path.name}: {problem}")
        else:
            good.append(Sample(path, label))
    if bad and not skip_invalid:
        raise LabelError(f"{len(bad)} file(s) in {where} are not valid labels (the skip-invalid option "
                         f"leaves them out): {listing(bad)}")
    if bad:
        warnings.warn(f"skipped {len(bad)} file(s) in {where} that are not valid labels: {listing(bad)}",
                      CaptchaWarning, stacklevel=3)
    return good


def label_from_name(name: str, source: str = "stem", pattern: str | None = None) -> str:
    """The label a file name gives: its stem, the part before the first ``_``, or the first group
    of ``pattern`` (the whole match where it has no group); "" where the pattern does not match."""
    stem = Path(name).stem
    if source == "stem":
        return stem
    if source == "prefix":
        return stem.split("_", 1)[0]
    match = re.search(pattern or "", stem)
    if not match:
        return ""
    return match.group(1) if match.groups() else match.group(0)


def _compile(source: str, pattern: str | None) -> None:
    if source not in LABEL_SOURCES:
        raise OptionError(f"label source {source!r} is unknown; use {', '.join(LABEL_SOURCES)}")
    if source == "regex":
        if not pattern:
            raise OptionError("labels from a regex need a pattern (--label-regex)")
        try:
            re.compile(pattern)
        except re.error as e:
            raise OptionError(f"label regex {pattern!r} is not a valid regular expression ({e})") from None


def is_hidden(path: Path) -> bool:
    """Hidden files and the ``._name`` companions macOS leaves on other file systems."""
    return path.name.startswith(".")


def scan_folder(
    folder: str | Path,
    length: int | None = 5,
    alphabet: str | None = None,
    skip_invalid: bool = False,
    label_from: str = "stem",
    label_regex: str | None = None,
) -> list[Sample]:
    """Every image file directly in ``folder`` (hidden files left out), sorted by file name, with
    the label its name gives (see :func:`label_from_name`).

    Args:
        length: the label length every file must have (None: any).
        alphabet: if given, the characters labels may use.
        skip_invalid: leave out invalid names with a warning that counts them, instead of raising.
        label_from: how a name gives a label: "stem", "prefix" or "regex".
        label_regex: the regular expression for ``label_from="regex"``.

    Raises:
        OptionError: the folder does not exist.
        LabelError: naming the files whose names are not valid labels.
    """
    _compile(label_from, label_regex)
    folder = Path(folder)
    if not folder.is_dir():
        raise OptionError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    hidden = [p for p in files if is_hidden(p)]
    if hidden:
        warnings.warn(f"left out {len(hidden)} hidden file(s) in {folder} (names starting with '.', e.g. "
                      f"{printable(hidden[0].name)})", CaptchaWarning, stacklevel=2)
    pairs = ((p, label_from_name(p.name, label_from, label_regex)) for p in files if not is_hidden(p))
    return _check(pairs, length, alphabet, skip_invalid, str(folder))


def _manifest_rows(path: Path, text: str) -> Iterable[tuple[int, str | None, str | None]]:
    """(line number, path, label) of each row of a CSV, TSV or JSON-lines manifest."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LabelError(f"{path}: line {n} is not JSON ({e.msg})") from None
                if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("path", "label")):
                    raise LabelError(f"{path}: line {n} is not a JSON object with a string path and a string label")
                yield n, row["path"], row["label"]
        return
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    rows = _csv_rows(path, csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    header = next(rows, None)
    if header is None:
        raise LabelError(f"{path}: empty manifest (no header line)")
    header = [h.strip().lstrip("\ufeff") for h in header]
    if "path" not in header or "label" not in header:
        sep = "<TAB>" if delimiter == "\t" else ","
        raise LabelError(f"{path}: a manifest needs a header line with columns path{sep}label, found {header[:4]}")
    ip, il = header.index("path"), header.index("label")
    for n, row in enumerate(rows, 2):
        if row:
            yield n, row[ip] if ip < len(row) else None, row[il] if il < len(row) else None


def _csv_rows(path: Path, rows) -> Iterable[list[str]]:
    """The CSV reader's rows, its errors (a field over its size limit, a broken quote) as LabelError."""
    try:
        yield from rows
    except csv.Error as e:
        raise LabelError(f"{path}: line {rows.line_num} is not a CSV row ({e})") from None


def read_manifest(
    path: str | Path,
    length: int | None = None,
    alphabet: str | None = None,
    skip_invalid: bool = False,
) -> list[Sample]:
    """Samples from a manifest (CSV ``path,label``; ``.tsv`` tab-separated; ``.jsonl`` JSON lines).
    Relative paths are taken from the manifest's own folder. Repeated rows are kept once, with a
    warning that counts them.

    Raises:
        OptionError: the manifest does not exist.
        LabelError: the manifest is not UTF-8 text, has no header, or rows lack a path or label.
    """
    path = Path(path)
    problem = file_problem(path, "manifest")
    if problem == "empty manifest (0 bytes)":
        raise LabelError(f"{path}: {problem}")
    if problem:
        raise OptionError(f"{path}: {problem}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LabelError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at position {e.start}); "
                         "save the manifest as UTF-8") from None
    base = path.parent
    pairs: list[tuple[Path, str]] = []
    broken: list[str] = []
    for n, p, label in _manifest_rows(path, text):
        if not p or label is None:
            broken.append(f"line {n}")
            continue
        q = Path(p)
        pairs.append((q if q.is_absolute() else Path(os.path.normpath(base / q)), label))
    if broken:
        raise LabelError(f"{path}: {len(broken)} row(s) lack a path or a label: {listing(broken)}")
    return _check(_unique(pairs, str(path)), length, alphabet, skip_invalid, str(path))


def _unique(pairs: list[tuple[Path, str]], where: str) -> list[tuple[Path, str]]:
    """The rows once each, warning about repeats (and a file given two labels)."""
    seen: dict[Path, str] = {}
    repeats, clashes = 0, []
    for p, label in pairs:
        if p in seen:
            repeats += 1
            if seen[p] != label:
                clashes.append(f"{p.name}: {seen[p]!r} and {label!r}")
            continue
        seen[p] = label
    if repeats:
        warnings.warn(f"{where}: {repeats} repeated row(s) kept once" +
                      (f"; {len(clashes)} file(s) have two labels, the first is used: {listing(clashes)}" if clashes else ""),
                      CaptchaWarning, stacklevel=3)
    return list(seen.items())


def write_manifest(path: str | Path, samples: Sequence[Sample]) -> None:
    """Write ``path,label`` rows. A path inside the manifest's folder is written relative to it
    (the folder can move as a whole); any other path is written absolute, so moving the project
    does not break a manifest that points at data elsewhere."""
    path = Path(path)
    base = path.parent.resolve()
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for s in samples:
            w.writerow([_portable_path(s.path, base), s.label])


def _portable_path(p: Path, base: Path) -> str:
    full = Path(p).resolve()
    try:
        return full.relative_to(base).as_posix()
    except ValueError:  # not inside the manifest's folder
        return str(full)


def load_samples(
    src: str | Path, length: int | None = 5, alphabet: str | None = None, skip_invalid: bool = False,
    label_from: str = "stem", label_regex: str | None = None,
) -> list[Sample]:
    """Samples from a folder of labelled images or a manifest (see :func:`scan_folder` and
    :func:`read_manifest`)."""
    src = Path(src)
    if src.is_dir():
        return scan_folder(src, length, alphabet, skip_invalid, label_from, label_regex)
    return read_manifest(src, length, alphabet, skip_invalid)


def alphabet_of(samples: Iterable[Sample]) -> str:
    """The sorted set of characters of the samples' labels."""
    return Charset.from_labels(s.label for s in samples).chars


def overlap(a: Sequence[Sample], b: Sequence[Sample]) -> int:
    """How many files of ``b`` are also in ``a`` (the same path)."""
    paths = {s.path.resolve() for s in a}
    return sum(s.path.resolve() in paths for s in b)


# ----- datasets --------------------------------------------------------------------------------
Augment = Callable[[np.ndarray], np.ndarray]


class CaptchaDataset(Dataset):
    """Whole captchas: item ``i`` is ``(image (C, H, W), target indices (L,), label)``.

    Images are decoded once and kept in memory at model size (a captcha set of a few thousand
    images is a few MB); augmentation, if any, is applied each time an item is read. A label with a
    character the charset lacks raises :class:`UnknownCharacterError` (``unknown="raise"``) or, for
    validation, keeps its label and leaves the character out of the target (``unknown="drop"``).

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
        unknown: str = "raise",
        progress: bool = False,
    ):
        self.samples = list(samples)
        self.charset = charset
        self.cfg = cfg
        self.augment = augment
        self.mix_prob = mix_prob
        if unknown == "raise":
            self.targets = [charset.encode(s.label, source=str(s.path)) for s in self.samples]
        else:  # "drop": characters the model cannot emit leave the target (the label still counts them)
            self.targets = [charset.encode("".join(c for c in s.label if c in charset)) for s in self.samples]
        rows = tqdm(self.samples, desc="decoding images", file=sys.stderr, leave=False, disable=not progress or None)
        self.images = [resize_image(load_image(s.path, color=cfg.color), cfg, str(s.path)) for s in rows]
        # where each image's characters meet (model-size columns), for splicing
        self.cuts = [cut_points(img, len(s.label)) for img, s in zip(self.images, self.samples)] if mix_prob > 0 else []
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
        out.augment, out.mix_prob = None, 0.0
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
        if self.mix_prob > 0 and self.rng.random() < self.mix_prob:
            pixels, target, label = self._splice(i)
        if self.augment is not None:
            pixels = self.augment(pixels)
        return to_tensor(pixels, self.cfg), torch.tensor(target, dtype=torch.long), label


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
        raise OptionError(f"{src}: not a folder or a .tar.gz of glyph images")
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
        progress: show a progress bar while the images are decoded.
    """

    def __init__(
        self,
        src,
        cfg: PreprocessConfig,
        charset: Charset | None = None,
        augment: Augment | None = None,
        subfolder: str | None = None,
        skip_invalid: bool = False,
        progress: bool = False,
    ):
        files = read_glyph_files(src, subfolder) if isinstance(src, (str, Path)) else list(src)
        if not files:
            where = f"{src}" + (f" (below {subfolder})" if subfolder else "")
            raise LabelError(f"{where}: no glyph images (<char>_<n>.png, or one folder per class)")
        if charset is None:
            charset = Charset.from_labels(lbl for _, lbl, _ in files if len(lbl) == 1 and lbl.isprintable())
            print(f"glyph alphabet ({len(charset)}): {charset.chars}", file=sys.stderr)
        bad = [f"{Path(n).name}: label {lbl!r} is not one character of {charset.chars!r}"
               for n, lbl, _ in files if len(lbl) != 1 or lbl not in charset]
        if bad and not skip_invalid:
            raise LabelError(f"{len(bad)} glyph file(s) have invalid labels (the skip-invalid option leaves them "
                             f"out): {listing(bad)}")
        if bad:
            warnings.warn(f"skipped {len(bad)} glyph file(s) with invalid labels: {listing(bad)}", CaptchaWarning,
                          stacklevel=2)
        files = [f for f in files if len(f[1]) == 1 and f[1] in charset]
        if progress:
            files = tqdm(files, desc="decoding glyphs", file=sys.stderr, leave=False)
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
