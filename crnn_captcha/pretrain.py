"""Pretrain the reader on synthetic captchas: the start every ``train`` fine-tunes by default.

    python -m crnn_captcha.pretrain --out runs/pretrain                      # glyph, then sequence stage
    python -m crnn_captcha.pretrain --out runs/pretrain --stages sequence    # one stage only
    python -m crnn_captcha.pretrain --out runs/pretrain --resume             # after a stop or a kill
    torchrun --nproc_per_node=4 -m crnn_captcha.pretrain --out runs/pretrain # DDP on GPUs
    python -m crnn_captcha.pretrain --out runs/wide --init general --sequence-width 192 --x-scale 1.5
    python -m crnn_captcha.pretrain --glyphs data/glyphs/train --val-glyphs data/glyphs/val --out runs/glyphs

Two stages, each optional (``--stages``):

- **glyph**: the backbone learns characters one at a time, as a classifier of single glyphs (the
  design's first step). The glyphs are synthetic (:mod:`crnn_captcha.synthetic`), or a glyph set of
  your own in the Kaggle "CAPTCHA Characters Dataset (118K)" format (``--glyphs``; a folder, class
  folders or a .tar.gz of ``<char>_<n>.png``). Writes ``OUT/backbone.pt`` (kind "glyph"). Do not
  use the Kaggle 118K set itself if you test on captcha v2: it was cut from the captcha v2 images,
  test images included (data/README.md).
- **sequence**: the whole CRNN learns to read synthetic captchas with CTC, starting from the glyph
  stage's backbone when that ran. Writes ``OUT/sequence/`` (best.pt, last.pt, metrics.jsonl,
  curves.png) and ``OUT/pretrained.pt``, the model ``train --init PATH`` starts from (the shipped
  one is ``checkpoints/pretrained.pt``).

The synthetic images are drawn on the fly from a seeded renderer, a fresh set every epoch, so no
folder of images is written and a stopped run resumes on the same images. Public captcha generators
are never used here: they are test families only.

From Python: ``pretrain(PretrainConfig(epochs=10), "runs/pretrain")`` (:mod:`crnn_captcha.training.pretraining`).
"""
from __future__ import annotations

import argparse
from dataclasses import fields

from . import cli

cli.require_training("pretrain")  # before the imports that need it

from .training.pretraining import STAGES, PretrainConfig, pretrain  # noqa: E402

DEFAULT = PretrainConfig()
#: Options that say how to run, not what to train.
RUN_OPTIONS = {"out", "resume", "device", "workers", "threads", "progress"}


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.pretrain", __doc__)
    groups = cli.add_training_options(ap, out="runs/pretrain", epochs=DEFAULT.epochs, batch_size=DEFAULT.batch_size,
                                      lr=DEFAULT.lr, height=DEFAULT.height, width=DEFAULT.width,
                                      aug_strength=DEFAULT.aug_strength, channels=DEFAULT.channels,
                                      epoch_is="--epoch-samples fresh synthetic images (of the sequence stage)")
    d, m, o, r = groups["data"], groups["model"], groups["optimisation"], groups["run"]
    d.add_argument("--stages", nargs="+", choices=STAGES,
                   help="which stages to run, in order (default: glyph sequence; with --glyphs: glyph)")
    d.add_argument("--glyphs", help="your own glyph set (folder or .tar.gz of <char>_<n>.png) instead of synthetic glyphs")
    d.add_argument("--val-glyphs", help="held-out glyphs of your own to report accuracy on")
    d.add_argument("--subfolder", help="only files below this folder of --glyphs")
    d.add_argument("--epoch-samples", type=cli.positive_int, default=DEFAULT.epoch_samples,
                   help="synthetic images drawn per epoch (a new set each epoch)")
    d.add_argument("--views", type=cli.positive_int, default=DEFAULT.views,
                   help=f"train on each rendered batch of the sequence stage in this many versions: as drawn, and "
                        f"changed on the device (warp, colour, blur, noise), for a GPU that the renderer cannot keep "
                        f"busy (default {DEFAULT.views}: as drawn only; at most 8)")
    d.add_argument("--val-samples", type=cli.positive_int, default=DEFAULT.val_samples, help="synthetic images of the fixed val set")
    d.add_argument("--sequence-width", type=cli.positive_int, metavar="PIXELS",
                   help="the sequence stage's input width (default: 4 times --height, 128); wider gives each "
                        "character more of the model's frames, and reading takes longer in proportion")
    d.add_argument("--x-scale", type=cli.width_factor, default=DEFAULT.x_scale,
                   help="draw each synthetic captcha this many times as wide, its text stretched across, before "
                        "padding it to the input; the pretrained model reads every image so (default 1: as drawn; "
                        "1.5 with --sequence-width 192 keeps the typical captcha's share of the input)")
    d.add_argument("--x-spread", type=cli.spread_factor, default=DEFAULT.x_spread, metavar="FACTOR",
                   help="draw each training captcha at --x-scale times a factor from 1/FACTOR to FACTOR, so the model "
                        "learns text of many widths; it still reads at --x-scale (default 1: every image at --x-scale)")
    m.add_argument("--hidden", type=cli.positive_int, default=DEFAULT.hidden, help="LSTM units per direction")
    m.add_argument("--lstm-layers", type=cli.positive_int, default=DEFAULT.lstm_layers, help="stacked BiLSTM layers")
    o.add_argument("--glyph-epochs", type=cli.positive_int, default=DEFAULT.glyph_epochs, help="epochs of the glyph stage")
    m.add_argument("--init", metavar="pretrained|scratch|PATH",
                   help="start the sequence stage from this model (e.g. the shipped start, to pretrain it "
                        "further), or from scratch, instead of a glyph stage; implies --stages sequence")
    r.add_argument("--resume", action="store_true", help="continue the sequence stage in OUT/sequence")
    r.add_argument("--workers", type=cli.non_negative_int,
                   help="processes rendering images (default: 1 on the CPU; on a GPU all cores but two, shared "
                        "among torchrun's processes: each renders about 1,000 captchas/s)")
    r.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return ap


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    settings = {f.name: getattr(args, f.name) for f in fields(PretrainConfig)}
    return PretrainConfig(**{**settings, "stages": tuple(args.stages or ())})


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    given = cli.given_options(parser, argv) - RUN_OPTIONS
    return cli.run_main(lambda: pretrain(config_from_args(args), args.out, resume=args.resume, device=args.device,
                                         workers=args.workers, threads=args.threads, progress=args.progress,
                                         given=given))


if __name__ == "__main__":
    raise SystemExit(main())
