"""Read captcha images from the command line.

    python -m crnn_captcha.predict 226md.png              # prints: 226md
    python -m crnn_captcha.predict a.png b.png            # path<TAB>text<TAB>confidence per line
    python -m crnn_captcha.predict ../shared/data/captcha_v2 --json
    python -m crnn_captcha.predict img.png --checkpoint runs/base/best.pt --beam 10

Exit status: 0 when every image was read, 1 when some failed (one line each on stderr),
2 for usage errors (bad arguments, no images, an unusable checkpoint).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .data import IMAGE_SUFFIXES

USAGE_ERROR = 2


def expand(inputs: list[str]) -> list[str]:
    """Image files, with each folder replaced by its image files (sorted)."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{p}: directory holds no images ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        else:
            out.append(item)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m crnn_captcha.predict", description="Read captcha images.")
    ap.add_argument("images", nargs="+", metavar="IMG_OR_DIR", help="image files or folders of images")
    ap.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--beam", type=int, default=0, metavar="WIDTH", help="beam search with this many beams (default: greedy)")
    ap.add_argument("--length", type=int, help="read exactly this many characters")
    ap.add_argument("--allowed", help="read only these characters")
    ap.add_argument("--json", action="store_true", help="print JSON (a list of objects)")
    args = ap.parse_args(argv)
    if args.batch_size < 1:
        ap.error("--batch-size must be at least 1")

    from .reader import CaptchaReader  # after argument parsing: --help stays instant

    try:
        paths = expand(args.images)
        reader = CaptchaReader(
            args.checkpoint, device=args.device, decoder="beam" if args.beam else "greedy",
            beam_width=args.beam or 10, length=args.length, allowed=args.allowed,
        )
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE_ERROR
    preds = reader.predict_batch(paths, batch_size=args.batch_size, errors="mark")
    failed = [p for p in preds if not p.ok]
    for p in failed:
        print(f"error: {p.error}", file=sys.stderr)
    if args.json:
        rows = [
            {"path": p.source, "text": p.text if p.ok else None, "confidence": p.confidence,
             "char_confidences": list(p.char_confidences), "error": p.error}
            for p in preds
        ]
        print(json.dumps(rows, indent=2))
    elif len(paths) == 1:
        if preds[0].ok:
            print(preds[0].text)
    else:
        for p in preds:
            if p.ok:
                print(f"{p.source}\t{p.text}\t{p.confidence:.4f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
