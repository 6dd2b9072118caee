"""What each of the renderer's styles costs a reader: the same texts drawn plain and with one style
alone (``SynthConfig.style(name)``, same seed and index), each set read, case-folded.

    python scripts/style_costs.py --checkpoint general
    python scripts/style_costs.py --checkpoint runs/pre/pretrained.pt --n 400 --styles centred crowded

A style that costs much more than the others is one the reader has not learnt to read through:
either the pretraining draws it too seldom, or it hides the text (a check on the renderer). Styles
are drawn from a lower-case alphabet with digits, since a style can make a small letter look like
its capital (reading is case-folded, as ``benchmark.py --zero-shot`` counts it).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crnn_captcha.data.scoring import wilson_interval  # noqa: E402
from crnn_captcha.errors import CaptchaError  # noqa: E402
from crnn_captcha.read.reader import CaptchaReader  # noqa: E402
from crnn_captcha.synthetic import STYLES, SynthConfig, SynthRenderer  # noqa: E402

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def accuracy(reader: CaptchaReader, images: list, texts: list[str]) -> float:
    """The share of ``images`` read as their ``texts`` (case-folded)."""
    read = reader.read_batch(images, batch_size=64)
    return sum(r.lower() == t for r, t in zip(read, texts)) / len(texts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="general", help="a shipped model's name or a checkpoint (default: general)")
    ap.add_argument("--n", type=int, default=200, help="captchas per style (default: 200)")
    ap.add_argument("--seed", type=int, default=0, help="renderer seed (default: 0)")
    ap.add_argument("--styles", nargs="+", metavar="NAME", help="these styles only (default: every one)")
    args = ap.parse_args(argv)
    names = args.styles or [s for s in STYLES if s != "plain"]
    unknown = [s for s in names if s not in STYLES]
    if unknown or not 10 <= args.n <= 10_000:
        ap.error(f"unknown style {unknown[0]!r}" if unknown else "--n must lie from 10 to 10,000")
    try:
        reader = CaptchaReader(args.checkpoint, device="cpu", ignore_case=True)
        plain = SynthRenderer(SynthConfig.plain(alphabet=ALPHABET), seed=args.seed)
    except CaptchaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    images, texts = zip(*(plain.sample(i) for i in range(args.n)))
    base = accuracy(reader, list(images), list(texts))
    rows = []
    for name in names:
        styled = SynthRenderer(SynthConfig.style(name, alphabet=ALPHABET), seed=args.seed)
        drawn = [styled.sample(i, text=t)[0] for i, t in enumerate(texts)]
        rows.append((accuracy(reader, drawn, list(texts)), name))
        print(f"  {name}: {rows[-1][0]:.3f}", file=sys.stderr, flush=True)
    lo, hi = wilson_interval(round(base * args.n), args.n)
    print(f"{args.checkpoint}: {args.n} captchas a style, seed {args.seed}; plain reads "
          f"{100 * base:.1f}% ({100 * lo:.1f}-{100 * hi:.1f})\n")
    print("| style | read (95% interval) | cost against plain, points |\n|---|---|---|")
    for acc, name in sorted(rows):
        lo, hi = wilson_interval(round(acc * args.n), args.n)
        print(f"| {name} | {100 * acc:.1f}% ({100 * lo:.1f}-{100 * hi:.1f}) | {100 * (base - acc):+.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
