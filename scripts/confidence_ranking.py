"""How well a model's confidence tells its right readings from its wrong ones, on labelled captchas.

    python scripts/confidence_ranking.py --checkpoint runs/mine/teacher/best.pt --data REST.csv --val VAL.csv

Two measures side by side: the reading's confidence (``Prediction.confidence``: the characters read
and the frames between them) and the product of the characters' confidences alone (what the
confidence was before it counted the frames between characters). For each: the AUROC (the chance
that a right reading is more confident than a wrong one; 0.5 is no better than a coin), and, as
``train --unlabelled`` would take it, the bound measured on ``--val`` and how many readings of
``--data`` it keeps and how many of those are right. ``--lengths-from`` keeps only readings no
shorter and no longer than its labels, as self-training does with the labelled images. Reads only;
writes nothing.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from crnn_captcha import CaptchaReader
from crnn_captcha.data.labels import load_samples
from crnn_captcha.training.self_training import confidence_bound, label_lengths

MEASURES = {"reading": lambda p: p.confidence, "characters": lambda p: float(math.prod(p.char_confidences))}


def auroc(scores: list[float], right: list[bool]) -> float:
    """The chance that a right reading scores above a wrong one (ties count half); nan without both."""
    pos = np.array([s for s, r in zip(scores, right) if r])
    neg = np.array([s for s, r in zip(scores, right) if not r])
    if not len(pos) or not len(neg):
        return float("nan")
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (len(pos) * len(neg)))


def read(reader: CaptchaReader, manifest: str, lengths: range | None) -> tuple[list, list[bool]]:
    samples = load_samples(manifest, length=None)
    preds = reader.predict_batch([s.path for s in samples], errors="mark")
    kept = [(p, p.text == s.label) for p, s in zip(preds, samples)
            if p.ok and (lengths is None or len(p.text) in lengths)]
    return [p for p, _ in kept], [r for _, r in kept]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="labelled captchas to rank (e.g. the images self-training reads)")
    ap.add_argument("--val", help="labelled captchas the bound is measured on (as train --unlabelled does)")
    ap.add_argument("--lengths-from", help="a manifest: keep only readings as long as its labels are")
    args = ap.parse_args(argv)
    reader = CaptchaReader(args.checkpoint)
    lengths = label_lengths(load_samples(args.lengths_from, length=None)) if args.lengths_from else None
    preds, right = read(reader, args.data, lengths)
    val = read(reader, args.val, None) if args.val else None
    print(f"{args.data}: {len(preds)} readings, {sum(right)} right")
    for name, measure in MEASURES.items():
        scores = [measure(p) for p in preds]
        line = f"{name:10s}  AUROC {auroc(scores, right):.3f}"
        if val:
            t = confidence_bound(zip([measure(p) for p in val[0]], val[1]))  # None: no bound, none kept
            kept = [r for s, r in zip(scores, right) if t is not None and s >= t]
            line += ("  no bound: keeps none" if t is None else
                     f"  bound {t:.3f}: keeps {len(kept)}, {sum(kept)} right ({sum(kept) / max(len(kept), 1):.1%})")
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
