"""How a reader's accuracy depends on the width it reads text at: each set read with the image drawn
1, 1.25, 1.5 and 2 times wider than its shape before it is fitted to the model's input (the
checkpoint's ``x_scale``), and, per image, the more confident of the readings at the first and last
width. Case-folded full-string accuracy, as ``benchmark.py --zero-shot`` counts it.

    python scripts/read_widths.py --checkpoint general data/families/{ic36,ic62,warped,colour}/test.csv \\
        ../shared/data/real/{thsr_rail,swust_univ,lzu_digits}/all.csv

A model that reads a set better wider draws its characters too narrow for what it learnt: the
frames of its input see parts of two characters at once.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crnn_captcha.data.labels import load_samples  # noqa: E402
from crnn_captcha.errors import CaptchaError  # noqa: E402
from crnn_captcha.read.reader import CaptchaReader  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sets", nargs="+", metavar="MANIFEST", help="labelled images (path,label CSV files)")
    ap.add_argument("--checkpoint", default="general", help="a shipped model's name or a checkpoint (default: general)")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.25, 1.5, 2.0], help="widths to read at")
    ap.add_argument("--limit", type=int, default=0, help="read only the first N images of each set (0: all)")
    args = ap.parse_args(argv)
    if any(not 0.25 <= s <= 4 for s in args.scales) or args.limit < 0:
        ap.error("--scales must each lie from 0.25 to 4, and --limit be 0 or more")
    try:
        reader = CaptchaReader(args.checkpoint, device="cpu")
        sets = [(Path(m).parent.name if Path(m).stem in ("test", "all") else Path(m).stem,
                 load_samples(m, length=None)) for m in args.sets]
    except (CaptchaError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    base, first, last = reader.preprocess, args.scales[0], args.scales[-1]
    print(f"| set | n | {' | '.join(f'x{s:g}' for s in args.scales)} | the surer of x{first:g} and x{last:g} |")
    print("|---|---|" + "---|" * (len(args.scales) + 1))
    for name, samples in sets:
        samples = samples[: args.limit] if args.limit else samples
        if not samples:
            print(f"| {name} | 0 | (no images) |")
            continue
        truth = [s.label.lower() for s in samples]
        preds = {}
        for scale in args.scales:  # the aspect check is off: a wider drawing is what is measured
            reader.preprocess = replace(base, x_scale=base.x_scale * scale, max_aspect_error=0)
            preds[scale] = reader.predict_batch([s.path for s in samples], errors="mark")
        right = {s: sum(p.ok and p.text.lower() == t for p, t in zip(preds[s], truth)) for s in args.scales}
        surer = [max(a, b, key=lambda p: p.confidence if p.ok else -1.0) for a, b in zip(preds[first], preds[last])]
        both = sum(p.ok and p.text.lower() == t for p, t in zip(surer, truth))
        cells = " | ".join(f"{100 * right[s] / len(samples):.1f}%" for s in args.scales)
        print(f"| {name} | {len(samples)} | {cells} | {100 * both / len(samples):.1f}% |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
