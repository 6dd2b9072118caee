"""Read labelled (animated) captchas with one checkpoint under each fusion of frames (and "confident").

    python scripts/fusion_table.py --checkpoint runs/fade_still/best.pt --data data/families/fade/test.csv

The checkpoint's own fusion is what it reads with in use; the others show what each would give, e.g.
for a model trained on still images and given the animated version of its captchas. Prints one row
per fusion: exact-match accuracy, its 95% Wilson interval and n. Writes nothing but temporary copies
of the checkpoint (deleted at the end).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from crnn_captcha import CaptchaReader
from crnn_captcha.data.labels import load_samples
from crnn_captcha.data.scoring import wilson_interval
from crnn_captcha.read.checkpoint import atomic_save, checksums, load_checkpoint
from crnn_captcha.read.frames import FRAME_MODES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="a manifest of labelled captchas (a test split)")
    args = ap.parse_args(argv)
    samples = load_samples(args.data, length=None)
    ckpt = load_checkpoint(args.checkpoint)
    own = ckpt["preprocess"].get("frames", "first")
    print(f"{args.checkpoint} (stores {own}) on {args.data}")
    with tempfile.TemporaryDirectory() as tmp:
        for how in FRAME_MODES:
            ckpt["preprocess"] = {**ckpt["preprocess"], "frames": how}
            ckpt["checksums"] = checksums(ckpt)
            path = Path(tmp) / f"{how}.pt"
            atomic_save(ckpt, path)
            read = CaptchaReader(path, device="cpu", backend="torch").read_batch([s.path for s in samples],
                                                                                 errors="mark")
            right = sum(text == s.label for text, s in zip(read, samples))
            lo, hi = wilson_interval(right, len(samples))
            print(f"  {how:7s} {right / len(samples):7.2%}  [{lo:.2%}, {hi:.2%}]  n={len(samples)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
