"""Read captcha images from the command line.

    python -m crnn_captcha.predict 226md.png              # prints: 226md
    python -m crnn_captcha.predict a.png b.png            # path<TAB>text<TAB>confidence per line
    python -m crnn_captcha.predict ../shared/data/captcha_v2 --json
    python -m crnn_captcha.predict img.png --checkpoint runs/base/best.pt --decoder beam
    python -m crnn_captcha.predict img.png --model general --widths 1 2   # also read it twice as wide

Exit status: 0 when every image was read, 1 when some failed (one line each on stderr; the others
are still printed), 2 for usage errors (bad arguments, no images, an unusable checkpoint).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import cli
from .data.labels import IMAGE_SUFFIXES, is_hidden
from .errors import OptionError
from .read.reader import UNSURE


def expand(inputs: list[str]) -> tuple[list[str], list[str]]:
    """(image files, problems): each folder replaced by its image files (sorted; hidden files and
    macOS ``._name`` companions left out), and a line for each folder that holds none. A name the
    file system refuses stays, to fail on its own."""
    out: list[str] = []
    problems: list[str] = []
    for item in inputs:
        p = Path(item)
        try:
            folder = p.is_dir()
        except OSError:  # e.g. a name too long: reading it will say so, for this file alone
            folder = False
        if folder:
            # every entry named as an image but a folder: a pipe or a broken link fails with its own line
            found = sorted(str(f) for f in p.iterdir()
                           if not f.is_dir() and f.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(f))
            if not found:
                problems.append(f"{p}: directory holds no images ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        else:
            out.append(item)
    return out, problems


def name_bytes(path: str) -> bytes:
    """A path as the file system has it (its own bytes, whatever their encoding), but with control
    characters escaped (a newline or a tab in a name would break the one line a result gets)."""
    raw = os.fsencode(path)
    if not any(b < 32 or b == 127 for b in raw):
        return raw
    return b"".join(repr(chr(b))[1:-1].encode() if b < 32 or b == 127 else bytes([b]) for b in raw)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.predict", __doc__)
    ap.add_argument("images", nargs="+", metavar="IMG_OR_DIR", help="image files or folders of images")
    cli.add_reader_options(ap)
    ap.add_argument("--json", action="store_true", help="print JSON (a list of objects)")
    return ap


def run(args: argparse.Namespace) -> int:
    paths, problems = expand(args.images)
    if not paths:  # nothing at all to read: the call itself is wrong
        raise OptionError(problems[0] if len(problems) == 1 else f"no images in {', '.join(args.images)}")
    reader = cli.reader_from_args(args)
    preds = reader.predict_batch(paths, batch_size=args.batch_size, errors="mark")
    failed = [p for p in preds if not p.ok]
    for line in problems + [p.error for p in failed]:
        print(f"error: {line}", file=sys.stderr)
    if args.json:  # a name that is not UTF-8 comes out as JSON escapes, which decode back to it
        rows = [
            {"path": path, "text": p.text if p.ok else None, "confidence": p.confidence,
             "char_confidences": list(p.char_confidences), "unsure": p.unsure, "error": p.error}
            for path, p in zip(paths, preds)
        ]
        print(json.dumps(rows, indent=2))
    elif len(paths) == 1 and len(args.images) == 1:
        if preds[0].ok:
            print(preds[0].text)
    else:
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None)  # a caller's text stream (a StringIO) has none
        for path, p in zip(paths, preds):
            if p.ok:
                line = name_bytes(path) + f"\t{p.text}\t{p.confidence:.4f}\n".encode()
                out.write(line) if out is not None else sys.stdout.write(line.decode(errors="surrogateescape"))
        sys.stdout.flush()
    unsure = sum(p.unsure for p in preds)
    if unsure:  # after the readings: a reader of the output that stopped early gets no hint
        print(f"hint: {unsure} of {len(preds)} reading(s) have a confidence under {UNSURE:g}: this model may not "
              "know this kind of captcha; label a few hundred (crnn-captcha label DIR) and train on them",
              file=sys.stderr)
    return 1 if failed or problems else 0


main = cli.command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
