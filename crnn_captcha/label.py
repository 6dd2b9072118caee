"""Label a folder of captchas in the browser, with the model's reading of each proposed.

    crnn-captcha label captchas/                         # opens http://127.0.0.1:8765 in a browser
    crnn-captcha label captchas/ --manifest labels.csv --checkpoint runs/mine/best.pt --no-browser

The page shows one captcha large and the next few small, with the model's proposal typed in and
selected, each character shaded by how unsure the model is: Enter saves it (or what you typed over it),
Esc skips for now, Ctrl+M marks the image unreadable, Ctrl+Z takes back the last answer. The least
confident proposals come first (``--order`` for others; ``--checks 5`` makes every fifth image one drawn
at random, whose answers show fairly how well the model reads the rest). Each answer is on disk before
the next image shows: the manifest (``path,label``; default ``DIR/labels.csv``) holds the labelled
images and is ready for ``train --train``; a journal beside it (``labels.csv.log``) holds every answer,
so a crash or a closed tab loses nothing and the same command goes on where it stopped. The images
themselves are only read.

Proposals come from ``--checkpoint``, or the shipped general reader where PyTorch is installed
(the shipped captcha v2 reader otherwise). Needs the serve extra (FastAPI, uvicorn).
"""
from __future__ import annotations

import argparse
import sys
import webbrowser

from . import cli
from .data.labels import load_samples
from .errors import OptionError
from .labelling.book import CHECK_EVERY, ORDERS, LabelBook, reader_proposals
from .labelling.loop import Retrainer
from .read.device import installed
from .serve import listen, port_number
from .service.settings import missing_packages

#: New labels between retrainings, by default. On the railway's captchas every 25 and every 50 typed
#: the same 126 labels to reach 1,000 random labels, every 100 more (docs/results.md, "How often the
#: labelling loop retrains"); 50 needs half the retrainings of 25.
RETRAIN_EVERY = 50


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.label", __doc__)
    ap.add_argument("folder", metavar="DIR", help="the folder of captcha images to label")
    ap.add_argument("--manifest", help="where the labels go (default: DIR/labels.csv)")
    ap.add_argument("--checkpoint", help="the model that proposes labels (default: the shipped general reader, "
                                         "or the captcha v2 reader without PyTorch)")
    ap.add_argument("--order", choices=ORDERS, default="confidence",
                    help="which images come first: the model's least confident proposals, file names, or random")
    ap.add_argument("--seed", type=cli.non_negative_int, default=0, help="for --order random and the draw of the checks")
    ap.add_argument("--retrain-every", type=cli.non_negative_int, default=RETRAIN_EVERY, metavar="N",
                    help=f"fine-tune on the labels so far in the background every N new labels, then propose with "
                         f"the new model (default {RETRAIN_EVERY}; 0: never)")
    ap.add_argument("--self-train", action=argparse.BooleanOptionalAction, default=True,
                    help="retrainings after the first also learn from the images not labelled yet: the last model's "
                         "confident readings of them join the labels (the default; slower retrainings, fewer labels "
                         "to type)")
    ap.add_argument("--val", metavar="MANIFEST",
                    help="labelled captchas of this kind every retraining is checked on (default: the random checks "
                         "where --checks asks for them, else every tenth label); learning from the images not labelled "
                         "yet needs 20 checked ones")
    ap.add_argument("--checks", type=cli.non_negative_int, default=0, metavar="N",
                    help=f"every N-th image of the least-confident-first order is one drawn at random: its answer "
                         f"measures the model fairly and checks the retrainings (e.g. {CHECK_EVERY}; default 0: none, "
                         f"which needed fewer typed labels where measured)")
    ap.add_argument("--work", help="where the retrainings go (default: beside the manifest, MANIFEST.runs)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    ap.add_argument("--port", type=port_number, default=8765, help="port (default 8765)")
    ap.add_argument("--no-browser", action="store_true", help="do not open a browser (print the address only)")
    return ap


def proposer(checkpoint: str | None):
    """(the reader, a ``propose`` for the book) of ``checkpoint``, or of the shipped start."""
    from .read.reader import CaptchaReader
    from .read.shipped import default_start, model_path

    start = default_start()
    if checkpoint is None and installed("torch") and start:
        checkpoint = str(model_path(start))
    reader = CaptchaReader(checkpoint, device="cpu")
    return reader, reader_proposals(reader)


def run(args: argparse.Namespace) -> int:
    missing = missing_packages()
    if missing:
        raise OptionError(f"the labelling page needs {', '.join(missing)}; pip install \"crnn_captcha[serve]\"")
    import uvicorn

    from .labelling.web import create_label_app

    if args.val:  # a bad one fails now, not in the first retraining
        load_samples(args.val, length=None)
    sock = listen(args.host, args.port)  # before the model reads the folder: a port in use fails at once
    try:
        reader, propose = proposer(args.checkpoint)
        print(f"reading {args.folder} with {reader.checkpoint_path.name} to propose labels ...", file=sys.stderr,
              flush=True)
        book = LabelBook(args.folder, args.manifest, propose, order=args.order, seed=args.seed, checks=args.checks)
        figures = book.figures()
        if book.failed:
            print(f"warning: {len(book.failed)} image(s) cannot be read and are left out: "
                  + "; ".join(list(book.failed.values())[:3]), file=sys.stderr)
        host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{host}:{sock.getsockname()[1]}/"
        print(f"labelling {book.folder}: {figures['images']} images, {figures['labelled']} labelled, "
              f"{figures['left']} left; labels go to {book.manifest}; open {url} (Ctrl-C stops)",
              file=sys.stderr, flush=True)
        if not args.no_browser:
            webbrowser.open(url)
        loop = None
        if args.retrain_every and installed("torch"):
            loop = Retrainer(book, args.work or f"{book.manifest}.runs", args.checkpoint, args.retrain_every,
                             lambda model: proposer(model)[1], val=args.val, unlabelled=args.self_train)
        elif args.retrain_every:
            print("warning: no PyTorch, so no retrainings while labelling (pip install \"crnn_captcha[train]\")",
                  file=sys.stderr)
        config = uvicorn.Config(create_label_app(book, loop), log_level="warning", access_log=False)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            if loop is not None:
                loop.close()  # no retraining outlives the page
    finally:
        sock.close()
    return 0


main = cli.command(build_parser, run)


if __name__ == "__main__":
    raise SystemExit(main())
