"""CTC in one place: the loss, every decoder, and forced alignment.

The model emits, for each of its T frames, a score per class; class 0 is the CTC blank and classes
1..C-1 are the charset's characters. A *path* is one class per frame; it reads as text by merging
runs of the same class and dropping blanks, so a repeated character needs a blank between its
copies (``g _ g`` reads "gg", ``g g`` reads "g").

    from crnn_captcha.read.ctc import decode, decode_batch, DecodeOptions
    decode(log_probs, charset)                                  # greedy (best path)
    decode(log_probs, charset, decoder="beam", beam_width=10)   # CTC prefix beam search
    decode(log_probs, charset, length=5, allowed="abc")         # exactly 5 of these characters
    force_align(log_probs, charset.encode("226md"))             # frames of each character
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import AllowedCharacterError, OptionError
from .charset import Charset

if TYPE_CHECKING:  # the loss is for training; the decoders need numpy alone
    import torch

DECODERS = ("greedy", "beam")
#: Beam search keeps at most this many prefixes: its cost grows with the width, and wider beams
#: than this find nothing more on captcha-length strings.
MAX_BEAM_WIDTH = 1000


@dataclass(frozen=True)
class Decoded:
    """One decoded string with its confidences.

    Attributes:
        text: the decoded string.
        confidence: probability-like score of the whole string in [0, 1]: the product of the
            per-character confidences and of how sure the frames between them are that they hold
            no character (so a character missed lowers it); 0.0 for an empty string.
        char_confidences: one value in [0, 1] per character of ``text``.
    """

    text: str
    confidence: float
    char_confidences: tuple[float, ...]


@dataclass(frozen=True)
class DecodeOptions:
    """How per-frame scores become text; checked when made, so a bad value fails at once.

    Attributes:
        decoder: "greedy" (the best path) or "beam" (CTC prefix beam search).
        beam_width: prefixes kept by "beam" (1 to :data:`MAX_BEAM_WIDTH`).
        length: if given, read exactly this many characters (the best path of that length).
        allowed: if given, read only these characters (each must be in the model's charset; with
            ``ignore_case``, a letter in either case stands for both).
        ignore_case: read for a site that ignores case: each letter's upper- and lower-case scores
            are summed into the lower case before decoding, and the text is lower case.
    """

    decoder: str = "greedy"
    beam_width: int = 10
    length: int | None = None
    allowed: str | None = None
    ignore_case: bool = False

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise OptionError(f"decoder {self.decoder!r} is unknown; use 'greedy' or 'beam'")
        if isinstance(self.beam_width, bool) or not isinstance(self.beam_width, int) \
                or not 1 <= self.beam_width <= MAX_BEAM_WIDTH:
            raise OptionError(f"beam_width must be a whole number from 1 to {MAX_BEAM_WIDTH}, got {self.beam_width!r}")
        if self.length is not None and (isinstance(self.length, bool) or not isinstance(self.length, int)
                                        or self.length < 1):
            raise OptionError(f"length must be a whole number of at least 1 (or None), got {self.length!r}")
        if self.allowed is not None and (not isinstance(self.allowed, str) or not self.allowed):
            raise OptionError(f"allowed must be a non-empty string of characters (or None), got {self.allowed!r}")
        if not isinstance(self.ignore_case, bool):
            raise OptionError(f"ignore_case must be True or False, got {self.ignore_case!r}")

    def replace(self, **changes: Any) -> "DecodeOptions":
        """A copy with some options changed (checked again); itself when nothing changes.

        Raises:
            TypeError: a name that is not a decoding option (as for a mistyped keyword argument).
            OptionError: a bad value.
        """
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"unknown decoding option {unknown[0]!r}; use decoder, beam_width, length, allowed or "
                            "ignore_case")
        return replace(self, **changes) if changes else self


# ----- loss ------------------------------------------------------------------------------------
def ctc_loss(
    logits: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """CTC loss of model outputs against concatenated targets.

    Args:
        logits: (N, T, C) raw model outputs (any float dtype; the loss is taken in float32).
        targets: (sum of target lengths,) class indices 1..C-1, the labels one after another.
        target_lengths: (N,) length of each label.
        reduction: "mean" (each sample's loss divided by its label length, then averaged over the
            batch), "sum" or "none" (one loss per sample).

    Infinite losses (a label longer than the frames can hold) count as zero instead of poisoning
    the batch.
    """
    import torch

    lp = logits.float().log_softmax(2).permute(1, 0, 2)  # (T, N, C), the layout CTC wants
    frames = torch.full((lp.shape[1],), lp.shape[0], dtype=torch.long)
    return torch.nn.functional.ctc_loss(lp, targets.to(lp.device), frames, target_lengths, blank=0, reduction=reduction,
                      zero_infinity=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis, in float64."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


# ----- paths -----------------------------------------------------------------------------------
def char_runs(path: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The characters a frame path reads: ``(classes, first frames, end frames)``, one entry per
    character (a run of equal non-blank frames); frames ``first[i]:end[i]`` show character i."""
    path = np.asarray(path)
    starts = np.flatnonzero(np.r_[True, path[1:] != path[:-1]])
    ends = np.r_[starts[1:], len(path)]
    keep = path[starts] != 0
    return path[starts][keep], starts[keep], ends[keep]


