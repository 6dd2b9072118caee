"""A simulated person labelling with `crnn-captcha label`'s engine (not the browser), to measure the loop.

    python scripts/label_sim.py --pool POOL.csv --val VAL.csv --test TEST.csv --out DIR [--budget N] [--json]
    python scripts/label_sim.py --pool data/families/ic36/train.csv --val data/families/ic36/val.csv \\
        --test data/families/ic36/test.csv --out runs/sim_ic36 --budget 250 --every 50

The images of POOL.csv are labelled in the engine's order (the model's least confident proposals
first; ``--order random`` for the baseline of random labels). Their labels are revealed only as the
person would type them: a proposal equal to the true label is accepted (nothing typed), any other is
replaced by the true label (one label typed). Every ``--every`` labels the engine fine-tunes on the
labels so far (and, from the second retraining on, on the last model's confident readings of the
pool's images not labelled yet, unless ``--no-self-train``), validating on VAL.csv, and proposes
anew. Without ``--val`` it labels as the page does with no validation manifest: the retrainings
validate on every tenth label, or, with ``--checks N``, on the answers to the random checks (every
N-th image drawn at random; every tenth label while there are fewer than five checks). After
each retraining one line is printed (JSON with ``--json``): typed labels, accepted proposals, labels
in all, seconds since the start, and the retraining's model's exact-match accuracy on TEST.csv. It
stops after ``--budget`` typed labels (and a last retraining on them), or when the pool is labelled.
Writes only under ``--out``: a folder of links to the pool's images (named by number, so no file name
gives a label away), the manifest, the journal and the retrainings' runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from crnn_captcha.data.labels import load_samples
from crnn_captcha.errors import CaptchaError, one_line
from crnn_captcha.labelling.book import LabelBook, reader_proposals
from crnn_captcha.labelling.loop import Retrainer
from crnn_captcha.read.reader import CaptchaReader


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", required=True, help="manifest of the images to label (their labels stay hidden)")
    ap.add_argument("--val", help="manifest the retrainings validate on (without it, as on the labelling page: "
                                  "every tenth label, or the random checks, validate them)")
    ap.add_argument("--checks", type=int, default=0, help="every N-th image is a random check, as the labelling "
                                                          "page's --checks (default 0: none)")
    ap.add_argument("--test", required=True, help="manifest each retraining's model is measured on")
    ap.add_argument("--out", required=True, type=Path, help="a new folder for everything the run writes")
    ap.add_argument("--budget", type=int, default=250, help="typed labels before stopping (default 250)")
    ap.add_argument("--every", type=int, default=50, help="labels between retrainings (default 50)")
    ap.add_argument("--order", choices=["confidence", "random"], default="confidence")
    ap.add_argument("--start", help="checkpoint that proposes first and is fine-tuned (default: the shipped general reader, "
                                    "as on the labelling page)")
    ap.add_argument("--threads", type=int, help="training threads (train's --threads)")
    ap.add_argument("--epochs", type=int, help="each retraining's epochs (train's --epochs; default: train's own rule)")
    ap.add_argument("--self-train", action=argparse.BooleanOptionalAction, default=True,
                    help="retrainings after the first also learn from the pool's images not labelled yet, as the "
                         "labelling page does by default")
    ap.add_argument("--json", action="store_true", help="one JSON object a line")
    args = ap.parse_args(argv)
    if args.budget < 1 or args.every < 1:
        ap.error("--budget and --every must be at least 1")
    if args.checks < 0:
        ap.error(f"--checks must be 0 (none) or more, got {args.checks}")
    if args.out.exists() and any(args.out.iterdir()):
        ap.error(f"--out {args.out} is not empty")
    return args


def proposals(checkpoint: str | None):
    from crnn_captcha.read.shipped import default_start, model_path

    return reader_proposals(CaptchaReader(checkpoint or model_path(default_start() or "captcha_v2"), device="cpu"))


def accuracy(checkpoint: str, test) -> float:
    read = CaptchaReader(checkpoint, device="cpu").read_batch([s.path for s in test], errors="mark")
    return sum(text == s.label for text, s in zip(read, test)) / len(test)


def train_args(args: argparse.Namespace) -> list[str]:
    return [*(["--threads", str(args.threads)] if args.threads else []), *(["--epochs", str(args.epochs)] if args.epochs
                                                                            else [])]


def link_pool(pool, folder: Path) -> dict[str, str]:
    """Links named 000000.png, ... to the pool's images; returns name -> true label."""
    folder.mkdir(parents=True)
    truth = {}
    for k, s in enumerate(pool):
        name = f"{k:06d}{s.path.suffix.lower()}"
        (folder / name).symlink_to(s.path.resolve())
        truth[name] = s.label
    return truth


def run(args: argparse.Namespace) -> int:
    pool, test = load_samples(args.pool, length=None), load_samples(args.test, length=None)
    truth = link_pool(pool, args.out / "pool")
    book = LabelBook(args.out / "pool", args.out / "labels.csv", proposals(args.start), order=args.order,
                     checks=args.checks)
    loop = Retrainer(book, args.out / "retrainings", args.start, every=0, propose_with=proposals,
                     train_args=train_args(args), val=args.val, unlabelled=args.self_train)
    start, typed, accepted = time.monotonic(), 0, 0

    def report() -> None:
        loop.start_round()
        loop.wait()
        row = {"typed": typed, "accepted": accepted, "labelled": len(book.labels),
               "seconds": round(time.monotonic() - start, 1),
               "test_acc": round(accuracy(loop.model, test), 4) if loop.retrainings and loop.retrainings[-1]["labels"] ==
               len(book.labels) else None, "note": loop.note}
        print(json.dumps(row) if args.json else "  ".join(f"{k} {v}" for k, v in row.items()), flush=True)

    try:
        while typed < args.budget:
            queue = book.queue(1)
            if not queue:
                break
            entry = book.answer(queue[0].name, truth[queue[0].name])
            typed, accepted = typed + (entry["kind"] == "typed"), accepted + (entry["kind"] == "accepted")
            if len(book.labels) % args.every == 0:
                report()
        if len(book.labels) % args.every:
            report()
    finally:
        loop.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except CaptchaError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
