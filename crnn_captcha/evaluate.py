"""Measure a checkpoint on labelled captchas.

    python -m crnn_captcha.evaluate data/splits/test.csv
    python -m crnn_captcha.evaluate ../shared/data/captcha_v2 --checkpoint runs/base/best.pt --json
    python -m crnn_captcha.evaluate data/splits/test.csv --gallery misreads.png
    python -m crnn_captcha.evaluate data/families/ic62/test.csv --alike 0Oo --alike vV

Prints full-string accuracy with its 95% Wilson interval and the number of images, the accuracy
when case is ignored (where that differs), with ``--alike`` the accuracy when each group of
characters counts as one (characters a captcha draws the same), character accuracy, CER, the most
confused character pairs and every misread image. Only evaluate a model on images it never trained
on or was selected on (for the shipped model: the test split).
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from . import cli
from .data.labels import IMAGE_SUFFIXES, load_samples
from .data.scoring import folding, gallery, report
from .errors import CaptchaWarning, OptionError
from .read.reader import UNSURE
from .files import check_image_out


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.evaluate", __doc__)
    ap.add_argument("data", metavar="MANIFEST_OR_DIR", help="a manifest (CSV path,label; TSV; JSON lines) or a folder of <label>.png files")
    cli.add_reader_options(ap)
    cli.add_label_options(ap)
    ap.add_argument("--gallery", help="write a PNG of the misread images here")
    ap.add_argument("--alike", action="append", type=alike_group, default=[], metavar="CHARS",
                    help="characters to count as one, e.g. 0Oo (repeatable; reported beside the exact accuracy)")
    ap.add_argument("--top", type=cli.non_negative_int, default=10, help="confused pairs to list")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    return ap


def alike_group(text: str) -> str:
    """An --alike value: two or more different characters."""
    if len(set(text)) < 2 or len(set(text)) != len(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not two or more different characters")
    return text


def run(args: argparse.Namespace) -> int:
    folding(args.alike)  # groups that clash are a usage error, before any reading
    if args.gallery:
        check_image_out(args.gallery, "--gallery")
    if Path(args.data).suffix.lower() in IMAGE_SUFFIXES:
        raise OptionError(f"{args.data} is an image; evaluate reads a manifest or a folder of labelled images "
                          "(python -m crnn_captcha.predict reads single images)")
    samples = load_samples(args.data, length=None, skip_invalid=args.skip_invalid, label_from=args.label_from,
                           label_regex=args.label_regex)
    if not samples:
        raise OptionError(f"{args.data}: no labelled images")
    reader = cli.reader_from_args(args)
    chars, count = reader.charset.missing(s.label for s in samples)
    if count:
        warnings.warn(f"{count} of {len(samples)} labels hold character(s) {chars!r} that this model cannot "
                      f"read (its charset is {reader.charset.chars!r}); they count as misreads", CaptchaWarning)
    preds = reader.predict_batch([s.path for s in samples], batch_size=args.batch_size, errors="mark")
    failed = [p for p in preds if not p.ok]
    for p in failed:
        print(f"error: {p.error}", file=sys.stderr)
    result = report(samples, preds, args.alike, args.top, checkpoint=str(reader.checkpoint_path), data=str(args.data),
                    unreadable=len(failed))
    if args.gallery:
        gallery(args.gallery, [(m["path"], m["truth"], m["read"]) for m in result["misreads"] if Path(m["path"]).exists()],
                frames=reader.preprocess.frames)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result, args.gallery)
    return 1 if failed else 0


def print_report(result: dict, gallery_path: str | None) -> None:
    lo, hi = result["accuracy_ci95"]
    print(f"images          {result['n']}")
    print(f"accuracy        {result['accuracy']:.4f}  (95% CI {lo:.4f}-{hi:.4f}, Wilson)")
    if result["accuracy_ignoring_case"] != result["accuracy"]:
        print(f"ignoring case   {result['accuracy_ignoring_case']:.4f}")
    if "alike" in result:
        print(f"alike as one    {result['accuracy_alike']:.4f}  ({' '.join(result['alike'])})")
    print(f"char accuracy   {result['char_accuracy']:.4f}")
    print(f"CER             {result['cer']:.4f}")
    if result["unsure"]:
        print(f"unsure          {result['unsure']:.4f} of the readings (confidence under {UNSURE:g}), "
              f"{result['unsure_right']:.4f} of them right")
    if result["confusions"]:
        print("confused (truth->read): " + ", ".join(f"{t}->{p} x{n}" for t, p, n in result["confusions"]))
    for m in result["misreads"]:
        print(f"misread  {m['path']}  true {m['truth']}  read {m['read'] or '-'}  conf {m['confidence']:.3f}")
    if gallery_path:
        print(f"gallery of misreads: {gallery_path}")


main = cli.command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
