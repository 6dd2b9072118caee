"""Cut a trained CRNN down to fewer conv channels (crnn_captcha.training.narrow), so it reads faster,
keeping the channels that matter on synthetic captchas; then train it further with pretrain --init.

    python scripts/narrow_model.py --checkpoint general --channels 16 32 64 64 144 --out runs/narrow.pt
    python -m crnn_captcha.pretrain --init runs/narrow.pt --stages sequence --out runs/narrow_tuned ...

The channels are chosen, and the batch norms measured again, on --images synthetic captchas drawn
by the pretraining renderer (a seed apart from every pretraining run's), never on a test set.
"""
from __future__ import annotations

import argparse
import sys

import torch

from crnn_captcha.read.checkpoint import atomic_save, load_model, make_checkpoint
from crnn_captcha.read.images import to_tensor
from crnn_captcha.read.model import count_parameters
from crnn_captcha.read.shipped import model_path
from crnn_captcha.training.narrow import narrow
from crnn_captcha.training.pretraining import make_renderer
from crnn_captcha.training.synthetic_data import SynthCaptchas

#: The renderer's seed for the images the channels are chosen on: no pretraining run uses it.
CHOICE_SEED = 7_000_001


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="the wide model: a shipped model's name or a path")
    ap.add_argument("--channels", type=int, nargs=5, required=True, help="output channels of the five conv blocks")
    ap.add_argument("--images", type=int, default=512, help="synthetic captchas the choice is made on")
    ap.add_argument("--out", required=True, help="where the narrowed checkpoint is written")
    args = ap.parse_args(argv)
    if args.images < 16:
        ap.error("--images: give at least 16")
    try:
        loaded = load_model(model_path(args.checkpoint))
    except Exception as e:  # noqa: BLE001 - a one-line message, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    if loaded.preprocess.channels != 3:
        print(f"error: {args.checkpoint}: a gray model; the synthetic captchas here are drawn in colour", file=sys.stderr)
        return 2
    synth = SynthCaptchas(make_renderer(CHOICE_SEED), loaded.charset, loaded.preprocess, cache=args.images)
    images = torch.stack([to_tensor(pixels, loaded.preprocess) for pixels, _ in synth.cached])
    try:
        small = narrow(loaded.model, tuple(args.channels), images)
    except ValueError as e:
        print(f"error: --channels: {e}", file=sys.stderr)
        return 2
    args_out = {**loaded.checkpoint.get("train_args", {}), "narrowed_from": str(model_path(args.checkpoint)),
                "narrowed_to": list(args.channels)}
    atomic_save(make_checkpoint(small, loaded.charset, loaded.preprocess, {}, args_out), args.out)
    before, after = count_parameters(loaded.model), count_parameters(small)
    print(f"wrote {args.out}: channels {list(loaded.model.config.channels)} -> {args.channels}, "
          f"{before / 1e6:.2f} M -> {after / 1e6:.2f} M weights")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
