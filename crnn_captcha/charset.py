"""The alphabet, label encoding and CTC decoding.

Index 0 is the CTC blank. Keeping the blank at 0 means the real characters are 1..C-1, so
``torch.nn.CTCLoss(blank=0)`` needs no extra argument and a charset's string maps one-to-one onto the
head's remaining outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np


class UnknownCharacterError(ValueError):
    """A label holds a character that the charset does not know."""


@dataclass(frozen=True)
class Decoded:
    """One decoded string with its confidences.

    Attributes:
        text: the decoded string.
        confidence: probability-like score of the whole string in [0, 1] (product of the
            per-character confidences; 1.0 for an empty string only if every frame was blank).
        char_confidences: one value in [0, 1] per character of ``text``.
    """

    text: str
    confidence: float
    char_confidences: tuple[float, ...]


class Charset:
    """An ordered set of characters; index 0 is reserved for the CTC blank.

    Args:
        chars: the characters, each once; their order fixes the class indices 1..len(chars).
    """

    def __init__(self, chars: str):
        if not chars:
            raise ValueError("a charset needs at least one character")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise ValueError(f"charset has repeated characters: {''.join(dup)!r}")
        self.chars = chars
        self._index = {c: i + 1 for i, c in enumerate(chars)}

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> "Charset":
        """The sorted set of characters that occur in ``labels``."""
        return cls("".join(sorted(set("".join(labels)))))

    @property
    def num_classes(self) -> int:
        """Number of model outputs: the characters plus the blank."""
        return len(self.chars) + 1

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Charset) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        return f"Charset({self.chars!r})"

    def __contains__(self, char: str) -> bool:
        return char in self._index

    def unknown(self, text: str) -> list[str]:
        """Characters of ``text`` that are not in the charset, each once, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self._index))

    def encode(self, label: str, source: str | None = None) -> list[int]:
        """Class indices (1-based) of the characters of ``label``.

        Raises:
            UnknownCharacterError: naming the character(s), the label and ``source`` (a file name).
        """
        bad = self.unknown(label)
        if bad:
            where = f" in {source}" if source else ""
            raise UnknownCharacterError(
                f"unknown character(s) {''.join(bad)!r} in label {label!r}{where}; "
                f"the charset is {self.chars!r}"
            )
        return [self._index[c] for c in label]

    def decode_indices(self, indices: Sequence[int]) -> str:
        """Characters for 1-based class indices (no CTC collapsing)."""
        return "".join(self.chars[i - 1] for i in indices if i > 0)

    def char_mask(self, allowed: str | None) -> np.ndarray | None:
        """Boolean mask over the classes that keeps the blank and ``allowed`` characters."""
        if allowed is None:
            return None
        bad = [c for c in dict.fromkeys(allowed) if c not in self._index]
        if bad:
            raise UnknownCharacterError(
                f"allowed characters {''.join(bad)!r} are not in the model's charset {self.chars!r}"
            )
        mask = np.zeros(self.num_classes, dtype=bool)
        mask[0] = True
        for c in allowed:
            mask[self._index[c]] = True
        return mask

    # ----- CTC decoding ------------------------------------------------------------------------
    def decode(
        self,
        log_probs: np.ndarray,
        method: str = "greedy",
        beam_width: int = 10,
        length: int | None = None,
        allowed: str | None = None,
    ) -> Decoded:
        """Decode one sequence of per-frame log-probabilities.

        Args:
            log_probs: array (T, C) of log-softmax outputs, C == ``num_classes``.
            method: "greedy" (best path) or "beam" (CTC prefix beam search).
            beam_width: beams kept by "beam".
            length: if given, the best path that reads exactly this many characters.
            allowed: if given, only these characters may be read.

        Returns:
            a :class:`Decoded` with the text and its confidences.
        """
        lp = np.asarray(log_probs, dtype=np.float64)
        if lp.ndim != 2 or lp.shape[1] != self.num_classes:
            raise ValueError(f"expected log-probs of shape (T, {self.num_classes}), got {lp.shape}")
        mask = self.char_mask(allowed)
        if mask is not None:
            lp = np.where(mask[None, :], lp, -np.inf)
        if length is not None:
            path = _fixed_length_path(lp, length)
            return self._from_path(lp, path)
        if method == "greedy":
            return self._from_path(lp, lp.argmax(axis=1))
        if method == "beam":
            return self._beam(lp, beam_width)
        raise ValueError(f"unknown decoding method {method!r}; use 'greedy' or 'beam'")

    def _from_path(self, lp: np.ndarray, path: np.ndarray) -> Decoded:
        """Collapse a frame path (repeats merged, blanks dropped); a character's confidence is the
        highest frame probability within its run."""
        chars: list[str] = []
        confs: list[float] = []
        prev = 0
        for t, k in enumerate(path):
            k = int(k)
            if k != 0:
                p = float(np.exp(lp[t, k]))
                if k != prev:
                    chars.append(self.chars[k - 1])
                    confs.append(p)
                else:
                    confs[-1] = max(confs[-1], p)
            prev = k
        return Decoded("".join(chars), float(np.prod(confs)) if confs else 0.0, tuple(confs))

    def _beam(self, lp: np.ndarray, beam_width: int) -> Decoded:
        """CTC prefix beam search; per-character confidences come from the best path that
        reads the winning prefix (its frames, scored as in greedy decoding)."""
        # beams: prefix -> (log p ending in blank, log p ending in a character)
        beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -np.inf)}
        T, C = lp.shape
        for t in range(T):
            row = lp[t]
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
        decoded = self._from_path(lp, _fixed_length_path(lp, len(best), target=best))
        return Decoded(self.decode_indices(best), decoded.confidence, decoded.char_confidences)


def _fixed_length_path(
    lp: np.ndarray, length: int, target: Sequence[int] | None = None
) -> np.ndarray:
    """Best frame path (Viterbi) that reads exactly ``length`` characters.

    With ``target`` the characters are fixed too (a forced alignment). State ``(k, c)``: ``k``
    characters read so far, last frame was class ``c`` (0 = blank). A new character starts when the
    class changes to a non-blank or follows a blank, which is why a repeat needs a blank between.
    """
    T, C = lp.shape
    if length < 0:
        raise ValueError("length must be >= 0")
    neg = -np.inf
    # score[k, c]; back[t, k, c] = (previous k, previous c)
    score = np.full((length + 1, C), neg)
    back = np.zeros((T, length + 1, C, 2), dtype=np.int32)
    # a character state (k, c) exists only for k >= 1, and with a target only for its k-th class
    valid = np.zeros((length + 1, C), dtype=bool)
    valid[:, 0] = True
    for k in range(1, length + 1):
        if target is None:
            valid[k, 1:] = True
        else:
            valid[k, int(target[k - 1])] = True
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
    k, c = length, int(np.argmax(score[length]))
    if not np.isfinite(score[k, c]):
        raise ValueError(f"no path reads exactly {length} characters in {T} frames")
    path = np.zeros(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        path[t] = c
        if t > 0:
            k, c = (int(v) for v in back[t, k, c])
    return path


def greedy_texts(best: np.ndarray, charset: Charset) -> list[str]:
    """Greedy CTC decoding of a batch of best-class indices (N, T): merge repeats, drop blanks."""
    best = np.asarray(best)
    keep = best != 0
    keep[:, 1:] &= best[:, 1:] != best[:, :-1]
    return [charset.decode_indices(row[k]) for row, k in zip(best, keep)]
