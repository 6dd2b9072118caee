"""Train the CRNN on whole captchas with CTC loss.

    python scripts/split_data.py --src ../shared/data/captcha_v2 --out data/splits
    python -m crnn_captcha.train --splits data/splits --out runs/base
    python -m crnn_captcha.train --splits data/splits --out runs/base --resume        # after a kill
    python -m crnn_captcha.train --splits data/splits --out runs/pre --pretrained-backbone runs/glyphs/backbone.pt
    torchrun --nproc_per_node=2 -m crnn_captcha.train --splits data/splits --out runs/ddp

The same command trains on CUDA (mixed precision, pinned memory) when a GPU is there and on the CPU
otherwise (``--device`` overrides). Under torchrun it trains with DistributedDataParallel (gloo on
the CPU, nccl on GPUs); rank 0 logs and saves. Writes to ``--out``: ``best.pt`` (best val accuracy),
``last.pt`` (resumable), ``metrics.jsonl`` (one line per epoch) and ``curves.png``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from .augment import Augmenter
from .charset import Charset, greedy_texts
from .checkpoint import CheckpointError, atomic_save, build_crnn, load_checkpoint, make_checkpoint
from .data import CaptchaDataset, LabelError, collate_ctc, load_samples
from .images import ImageError, PreprocessConfig
from .metrics import score, summarize
from .model import CRNN, CRNNConfig, count_parameters
from .plot import line_chart


class TrainingError(RuntimeError):
    """A run that cannot go on (NaN loss, bad resume); the message says what to do."""


# ----- shared helpers (also used by pretrain) --------------------------------------------------
def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("--device cuda was asked for, but no CUDA GPU is available")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Dist:
    """The process group, when started by torchrun; a single process otherwise."""

    def __init__(self, device_name: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = pick_device(device_name, self.local_rank)
        if self.world > 1:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Sum numbers over all processes."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()[1:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


# ----- data ------------------------------------------------------------------------------------
def _manifests(args) -> tuple[Path, Path]:
    if args.splits:
        return Path(args.splits) / "train.csv", Path(args.splits) / "val.csv"
    if not (args.train and args.val):
        raise TrainingError("give --splits DIR (with train.csv and val.csv) or both --train and --val")
    return Path(args.train), Path(args.val)


def _worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    ds = info.dataset.dataset if isinstance(info.dataset, Subset) else info.dataset
    ds.reseed(info.seed % 2**31)  # each worker its own splicing and augmentation stream


def evaluate(model: nn.Module, loader: DataLoader, charset: Charset, device: torch.device, dist_: Dist) -> dict:
    """Greedy-decoded metrics over the loader's samples, summed over processes; also the
    mean CTC loss."""
    model.eval()
    preds: list[str] = []
    truths: list[str] = []
    ctc = nn.CTCLoss(blank=0, zero_infinity=True, reduction="none")
    loss_sum = 0.0
    with torch.inference_mode():
        for images, targets, lengths, labels in loader:
            logits = model(images.to(device, non_blocking=True)).float()  # (N, T, C)
            lp = logits.log_softmax(2)
            t_len = torch.full((lp.shape[0],), lp.shape[1], dtype=torch.long)
            # per sample divided by its label length, as the training loss ("mean") does
            losses = ctc(lp.permute(1, 0, 2).cpu(), targets, t_len, lengths)
            loss_sum += float((losses / lengths.clamp(min=1)).sum())
            preds += greedy_texts(lp.argmax(2).cpu().numpy(), charset)
            truths += labels
    c = score(preds, truths)
    keys = ["n", "correct", "chars", "char_correct", "edits"]
    summed = dict(zip(keys, dist_.sum([float(c[k]) for k in keys])))
    summed = {k: int(v) for k, v in summed.items()}
    loss_total = dist_.sum([loss_sum])[0]
    out = summarize(summed)
    out["loss"] = loss_total / max(summed["n"], 1)
    return out


# ----- the run ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Train the CRNN captcha reader with CTC loss.")
    d = ap.add_argument_group("data")
    d.add_argument("--splits", help="folder with train.csv and val.csv (from scripts/split_data.py)")
    d.add_argument("--train", help="train manifest or folder (instead of --splits)")
    d.add_argument("--val", help="val manifest or folder (instead of --splits)")
    d.add_argument("--skip-invalid", action="store_true", help="leave out files whose names are not valid labels")
    d.add_argument("--charset", help="the characters to read (default: those of the train labels)")
    d.add_argument("--height", type=int, default=PreprocessConfig.height)
    d.add_argument("--width", type=int, default=PreprocessConfig.width)
    d.add_argument("--aug-strength", type=float, default=1.0, help="0 turns augmentation off")
    d.add_argument("--no-strike-line", action="store_true", help="no random strike line in augmentation")
    d.add_argument("--mix-prob", type=float, default=0.0,
                   help="share of training items spliced from two captchas at a character boundary (0: off)")
    m = ap.add_argument_group("model")
    m.add_argument("--channels", type=int, nargs=5, default=list(CRNNConfig.channels))
    m.add_argument("--hidden", type=int, default=CRNNConfig.hidden)
    m.add_argument("--lstm-layers", type=int, default=CRNNConfig.lstm_layers)
    m.add_argument("--dropout", type=float, default=CRNNConfig.dropout)
    m.add_argument("--pretrained-backbone", help="glyph-pretrained backbone checkpoint (from crnn_captcha.pretrain)")
    o = ap.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=120)
    o.add_argument("--batch-size", type=int, default=16)
    o.add_argument("--lr", type=float, default=1e-3, help="learning rate, held for the first half, then cosine-decayed")
    o.add_argument("--weight-decay", type=float, default=1e-2)
    o.add_argument("--patience", type=int, default=40, help="stop after this many epochs without a better val score (0: never)")
    o.add_argument("--seed", type=int, default=0)
    r = ap.add_argument_group("run")
    r.add_argument("--out", default="runs/train", help="folder for checkpoints and metrics")
    r.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    r.add_argument("--workers", type=int, default=-1, help="data loader workers (-1: 0 on CPU, 4 on CUDA)")
    r.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    r.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (TrainingError, CheckpointError, LabelError, ImageError, FileNotFoundError) as e:
        log(f"error: {e}")
        return 1


def run(args) -> int:
    dist_ = Dist(args.device)
    device = dist_.device
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed + dist_.rank)
    out = Path(args.out)
    last_path, best_path, metrics_path = out / "last.pt", out / "best.pt", out / "metrics.jsonl"

    resume_ckpt = None
    if args.resume:
        if not last_path.exists():
            raise TrainingError(f"--resume: {last_path} does not exist; start without --resume")
        resume_ckpt = load_checkpoint(last_path)
    elif last_path.exists():  # every process checks, so none is left waiting for the others
        raise TrainingError(f"{out} already holds a run ({last_path}); pass --resume to continue it or choose another --out")

    train_src, val_src = _manifests(args)
    train_samples = load_samples(train_src, length=None, skip_invalid=args.skip_invalid)
    val_samples = load_samples(val_src, length=None, skip_invalid=args.skip_invalid)
    if not train_samples or not val_samples:
        raise TrainingError(f"no training or validation images ({train_src}: {len(train_samples)}, {val_src}: {len(val_samples)})")

    if resume_ckpt is not None:
        model, charset, pre = build_crnn(resume_ckpt, last_path)
        config = model.config
    else:
        charset = Charset(args.charset) if args.charset else Charset.from_labels(s.label for s in train_samples)
        pre = PreprocessConfig(height=args.height, width=args.width)
        max_len = max(len(s.label) for s in train_samples + val_samples)
        config = CRNNConfig(
            num_classes=charset.num_classes, height=args.height, width=args.width, channels=tuple(args.channels),
            hidden=args.hidden, lstm_layers=args.lstm_layers, dropout=args.dropout, max_label_length=max_len,
        )
        model = CRNN(config)
        if args.pretrained_backbone:
            load_backbone(model, args.pretrained_backbone)
    if dist_.main:
        log(f"alphabet ({len(charset)}): {charset.chars}")
        log(f"train {len(train_samples)}  val {len(val_samples)}  device {device}  processes {dist_.world}  "
            f"parameters {count_parameters(model):,}  frames {config.frames}")

    augment = Augmenter(args.aug_strength, not args.no_strike_line, seed=args.seed + dist_.rank) if args.aug_strength > 0 else None
    train_ds = CaptchaDataset(train_samples, charset, pre, augment, mix_prob=args.mix_prob, seed=args.seed + dist_.rank)
    val_ds = CaptchaDataset(val_samples, charset, pre)
    cuda = device.type == "cuda"
    workers = (4 if cuda else 0) if args.workers < 0 else args.workers
    sampler = DistributedSampler(train_ds, dist_.world, dist_.rank, shuffle=True, seed=args.seed) if dist_.world > 1 else None
    gen = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(
        train_ds, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler, drop_last=len(train_ds) > args.batch_size,
        collate_fn=collate_ctc, num_workers=workers, pin_memory=cuda, generator=gen,
        worker_init_fn=_worker_init if workers else None, persistent_workers=workers > 0,
    )
    # Every val sample exactly once: process r takes r, r+W, r+2W, ... (no padding, unlike the
    # default distributed sampler, which would count some samples twice).
    val_part = Subset(val_ds, list(range(dist_.rank, len(val_ds), dist_.world)))
    val_loader = DataLoader(val_part, batch_size=128, collate_fn=collate_ctc, pin_memory=cuda)

    model.to(device)
    net: nn.Module = model
    if dist_.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = max(len(train_loader), 1)
    # A flat rate first: a CTC model spends its first epochs emitting only blanks, and a warm-up at
    # a low rate makes that plateau longer. Then a cosine decay to 2% for the last half.
    total_steps = args.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total_steps))
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)

    start_epoch, history, best = 1, [], {"accuracy": -1.0, "cer": math.inf, "loss": math.inf, "epoch": 0}
    if resume_ckpt is not None:
        opt.load_state_dict(resume_ckpt["optimizer"])
        sched.load_state_dict(resume_ckpt["scheduler"])  # the step count; --epochs may have changed
        if cuda and resume_ckpt.get("scaler"):
            scaler.load_state_dict(resume_ckpt["scaler"])
        start_epoch = int(resume_ckpt["epoch"]) + 1
        history = list(resume_ckpt.get("history", []))
        best = dict(resume_ckpt.get("best", best))
        if "rng" in resume_ckpt and dist_.world == 1:
            set_rng_state(resume_ckpt["rng"])
        if dist_.main:
            log(f"resuming {last_path} after epoch {start_epoch - 1}")
            out.mkdir(parents=True, exist_ok=True)
            # the JSONL is rewritten from the checkpoint, so an epoch that was cut short is not kept
            metrics_path.write_text("".join(json.dumps(h) + "\n" for h in history))
    elif dist_.main:
        out.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text("")
    dist_.barrier()

    train_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    amp = torch.autocast("cuda", dtype=torch.float16) if cuda else nullcontext()
    since_best = int(resume_ckpt.get("since_best", 0)) if resume_ckpt is not None else 0
    t_start = time.time()
    for epoch in range(start_epoch, args.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        t0 = time.time()
        loss_sum, seen = 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{args.epochs}", leave=False, file=sys.stderr,
                   disable=args.no_progress or not dist_.main)
        for step, (images, targets, lengths, _) in enumerate(bar):
            images = images.to(device, non_blocking=True)
            with amp:
                logits = net(images)  # (N, T, C)
            lp = logits.float().log_softmax(2).permute(1, 0, 2)  # (T, N, C) as CTCLoss wants
            t_len = torch.full((images.shape[0],), lp.shape[0], dtype=torch.long)
            loss = ctc(lp, targets.to(device), t_len, lengths)
            if not torch.isfinite(loss):
                kept = f"the last good checkpoint is {last_path}" if last_path.exists() else "no checkpoint was written yet"
                raise TrainingError(
                    f"loss became {float(loss.detach())} at epoch {epoch}, step {step + 1}; stopping ({kept}). "
                    f"Try a lower --lr (now {args.lr})."
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            scaler.step(opt)
            scaler.update()
            sched.step()
            loss_sum += float(loss.detach()) * images.shape[0]
            seen += images.shape[0]
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
        train_loss = dist_.sum([loss_sum, float(seen)])
        val = evaluate(model, val_loader, charset, device, dist_)  # unwrapped: ranks may see unequal batches
        rec = {
            "epoch": epoch,
            "train_loss": train_loss[0] / max(train_loss[1], 1),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_char_accuracy": val["char_accuracy"],
            "val_cer": val["cer"],
            "val_n": val["n"],
            "lr": opt.param_groups[0]["lr"],
            "epoch_seconds": time.time() - t0,
            "train_samples_per_s": train_loss[1] / max(time.time() - t0, 1e-9),
        }
        history.append(rec)
        # best.pt: highest val accuracy, then lowest CER, then lowest val loss (on a small val set
        # many epochs tie at the top, and the later, lower-loss one is the more settled model).
        # Early stopping counts only epochs that raise accuracy or lower CER.
        key = (val["accuracy"], -val["cer"])
        best_key = (best["accuracy"], -best["cer"])
        improved = (key, -val["loss"]) > (best_key, -best.get("loss", math.inf))
        since_best = 0 if key > best_key else since_best + 1
        if improved:
            best = {"accuracy": val["accuracy"], "cer": val["cer"], "loss": val["loss"], "epoch": epoch}
        if dist_.main:
            metrics = {k: v for k, v in rec.items()}
            if improved:
                atomic_save(make_checkpoint(model, charset, pre, metrics, train_args), best_path)
            atomic_save(
                make_checkpoint(
                    model, charset, pre, metrics, train_args,
                    optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                    scaler=scaler.state_dict() if cuda else {}, epoch=epoch, best=best, since_best=since_best,
                    history=history,
                    rng=rng_state(),
                ),
                last_path,
            )
            with metrics_path.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            log(f"epoch {epoch:3d}  loss {rec['train_loss']:.4f}  val loss {val['loss']:.4f}  "
                f"val acc {val['accuracy']:.4f} (n={val['n']})  char acc {val['char_accuracy']:.4f}  "
                f"CER {val['cer']:.4f}  {rec['epoch_seconds']:.1f}s" + ("  *best" if improved else ""))
        if args.patience and since_best >= args.patience:
            if dist_.main:
                log(f"early stop: no better val score for {args.patience} epochs")
            break
    if dist_.main:
        if history:
            line_chart(out / "curves.png", [
                ("CTC loss", {"train": [h["train_loss"] for h in history], "val": [h["val_loss"] for h in history]}),
                ("val accuracy", {"full string": [h["val_accuracy"] for h in history],
                                  "character": [h["val_char_accuracy"] for h in history]}),
            ])
        log(f"best val accuracy {best['accuracy']:.4f} at epoch {best['epoch']}; {time.time() - t_start:.0f}s; "
            f"wrote {best_path}, {last_path}, {metrics_path}")
    dist_.barrier()
    dist_.close()
    return 0


def lr_factor(step: int, total: int, flat: float = 0.5, floor: float = 0.02) -> float:
    """1.0 for the first ``flat`` part of training, then a cosine decay down to ``floor``."""
    start = flat * total
    if step <= start:
        return 1.0
    progress = min(1.0, (step - start) / max(total - start, 1))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def load_backbone(model: CRNN, path: str | Path) -> None:
    """Copy a glyph-pretrained backbone into ``model`` (the classifier head is dropped)."""
    ckpt = load_checkpoint(path, kind="glyph")
    state = {k[len("backbone."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("backbone.")}
    try:
        model.backbone.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path}: the pretrained backbone (channels {ckpt['model_config'].get('channels')}) does not fit "
            f"this model's backbone (channels {list(model.config.channels)}): {str(e).splitlines()[0]}"
        ) from None
    log(f"backbone from {path} (glyph alphabet {ckpt['charset']!r})")


if __name__ == "__main__":
    raise SystemExit(main())
