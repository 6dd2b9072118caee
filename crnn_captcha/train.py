"""Train the CRNN on whole captchas with CTC loss.

    python scripts/split_data.py --src ../shared/data/captcha_v2 --out data/splits
    python -m crnn_captcha.train --splits data/splits --out runs/base
    python -m crnn_captcha.train --train T.csv --val V.csv --out runs/mine     # any captcha family
    python -m crnn_captcha.train --out runs/base --resume                      # after a stop or a kill
    torchrun --nproc_per_node=2 -m crnn_captcha.train --splits data/splits --out runs/ddp

What is not given is chosen from the data and printed with the reason: the input height and width
(the typical aspect ratio, padded rather than squashed), gray or colour, and how an animated
image's frames become one picture, from the training images; the alphabet, from the training labels; the length of training, from the number of
training images (small sets train for many passes, large ones for few). The same command trains on
CUDA (mixed precision, pinned memory) when a GPU is there and on the CPU otherwise. Under torchrun
it trains with DistributedDataParallel (gloo on the CPU, nccl on GPUs); rank 0 logs and saves.

Writes to ``--out``: ``best.pt`` (best val accuracy), ``last.pt`` (resumable; a resumed run keeps
its saved settings, and on the CPU continues exactly as if it had not stopped), ``metrics.jsonl``
(one line per epoch) and ``curves.png``. Ctrl-C stops after saying what was kept.

From Python: :func:`crnn_captcha.training.fit` with a :class:`~crnn_captcha.training.TrainConfig`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import cli
from .errors import OptionError

cli.require_training("train")  # before the imports that need it

from .read.frames import FRAME_MODES  # noqa: E402
from .read.model import CRNNConfig  # noqa: E402
from .training.loop import fit  # noqa: E402
from .training.recipe import TrainConfig  # noqa: E402
from .training.self_training import fit_with_unlabelled  # noqa: E402


# ----- command line ----------------------------------------------------------------------------
def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.train", __doc__)
    groups = cli.add_training_options(ap, out="runs/train", epochs=None, batch_size=None, lr=None, height=None,
                                      width=None, aug_strength=1.0, channels=None,
                                      epoch_is="one pass over the training set, or 512 images where the set is "
                                               "smaller (a small set is passed over several times)")
    d, m, o, r = groups["data"], groups["model"], groups["optimisation"], groups["run"]
    d.add_argument("--splits", help="folder with train.csv and val.csv (from scripts/split_data.py)")
    d.add_argument("--train", help="train manifest (CSV/TSV/JSON lines) or folder (instead of --splits)")
    d.add_argument("--val", help="val manifest or folder (instead of --splits)")
    cli.add_label_options(d, skip_invalid=False)  # --skip-invalid is a training option already
    d.add_argument("--charset", help="the characters to read (default: those of the train labels)")
    d.add_argument("--unlabelled", metavar="DIR",
                   help="a folder (or manifest) of captchas nobody labelled: a first model trained on the labels "
                        "reads them, and its confident readings join the labels for the final model (into "
                        "OUT/teacher, OUT/pseudo.csv, then OUT)")
    d.add_argument("--pseudo-threshold", type=cli.fraction_or_one,
                   help="with --unlabelled: the least confidence a reading needs to be used (default: measured on "
                        "the val set, where the first model read 98%% of its readings above it right)")
    d.add_argument("--teacher", metavar="PATH",
                   help="with --unlabelled: a model that already reads these captchas reads the unlabelled images "
                        "(no first model is trained); the final model starts from it")
    d.add_argument("--max-pseudo", type=cli.positive_int, metavar="N", help="with --unlabelled: use at most N of "
                   "the confident readings, chosen at random (the training time grows with them; default: all)")
    d.add_argument("--color", choices=["auto", "rgb", "gray"], default="auto",
                   help="read colour or gray (auto: colour when gray would lose the text's contrast)")
    d.add_argument("--resize", choices=["pad", "stretch"], default="pad",
                   help="pad keeps each image's aspect ratio; stretch scales width and height apart")
    d.add_argument("--frames", choices=["auto", *FRAME_MODES], default="auto",
                   help="how an animated image's frames (GIF, APNG, WebP) become one picture: first frame; per-pixel "
                        "median (drops noise that moves) or mean; ink (every mark any frame shows); confident (ink and "
                        "median both read, the more confident reading kept); auto: measured on the training images, "
                        "confident for stills")
    d.add_argument("--no-strike-line", action="store_true", help="no random strike line in augmentation")
    d.add_argument("--splice-prob", "--mix-prob", dest="splice_prob", type=cli.fraction_or_one, default=0.5,
                   help="share of training items spliced from two captchas where their characters meet: strings "
                        "the set does not hold, so the model reads characters rather than memorising labels "
                        "(0: off; --mix-prob is its older name)")
    d.add_argument("--plain-finish", type=cli.fraction, default=0.1,
                   help="share of the last epochs trained on the images as they are, without augmentation or "
                        "splicing (0: augment to the end)")
    m.add_argument("--hidden", type=cli.positive_int,
                   help=f"LSTM units per direction (default: the start model's, or {CRNNConfig.hidden})")
    m.add_argument("--lstm-layers", type=cli.positive_int,
                   help=f"stacked BiLSTM layers (default: the start model's, or {CRNNConfig.lstm_layers})")
    m.add_argument("--dropout", type=cli.fraction, default=CRNNConfig.dropout, help="dropout before the head")
    m.add_argument("--init", default="auto", metavar="general|pretrained|scratch|PATH",
                   help="a shipped model (general; pretrained: smaller, a seventh quicker on a CPU), scratch, or a "
                        "checkpoint (a whole model, or a glyph backbone); auto: general when installed")
    m.add_argument("--pretrained-backbone", dest="init", metavar="PATH", help="the same as --init PATH")
    o.add_argument("--weight-decay", type=cli.non_negative_float, default=1e-2, help="AdamW weight decay")
    o.add_argument("--patience", type=cli.non_negative_int, default=0,
                   help="stop after this many epochs without a better val score (default 0: never; the run's length "
                        "comes from the set's size)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt, with its settings")
    r.add_argument("--workers", type=cli.non_negative_int,
                   help="data loader workers (default: 0 on the CPU; on a GPU all cores but two, at most 12: "
                        "each prepares about 1,000-2,000 images/s)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    train, val = args.train, args.val
    if args.splits:
        train, val = str(Path(args.splits) / "train.csv"), str(Path(args.splits) / "val.csv")
    return TrainConfig(
        train=train or "", val=val or "", skip_invalid=args.skip_invalid, label_from=args.label_from,
        label_regex=args.label_regex, charset=args.charset, height=args.height, width=args.width, color=args.color,
        resize=args.resize, frames=None if args.frames == "auto" else args.frames, aug_strength=args.aug_strength, strike_line=not args.no_strike_line,
        splice_prob=args.splice_prob, plain_finish=args.plain_finish, channels=args.channels, hidden=args.hidden,
        lstm_layers=args.lstm_layers, dropout=args.dropout, init=args.init, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, patience=args.patience, seed=args.seed,
    )


def resume_changes(args: argparse.Namespace, given: set[str]) -> dict[str, Any]:
    """On --resume, the training settings the command line gave explicitly."""
    full = config_from_args(args).to_dict()
    field_of = {"splits": ("train", "val"), "no_strike_line": ("strike_line",)}
    names = {name for dest in given for name in field_of.get(dest, (dest,))}
    return {k: full[k] for k in names if k in full}


def run(args: argparse.Namespace) -> int:
    run_options = {"device": args.device, "workers": -1 if args.workers is None else args.workers,
                   "threads": args.threads, "progress": not args.no_progress}
    if args.unlabelled:
        return fit_with_unlabelled(config_from_args(args), args.out, args.unlabelled, args.pseudo_threshold,
                                   teacher=args.teacher, max_pseudo=args.max_pseudo, resume=args.resume, **run_options)
    alone = [name for name in ("pseudo_threshold", "teacher", "max_pseudo") if getattr(args, name) is not None]
    if alone:
        raise OptionError(f"--{alone[0].replace('_', '-')} goes with --unlabelled")
    config = resume_changes(args, args.given) if args.resume else config_from_args(args)
    return fit(config, args.out, resume=args.resume, **run_options)


RUN_OPTIONS = {"out", "resume", "device", "workers", "threads", "no_progress", "unlabelled", "pseudo_threshold", "teacher",
               "max_pseudo"}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    args.given = cli.given_options(parser, argv) - RUN_OPTIONS
    return cli.run_main(lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
