"""Pretrain the CRNN's backbone as a single-character classifier on a glyph set.

    python scripts/make_glyphs.py --split data/splits/train.csv --out data/glyphs/train
    python scripts/make_glyphs.py --split data/splits/val.csv --out data/glyphs/val --copies 0
    python -m crnn_captcha.pretrain --glyphs data/glyphs/train --val-glyphs data/glyphs/val --out runs/glyphs
    python -m crnn_captcha.train --splits data/splits --pretrained-backbone runs/glyphs/backbone.pt --out runs/pre

Reads glyphs in the Kaggle 118K format (``<char>_<n>.png``; a folder, class folders or a .tar.gz).
Do not pretrain on the Kaggle 118K set itself if you test on captcha v2: it was cut from the captcha
v2 images, test images included (data/README.md). Writes ``backbone.pt`` (kind "glyph").

Glyphs are resized to the height the CRNN reads (32) and a width that keeps a character at the same
scale as inside a 200x50 captcha resized to 128x32 (about 20 px), so the backbone's filters see
characters at the size they will meet later.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import cli
from .augment import Augmenter
from .charset import Charset
from .checkpoint import atomic_save, make_checkpoint
from .data import GlyphDataset
from .errors import OptionError, TrainingError
from .images import PreprocessConfig
from .model import CRNNConfig, GlyphClassifier
from .runtime import log, pick_device, seed_everything


def accuracy(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, int]:
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in loader:
            pred = model(x.to(device)).argmax(1).cpu()
            correct += int((pred == y).sum())
            total += len(y)
    return correct / max(total, 1), total


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.pretrain", __doc__)
    groups = cli.add_training_options(ap, out="runs/glyphs", epochs=3, batch_size=128, lr=2e-3, height=32, width=20,
                                      aug_strength=0.0, channels=CRNNConfig.channels)
    d = groups["data"]
    d.add_argument("--glyphs", required=True, help="glyph folder or .tar.gz (<char>_<n>.png)")
    d.add_argument("--val-glyphs", help="held-out glyphs to report accuracy on (e.g. cut from the val split)")
    d.add_argument("--subfolder", help="only files below this folder of --glyphs")
    return ap


def check_paths(args) -> None:
    """Every path the run needs, checked before the long loads."""
    for option, value in (("--glyphs", args.glyphs), ("--val-glyphs", args.val_glyphs)):
        if value and not Path(value).exists():
            raise OptionError(f"{option} {value}: no such folder or archive")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {out} is a file, not a folder")
    if args.height % 16:
        raise OptionError(f"--height {args.height}: the backbone needs a multiple of 16 (e.g. 32)")


def run(args) -> int:
    check_paths(args)
    seed_everything(args.seed)
    device = pick_device(args.device)
    pre = PreprocessConfig(height=args.height, width=args.width, max_aspect_error=0.0)
    augment = Augmenter(args.aug_strength, strike_line=False, seed=args.seed) if args.aug_strength > 0 else None
    train_ds = GlyphDataset(args.glyphs, pre, augment=augment, subfolder=args.subfolder, skip_invalid=args.skip_invalid,
                            progress=True)
    charset: Charset = train_ds.charset
    val_ds = GlyphDataset(args.val_glyphs, pre, charset=charset, skip_invalid=True, progress=True) if args.val_glyphs else None
    log(f"glyphs: train {len(train_ds)}" + (f", val {len(val_ds)}" if val_ds else "") + f", {len(charset)} classes, device {device}")
    cuda = device.type == "cuda"
    loader = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, pin_memory=cuda,
                        generator=torch.Generator().manual_seed(args.seed))
    val_loader = DataLoader(val_ds, batch_size=512) if val_ds else None
    model = GlyphClassifier(len(charset), tuple(args.channels)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * len(loader))
    loss_fn = nn.CrossEntropyLoss()
    metrics: dict = {}
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0, loss_sum, n = time.time(), 0.0, 0
        for x, y in tqdm(loader, desc=f"epoch {epoch}/{args.epochs}", leave=False, file=sys.stderr, disable=None):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = loss_fn(model(x), y)
            if not torch.isfinite(loss):
                raise TrainingError(f"loss became {float(loss)} in epoch {epoch}; try a lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(y)
            n += len(y)
        metrics = {"epoch": epoch, "train_loss": loss_sum / n, "epoch_seconds": time.time() - t0}
        if val_loader:
            metrics["val_accuracy"], metrics["val_n"] = accuracy(model, val_loader, device)
        log("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()))
    path = Path(args.out) / "backbone.pt"
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    atomic_save(make_checkpoint(model, charset, pre, metrics, settings), path)
    print(f"wrote {path}" + (f"; val glyph accuracy {metrics['val_accuracy']:.4f} (n={metrics['val_n']})" if val_loader else ""))
    return 0


main = cli.command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
