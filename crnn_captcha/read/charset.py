"""The alphabet: characters to class indices and back (CTC itself lives in :mod:`crnn_captcha.read.ctc`).

Index 0 is the CTC blank. Keeping the blank at 0 means the real characters are 1..C-1, so
``torch.nn.CTCLoss(blank=0)`` needs no extra argument and a charset's string maps one-to-one onto the
head's remaining outputs.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from ..errors import LabelError, UnknownCharacterError


class Charset:
    """An ordered set of characters; index 0 is reserved for the CTC blank.

    Args:
        chars: the characters, each once; their order fixes the class indices 1..len(chars).
    """

    def __init__(self, chars: str):
        if not chars:
            raise LabelError("a charset needs at least one character")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise LabelError(f"charset has repeated characters: {''.join(dup)!r}")
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

    def missing(self, labels: Iterable[str]) -> tuple[str, int]:
        """(the characters of ``labels`` this charset lacks, how many labels hold any of them)."""
        chars: dict[str, None] = {}
        count = 0
        for label in labels:
            bad = self.unknown(label)
            if bad:
                count += 1
                chars.update(dict.fromkeys(bad))
        return "".join(chars), count
