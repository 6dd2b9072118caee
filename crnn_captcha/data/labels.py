"""Labelled files: folder scanning and manifests (the datasets are in :mod:`.datasets` and :mod:`.glyphs`).

Labels come from a manifest (CSV with the header ``path,label``, TSV with ``path<TAB>label``, or
JSON lines ``{"path": ..., "label": ...}``), or from file names: the whole stem (``226md.png`` reads
``226md``), the part before the first underscore (``aB3x_17.png`` reads ``aB3x``, for sets where
labels repeat), or the first group of a regular expression. A label may hold any printable
characters: upper and lower case stay apart, digits, punctuation, other scripts, any length.
Manifests are the safer choice: file systems that ignore case (macOS, Windows) cannot hold
``aB3x.png`` and ``Ab3x.png`` side by side.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import CaptchaWarning, LabelError, OptionError
from ..read.charset import Charset
from ..read.images import file_problem, printable

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
    named = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()]
    files = sorted(p for p in named if p.is_file())
    if len(files) < len(named):
        odd = sorted(set(named) - set(files))
        warnings.warn(f"left out {len(odd)} of the entries of {folder}: not regular files (a pipe, a device or a "
                      f"broken link: e.g. {printable(odd[0].name)})", CaptchaWarning, stacklevel=2)
    hidden = [p for p in files if is_hidden(p)]
    if hidden:
        warnings.warn(f"left out {len(hidden)} hidden file(s) in {folder} (names starting with '.', e.g. "
                      f"{printable(hidden[0].name)})", CaptchaWarning, stacklevel=2)
    pairs = ((p, label_from_name(p.name, label_from, label_regex)) for p in files if not is_hidden(p))
    samples = _check(pairs, length, alphabet, skip_invalid, str(folder))
    if label_from != "regex":  # a regular expression is the user's own statement of what the label is
        check_names([s.label for s in samples], folder)
    return samples


#: Names a camera, a browser or a script gives files: a word and a number (image_001, IMG0042).
_FILE_WORD = re.compile(r"^(img|image|photo|pic|picture|screenshot|scan|capture|captcha|file|frame|sample|download)"
                        r"[ _.-]*\d+$", re.I)
_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)
#: A file name with a start that ends in a separator, then a number (scan_a_17): captchas hold no separators.
_COUNTED_NAME = re.compile(r"^(.+[ _.-])\d+$")
#: No captcha we know of is longer; a longer name is a description, not the text.
LONGEST_CAPTCHA = 16


def unlike_captcha_text(labels: Sequence[str]) -> dict[str, str]:
    """The labels (from file names) that look like file names rather than what a captcha shows,
    each with why: a UUID, a word and a number (``image_001``), more than :data:`LONGEST_CAPTCHA`
    characters, or, across the set, numbers counting up (``001``, ``002``, ...) or one shared start
    with a number after it (``scan_a_17``, ``scan_a_18``, ...)."""
    why: dict[str, str] = {}
    for label in labels:
        if _UUID.match(label):
            why[label] = "a UUID"
        elif _FILE_WORD.match(label):
            why[label] = "a word and a number"
        elif len(label) > LONGEST_CAPTCHA:
            why[label] = f"{len(label)} characters, more than any captcha"
    counted = [x for x in labels if x.isdecimal() and x.isascii()]
    numbers = sorted({int(x) for x in counted})
    if len(numbers) >= 10 and len(counted) >= 0.9 * len(labels):
        span = numbers[-1] - numbers[0] + 1
        widths = {len(x) for x in counted}
        # a count fills its range (001..250), a small part of what its width allows, or its width grows
        # (1..250); a numeric captcha set is a sample of all the codes of one width
        if len(numbers) >= 0.99 * span and (span <= 10 ** max(widths) / 2 or len(widths) > 1):
            for x in counted:
                why.setdefault(x, "numbers counting up")
    starts = Counter(m.group(1) for x in labels if (m := _COUNTED_NAME.match(x)))
    if starts and len(labels) >= 10:
        start, count = starts.most_common(1)[0]
        if count >= 0.8 * len(labels):
            for x in labels:
                if x.startswith(start) and x[len(start):].isdecimal():
                    why.setdefault(x, f"the same start {start!r} and a number")
    return why


def check_names(labels: Sequence[str], where: str | Path) -> None:
    """Warn when some file names do not look like captcha text; refuse when most do not.

    Raises:
        LabelError: more than half of them do not, with an example and how to label.
    """
    why = unlike_captcha_text(labels)
    if not why:
        return
    label, reason = next(iter(why.items()))
    said = (f"{len(why)} of {len(labels)} file names in {where} do not look like captcha text (e.g. {label!r}: "
            f"{reason})")
    if len(why) > len(labels) / 2:
        raise LabelError(f"{said}; name each image after the text it shows (226md.png), or list path,label rows "
                         "in a CSV manifest (docs/data.md)")
    warnings.warn(f"{said}; their names are taken as their text", CaptchaWarning, stacklevel=3)


def _manifest_rows(path: Path, text: str) -> Iterable[tuple[int, str | None, str | None]]:
    """(line number, path, label) of each row of a CSV, TSV or JSON-lines manifest."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LabelError(f"{path}: line {n} is not JSON ({e.msg})") from None
                except RecursionError:  # brackets nested thousands deep: not a manifest row
                    raise LabelError(f"{path}: line {n} nests too deep to be a manifest row") from None
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
    does not break a manifest that points at data elsewhere. Links are kept as given (not resolved
    to where they point), so a path reads as the user wrote it."""
    path = Path(path)
    base = Path(os.path.abspath(path.parent))
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for s in samples:
            w.writerow([_portable_path(s.path, base), s.label])


def _portable_path(p: Path, base: Path) -> str:
    full = Path(os.path.abspath(p))
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