def gap_factor(lp: np.ndarray, classes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> float:
    """How sure the stretches of blank frames of a path (between, before and after its characters,
    as :func:`char_runs` gives them) are that no character stands there: the product over the
    stretches of the least, over each stretch's frames, of the probability of blank or of the
    character on either side. A character the model half sees but does not read (squeezed between
    its neighbours, faint) shows up here and nowhere else: the characters read can all be sure.
    Plain Python around one gather: a read is about a millisecond, and this stays near 25 us of it."""
    cls, first, end = classes.tolist(), starts.tolist(), ends.tolist()
    frames, cols, weights, lengths = [], [], [], []
    for a, b, left, right in zip([0, *end], [*first, len(lp)], [0, *cls], [*cls, 0]):
        if b <= a:
            continue
        right = 0 if right == left else right  # a repeated character counts once
        lengths.append(b - a)
        for t in range(a, b):
            frames += (t, t, t)
            cols += (0, left, right)  # blank, the character before, the one after (0 with weight 0: none)
            weights += (1.0, 1.0 if left else 0.0, 1.0 if right else 0.0)
    if not frames:
        return 1.0
    mass = (np.exp(lp[frames, cols]) * weights).reshape(-1, 3).sum(axis=1).tolist()
    factor, i = 1.0, 0
    for n in lengths:
        factor *= min(1.0, *mass[i:i + n])
        i += n
    return factor


def read_path(lp: np.ndarray, path: np.ndarray, charset: Charset) -> Decoded:
    """The text of a frame path with its confidences: a character's confidence is the highest
    probability among the frames of its run; the reading's is their product times the path's
    :func:`gap_factor`, so a reading that missed a character is not sure of itself."""
    classes, starts, ends = char_runs(path)
    if len(classes) == 0:
        return Decoded("", 0.0, ())
    frame_lp = lp[np.arange(len(path)), path]
    confs = np.exp([frame_lp[a:b].max() for a, b in zip(starts, ends)])
    whole = float(np.prod(confs) * gap_factor(lp, classes, starts, ends))
    return Decoded(charset.decode_indices(classes), whole, tuple(float(c) for c in confs))


def greedy_texts(best: np.ndarray, charset: Charset) -> list[str]:
    """Texts of a batch of best-class indices (N, T): runs merged, blanks dropped."""
    return [charset.decode_indices(char_runs(row)[0]) for row in np.asarray(best)]


def _valid_states(length: int, classes: int, target: Sequence[int] | None) -> np.ndarray:
    """Which states ``(k, c)`` of :func:`best_path` exist: blank always; a character only for
    k >= 1, and with a target only its k-th class."""
    valid = np.zeros((length + 1, classes), dtype=bool)
    valid[:, 0] = True
    for k in range(1, length + 1):
        if target is None:
            valid[k, 1:] = True
        else:
            valid[k, int(target[k - 1])] = True
    return valid


def _trace_back(score: np.ndarray, back: np.ndarray, length: int) -> np.ndarray:
    """The frame path that ends in the best state with ``length`` characters read."""
    T = back.shape[0]
    k, c = length, int(np.argmax(score[length]))
    if not np.isfinite(score[k, c]):
        raise OptionError(f"no path reads exactly {length} characters in {T} frames")
    path = np.zeros(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        path[t] = c
        if t > 0:
            k, c = (int(v) for v in back[t, k, c])
    return path


def best_path(lp: np.ndarray, length: int, target: Sequence[int] | None = None) -> np.ndarray:
    """Best frame path (Viterbi) that reads exactly ``length`` characters.

    With ``target`` the characters are fixed too (a forced alignment). State ``(k, c)``: ``k``
    characters read so far, last frame was class ``c`` (0 = blank). A new character starts when the
    class changes to a non-blank or follows a blank, which is why a repeat needs a blank between.

    Raises:
        OptionError: no path of T frames reads ``length`` characters.
    """
    T, C = lp.shape
    if length < 0:
        raise OptionError(f"length must be >= 0, got {length}")
    neg = -np.inf
    # score[k, c]; back[t, k, c] = (previous k, previous c)
    score = np.full((length + 1, C), neg)
    back = np.zeros((T, length + 1, C, 2), dtype=np.int32)
    valid = _valid_states(length, C, target)
    cls = np.arange(C)
    score[0, 0] = lp[0, 0]
    if length >= 1:
        score[1, 1:] = np.where(valid[1, 1:], lp[0, 1:], neg)
    for t in range(1, T):
        new = np.full_like(score, neg)
        for k in range(length + 1):
            # blank: from any state with the same k
            j = int(np.argmax(score[k]))
            new[k, 0] = score[k, j] + lp[t, 0]
            back[t, k, 0] = (k, j)
            if k == 0:
                continue
            # a character: the same one continues, or a new one starts from (k-1, c') with
            # c' != c (a repeat must pass through a blank); the best c' != c is the best or the
            # runner-up of the previous row
            prev = score[k - 1]
            order = np.argsort(prev)[::-1]
            first, second = order[0], order[1]
            start_from = np.where(cls == first, second, first)
            start_score = prev[start_from]
            stay = score[k]
            use_start = start_score > stay
            best = np.where(use_start, start_score, stay) + lp[t]
            best[~valid[k]] = neg
            best[0] = new[k, 0]
            new[k, 1:] = best[1:]
            back[t, k, 1:, 0] = np.where(use_start, k - 1, k)[1:]
            back[t, k, 1:, 1] = np.where(use_start, start_from, cls)[1:]
        score = new
    return _trace_back(score, back, length)


def force_align(log_probs: np.ndarray, target: Sequence[int]) -> list[tuple[int, int]]:
    """Where each character of a known label sits: ``(first frame, end frame)`` per character.

    Args:
        log_probs: (T, C) log-probabilities of one image.
        target: the label's class indices (``charset.encode(label)``).
    """
    path = best_path(np.asarray(log_probs, dtype=np.float64), len(target), target=target)
    _, starts, ends = char_runs(path)
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


# ----- decoders --------------------------------------------------------------------------------
def allowed_mask(charset: Charset, allowed: str | None, ignore_case: bool = False) -> np.ndarray | None:
    """Boolean mask over the classes that keeps the blank and the ``allowed`` characters; with
    ``ignore_case``, a letter stands for both its cases (a site that ignores case may draw either).

    Raises:
        AllowedCharacterError: ``allowed`` holds characters the charset lacks (in either case, with
            ``ignore_case``).
    """
    if allowed is None:
        return None
    if ignore_case:
        allowed = "".join(v for c in allowed for v in _cases(c, charset))
    bad = charset.unknown(allowed)
    if bad:
        raise AllowedCharacterError(
            f"allowed characters {''.join(bad)!r} are not in the model's charset {charset.chars!r}"
        )
    mask = np.zeros(charset.num_classes, dtype=bool)
    mask[0] = True
    mask[charset.encode(allowed)] = True
    return mask


def _cases(c: str, charset: Charset) -> list[str]:
    """The character ``c`` in each case the charset holds (``c`` itself where it holds none)."""
    found = [v for v in dict.fromkeys((c, _lower(c), c.upper())) if len(v) == 1 and v in charset]
    return found or [c]


def beam_search(lp: np.ndarray, charset: Charset, beam_width: int) -> Decoded:
    """CTC prefix beam search; per-character confidences come from the best path that reads the
    winning prefix (its frames, scored as in greedy decoding)."""
    # beams: prefix -> (log p ending in blank, log p ending in a character)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -np.inf)}
    for row in lp:
        cands = [c for c in np.argsort(row)[::-1][: beam_width + 1] if np.isfinite(row[c])]
        nxt: dict[tuple[int, ...], list[float]] = {}

        def add(prefix: tuple[int, ...], blank: float, char: float) -> None:
            cur = nxt.setdefault(prefix, [-np.inf, -np.inf])
            cur[0] = np.logaddexp(cur[0], blank)
            cur[1] = np.logaddexp(cur[1], char)

        for prefix, (pb, pc) in beams.items():
            total = np.logaddexp(pb, pc)
            for c in cands:
                p = row[c]
                if c == 0:
                    add(prefix, total + p, -np.inf)
                elif prefix and prefix[-1] == c:
                    add(prefix, -np.inf, pc + p)  # the same character continues
                    add(prefix + (c,), -np.inf, pb + p)  # a new copy after a blank
                else:
                    add(prefix + (c,), -np.inf, total + p)
        ranked = sorted(nxt.items(), key=lambda kv: np.logaddexp(*kv[1]), reverse=True)
        beams = {k: (v[0], v[1]) for k, v in ranked[:beam_width]}
    best = max(beams.items(), key=lambda kv: np.logaddexp(*kv[1]))[0]
    found = read_path(lp, best_path(lp, len(best), target=best), charset)
    return Decoded(charset.decode_indices(best), found.confidence, found.char_confidences)


def _options(options: DecodeOptions | None, overrides: dict) -> DecodeOptions:
    base = options or DecodeOptions()
    return base.replace(**overrides) if overrides else base


def decode_batch(
    log_probs: np.ndarray, charset: Charset, options: DecodeOptions | None = None, **overrides
) -> list[Decoded]:
    """Decode a batch of per-frame log-probabilities (N, T, C).

    Args:
        options: the decoding options (default: greedy); keyword ``overrides`` (``decoder``,
            ``beam_width``, ``length``, ``allowed``) change single fields.

    Raises:
        OptionError: a bad option value, or a length the frames cannot hold.
        AllowedCharacterError: ``allowed`` characters the charset lacks.
    """
    opts = _options(options, overrides)
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 3 or lp.shape[2] != charset.num_classes:
        raise OptionError(f"expected log-probs of shape (N, T, {charset.num_classes}), got {lp.shape}")
    mask = allowed_mask(charset, opts.allowed, opts.ignore_case)
    if opts.ignore_case:  # first: an allowed letter's other case adds its score to it
        lp = fold_case(lp, charset)
    if mask is not None:
        lp = np.where(mask, lp, -np.inf)
    if opts.length is not None:
        out = [read_path(x, best_path(x, opts.length), charset) for x in lp]
    elif opts.decoder == "beam":
        out = [beam_search(x, charset, opts.beam_width) for x in lp]
    else:
        out = [read_path(x, path, charset) for x, path in zip(lp, lp.argmax(axis=2))]
    return [replace(d, text=_lower(d.text)) for d in out] if opts.ignore_case else out


def fold_case(log_probs: np.ndarray, charset: Charset) -> np.ndarray:
    """(..., C) log-probabilities with each upper-case letter's score added into its lower case
    (where the charset has both), the upper case then unreadable."""
    lp = np.array(log_probs, dtype=np.float64)
    for upper in charset.chars:
        lower = _lower(upper)
        if lower != upper and lower in charset:
            u, l = charset.encode(upper)[0], charset.encode(lower)[0]  # class indices: log-prob columns
            lp[..., l] = np.logaddexp(lp[..., l], lp[..., u])
            lp[..., u] = -np.inf
    return lp


def _lower(text: str) -> str:
    """``text`` in lower case, character for character (a character whose lower case is longer stays)."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def decode(log_probs: np.ndarray, charset: Charset, options: DecodeOptions | None = None, **overrides) -> Decoded:
    """Decode one sequence of per-frame log-probabilities (T, C); see :func:`decode_batch`."""
    lp = np.asarray(log_probs)
    if lp.ndim != 2:
        raise OptionError(f"expected log-probs of shape (T, {charset.num_classes}), got {lp.shape}")
    return decode_batch(lp[None], charset, options, **overrides)[0]


def frames_needed(label_length: int) -> int:
    """Frames a label of this length may need: one per character and a blank between two equal
    neighbours ("ggg" -> g _ g _ g), so 2L - 1."""
    return max(2 * label_length - 1, 0)


__all__ = [
    "DECODERS", "MAX_BEAM_WIDTH", "Decoded", "DecodeOptions", "ctc_loss", "log_softmax", "char_runs",
    "read_path", "greedy_texts", "best_path", "force_align", "allowed_mask", "fold_case", "beam_search", "decode_batch",
    "decode", "frames_needed",
]
