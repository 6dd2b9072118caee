"""The optimisation loop every training run goes through: fine-tuning, and both pretraining stages.

:func:`fit` is the library's training call (what ``python -m crnn_captcha.train`` runs)::

    from crnn_captcha.training import TrainConfig, fit
    fit(TrainConfig(train="data/splits/train.csv", val="data/splits/val.csv"), "runs/mine")

:func:`run_epochs` is the loop itself, over a :class:`Task` that says how a batch gives a loss and
how the val set is scored: :class:`CTCTask` for whole captchas, and the glyph stage's task in
:mod:`crnn_captcha.training.pretraining`. What it writes, and which epoch is best, is the run
folder's job (:mod:`crnn_captcha.training.run_folder`).
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.scoring import score, summarize
from ..errors import INTERRUPTED, CaptchaWarning, OptionError, TrainingError
from ..read.charset import Charset
from ..read.ctc import ctc_loss, greedy_texts
from ..read.images import PreprocessConfig
from ..read.model import count_parameters
from .loaders import (
    build_loaders,
    build_model,
    data_state,
    first_plain_epoch,
    load_data,
    plain_loader,
    restore_data_state,
)
from .recipe import TrainConfig, resolve, resumed_config
from .run_folder import Checkpointer, MemoryRun, finished
from .runtime import (
    Dist,
    default_threads,
    default_workers,
    log,
    seed_everything,
    set_rng_state,
)
from .views import batch_seed, check_views, new_views

__all__ = ["fit", "run_epochs", "Task", "CTCTask", "Optimisation"]


def lr_factor(step: int, total: int, flat: float = 0.5, floor: float = 0.02) -> float:
    """1.0 for the first ``flat`` part of training, then a cosine decay down to ``floor``.

    A flat rate first: a CTC model spends its first epochs emitting only blanks, and a warm-up at a
    low rate makes that plateau longer.
    """
    start = flat * total
    if step <= start:
        return 1.0
    progress = min(1.0, (step - start) / max(total - start, 1))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class Optimisation:
    """AdamW, the step schedule and the mixed-precision scaler, saved and restored together."""

    def __init__(self, model: nn.Module, config: TrainConfig, steps_per_epoch: int, cuda: bool):
        # fused on a GPU: the update in one kernel, and a step the scaler skips (an fp16 overflow) still
        # goes through the optimizer, so the scheduler does not warn that it stepped first
        self.fused = True if cuda else None
        self.opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                     fused=self.fused)
        total = config.epochs * max(steps_per_epoch, 1)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda step: lr_factor(step, total))
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda)
        self.cuda = cuda

    def step(self, model: nn.Module, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def state(self) -> dict[str, Any]:
        return {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "scaler": self.scaler.state_dict() if self.cuda else {}}

    def restore(self, ckpt: dict[str, Any]) -> None:
        saved = ckpt["optimizer"]  # fused or not is this device's choice, not the saved run's (and it
        # decides where the loaded step counts go)
        self.opt.load_state_dict({**saved, "param_groups": [{**g, "fused": self.fused} for g in saved["param_groups"]]})
        self.sched.load_state_dict(ckpt["scheduler"])
        if self.cuda and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])


def batch_loss(net: nn.Module, images: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor,
               device: torch.device) -> torch.Tensor:
    """The CTC loss of one training batch: the forward pass in fp16 mixed precision on a GPU."""
    with autocast(device):
        logits = net(images.to(device, non_blocking=True))  # (N, T, C)
    return ctc_loss(logits, targets, lengths)


def autocast(device: torch.device):
    """fp16 mixed precision on a GPU; full precision on the CPU."""
    return torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()


class Task(Protocol):
    """What the loop needs to know of a kind of training: the loss of a batch and the val scores.
    ``charset`` and ``pre`` describe the model in every checkpoint the run writes."""

    charset: Charset
    pre: PreprocessConfig

    def loss(self, net: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        """(mean loss of the batch, images in it)."""

    def validate(self, model: nn.Module, loader: DataLoader | None, device: torch.device, dist_: Dist) -> dict[str, Any]:
        """Scores on the val set (keys become ``val_<key>`` in the epoch's record); {} without one."""


class CTCTask:
    """Whole captchas: CTC loss; val scored by greedy decoding (:func:`validate`)."""

    def __init__(self, charset: Charset, pre: PreprocessConfig):
        self.charset, self.pre = charset, pre

    def loss(self, net: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        images, targets, lengths, _ = batch
        return batch_loss(net, images, targets, lengths, device), images.shape[0]

    def validate(self, model: nn.Module, loader: DataLoader | None, device: torch.device, dist_: Dist) -> dict[str, Any]:
        return validate(model, loader, self.charset, device, dist_)


class ViewsCTCTask(CTCTask):
    """:class:`CTCTask` where each batch is trained on in ``views`` versions, all but the first
    changed on the device (:func:`~.views.new_views`), seeded by the batch's labels and ``seed``."""

    def __init__(self, charset: Charset, pre: PreprocessConfig, views: int, seed: int):
        super().__init__(charset, pre)
        self.views, self.seed = views, seed

    def loss(self, net: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        images, targets, lengths, labels = batch
        gen = torch.Generator(device=device).manual_seed(batch_seed(labels, self.seed))
        with torch.no_grad():
            x = new_views(images.to(device, non_blocking=True), self.views, self.pre, gen)
        k = self.views
        return batch_loss(net, x, targets.repeat(k), lengths.repeat(k), device), x.shape[0]


def ctc_task(charset: Charset, pre: PreprocessConfig, views: int = 1, seed: int = 0) -> CTCTask:
    """The task of whole captchas, in ``views`` versions of each batch where that is more than one."""
    check_views(views)
    return ViewsCTCTask(charset, pre, views, seed) if views > 1 else CTCTask(charset, pre)


def train_one_epoch(net: nn.Module, model: nn.Module, task: Task, loader: DataLoader, optim: Optimisation,
                    device: torch.device, epoch: int, bar_desc: str, show_bar: bool, last: Path | None
                    ) -> tuple[float, int]:
    """One pass over the training batches; returns (summed loss, images seen).

    Raises:
        TrainingError: the loss stopped being finite (names the last good checkpoint).
    """
    net.train()
    loss_sum, seen = torch.zeros((), device=device), 0
    bar = tqdm(loader, desc=bar_desc, leave=False, file=sys.stderr, disable=not show_bar)
    for step, batch in enumerate(bar):
        loss, n = task.loss(net, batch, device)
        if device.type == "cpu" or step % 50 == 0:  # on a GPU, reading the loss waits for it: not every step
            value = float(loss.detach())
            if not math.isfinite(value):
                raise not_finite(value, f"at epoch {epoch}, step {step + 1}", last, optim)
            bar.set_postfix(loss=f"{value:.3f}", lr=f"{optim.lr:.2e}")
        optim.step(model, loss)
        loss_sum += loss.detach() * n
        seen += n
    total = float(loss_sum)
    if not math.isfinite(total):  # on a GPU, where not every step's loss is read
        raise not_finite(total, f"during epoch {epoch}", last, optim)
    return total, seen


def not_finite(value: float, when: str, last: Path | None, optim: Optimisation) -> TrainingError:
    """The error for a loss gone to nan or inf: when, what was kept, what to try."""
    kept = f"the last good checkpoint is {last}" if last and last.exists() else "no checkpoint was written yet"
    return TrainingError(f"loss became {value} {when}; stopping ({kept}). "
                         f"Try a lower --lr (now {optim.opt.defaults['lr']}).")


def validate(model: nn.Module, loader: DataLoader, charset: Charset, device: torch.device, dist_: Dist) -> dict:
    """Greedy-decoded scores over the loader's samples, summed over processes: the mean CTC loss
    (each sample's divided by its label length, as the training loss is), accuracy, character
    accuracy, CER and n."""
    model.eval()
    preds: list[str] = []
    truths: list[str] = []
    loss_sum = 0.0
    with torch.inference_mode():
        for images, targets, lengths, labels in loader:
            logits = model(images.to(device, non_blocking=True)).float()  # (N, T, C)
            losses = ctc_loss(logits, targets, lengths, reduction="none").cpu()
            loss_sum += float((losses / lengths.clamp(min=1)).sum())
            preds += greedy_texts(logits.log_softmax(2).argmax(2).cpu().numpy(), charset)
            truths += labels
    c = score(preds, truths)
    keys = ["n", "correct", "chars", "char_correct", "edits"]
    summed = {k: int(v) for k, v in zip(keys, dist_.sum([float(c[k]) for k in keys]))}
    s = summarize(summed)
    return {"loss": dist_.sum([loss_sum])[0] / max(summed["n"], 1), "accuracy": s["accuracy"],
            "char_accuracy": s["char_accuracy"], "cer": s["cer"], "n": s["n"]}


def epoch_record(epoch: int, train_loss: list[float], val: dict, lr: float, seconds: float) -> dict[str, Any]:
    return {"epoch": epoch, "train_loss": train_loss[0] / max(train_loss[1], 1),
            **{f"val_{k}": v for k, v in val.items()},
            "lr": lr, "epoch_seconds": seconds, "train_samples_per_s": train_loss[1] / max(seconds, 1e-9)}


def log_epoch(rec: dict[str, Any], improved: bool) -> None:
    parts = [f"epoch {rec['epoch']:3d}", f"loss {rec['train_loss']:.4f}"]
    if "val_loss" in rec:
        parts.append(f"val loss {rec['val_loss']:.4f}")
    if "val_accuracy" in rec:
        parts.append(f"val acc {rec['val_accuracy']:.4f} (n={rec['val_n']})")
    if "val_cer" in rec:
        parts += [f"char acc {rec['val_char_accuracy']:.4f}", f"CER {rec['val_cer']:.4f}"]
    parts.append(f"{rec['epoch_seconds']:.1f}s" + ("  *best" if improved else ""))
    log("  ".join(parts))


# ----- a run --------------------------------------------------------------------------------------
def fit(config: TrainConfig | dict[str, Any] | None, out: str | Path = "runs/train", *, resume: bool = False,
        device: str = "auto", workers: int = -1, threads: int = 0, progress: bool = True) -> int:
    """Train ``config`` into the folder ``out``; returns 0, or 130 when interrupted (errors raise
    :class:`TrainingError` and the other library errors).

    Args:
        config: the recipe; with ``resume`` it may be None (the run's saved recipe is used) or a
            dict of settings, and may change only ``epochs`` and ``patience``.
        resume: continue the run in ``out`` from its last.pt.
        device: "auto", "cpu" or "cuda". workers: data loader workers (-1: 0 on the CPU; on a GPU
            all cores but two, shared among torchrun's processes, at most 12 each).
        threads: CPU threads for torch (0: :func:`default_threads`). progress: progress bars.
    """
    dist_ = Dist(device)
    return dist_.run(lambda: _fit(config, out, resume, dist_, workers, threads, progress))


def _fit(config: TrainConfig | dict[str, Any] | None, out: str | Path, resume: bool, dist_: Dist, workers: int,
         threads: int, progress: bool) -> int:
    """:func:`fit` once its processes are joined up."""
    if dist_.device.type == "cpu":
        torch.set_num_threads(threads or default_threads())
    saver = Checkpointer(out, writer=dist_.main)
    resumed = saver.previous(resume)
    try:
        if resumed is not None:
            config = resumed_config(TrainConfig.from_dict(resumed.get("train_args", {})), config)
            why = finished(resumed, config)
            if why:
                log(f"nothing to train: {saver.out} is finished: {why}")
                return 0
        if not isinstance(config, TrainConfig):
            raise OptionError("give a TrainConfig (a dict of settings or None only when resuming)")
        seed_everything(config.seed + dist_.rank)
        train_samples, val_samples = load_data(config)
        saver.data = {"train_samples": len(train_samples), "val_samples": len(val_samples)}
        before = (resumed or {}).get("run_data", {})
        changed = [f"{before[k]:,} {k.split('_')[0]} images, now {n:,}" for k, n in saver.data.items()
                   if k in before and before[k] != n]
        if changed and dist_.main:  # the same manifests, other contents: worth knowing before more epochs
            warnings.warn(f"the run's data changed since it started ({'; '.join(changed)}); it goes on with what "
                          "is there now", CaptchaWarning, stacklevel=3)
        cuda = dist_.device.type == "cuda"
        if resumed is None:
            config, notes = resolve(config, train_samples, val_samples, cuda)
            for note in notes if dist_.main else []:
                log(note)
            config = replace(config, train=str(Path(config.train).resolve()), val=str(Path(config.val).resolve()))
        model, charset, pre = build_model(config, train_samples, val_samples, resumed, saver.last)
        if dist_.main:
            log(f"alphabet ({len(charset)}): {charset.chars}")
            log(f"train {len(train_samples)}  val {len(val_samples)}  device {dist_.device}  processes {dist_.world}  "
                f"parameters {count_parameters(model):,}  frames {model.config.frames}")
        workers = default_workers(cuda, cpu=0, cap=12) if workers < 0 else workers
        loaders = build_loaders(config, train_samples, val_samples, charset, pre, dist_, workers, progress and dist_.main)
        return run_epochs(model, ctc_task(charset, pre, config.views, config.seed + dist_.rank), loaders, config, dist_, saver, resumed, progress)
    finally:
        saver.release()


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def run_left(t_start: float, done: int, left: int) -> str:
    """What the progress bar adds to the epoch's name: the time the run has left, once an epoch is done."""
    if not done:
        return ""
    return f" (run: {duration((time.time() - t_start) / done * left)} left)"


def _resume_loop(resumed: dict[str, Any], optim: Optimisation, loader: DataLoader, dist_: Dist) -> int:
    """Restore a stopped run's optimiser, random and data states; returns the epoch to go on from."""
    optim.restore(resumed)
    if "rng" in resumed and dist_.world == 1:
        set_rng_state(resumed["rng"])
    if resumed.get("data") and dist_.world == 1:
        restore_data_state(loader, resumed["data"])
    return int(resumed["epoch"]) + 1


def run_epochs(model: nn.Module, task: Task, loaders: tuple[DataLoader, DataLoader | None], config: TrainConfig,
               dist_: Dist, saver: Checkpointer | MemoryRun, resumed: dict | None = None, progress: bool = True) -> int:
    """The epochs of a run (``config.epochs``, ``lr``, ``weight_decay``, ``patience`` and
    ``plain_finish``), from the first or from where ``resumed`` stopped; returns 0, or 130 when
    interrupted."""
    train_loader, val_loader = loaders
    model.to(dist_.device)
    net: nn.Module = model
    if dist_.world > 1:
        cuda = dist_.device.type == "cuda"
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dist_.device.index] if cuda else None)
    optim = Optimisation(model, config, len(train_loader), dist_.device.type == "cuda")
    start = 1 if resumed is None else _resume_loop(resumed, optim, train_loader, dist_)
    if resumed is not None and dist_.main:
        log(f"resuming {saver.last} after epoch {start - 1}")
    saver.open(resumed)
    dist_.barrier()
    t_start, epoch = time.time(), start
    plain_from = first_plain_epoch(config)
    try:
        for epoch in range(start, config.epochs + 1):
            if plain_from is not None and epoch == max(start, plain_from):  # the first plain epoch of this run
                train_loader = plain_loader(train_loader)
                if dist_.main:
                    log(f"epochs {epoch}-{config.epochs}: the training images as they are (no augmentation or "
                        "splicing)")
            if hasattr(train_loader.sampler, "set_epoch"):  # DDP's shuffle, or a fresh synthetic stretch
                train_loader.sampler.set_epoch(epoch)
            t0 = time.time()
            loss = train_one_epoch(net, model, task, train_loader, optim, dist_.device, epoch,
                                   f"epoch {epoch}/{config.epochs}{run_left(t_start, epoch - start, config.epochs - epoch + 1)}",
                                   progress and dist_.main, saver.last)
            val = task.validate(model, val_loader, dist_.device, dist_)  # unwrapped: ranks may see unequal batches
            rec = epoch_record(epoch, dist_.sum(list(loss)), val, optim.lr, time.time() - t0)
            improved = saver.record(rec, settled=plain_from is not None and epoch >= plain_from)
            saver.save(model, task.charset, task.pre, config, improved,
                       {"epoch": epoch, "data": data_state(train_loader), **optim.state()})
            if dist_.main:
                log_epoch(rec, improved)
                if epoch == start and epoch < config.epochs:  # the run's length, as soon as a pace is known
                    log(f"the {config.epochs - start + 1} epochs of this run should take about "
                        f"{duration((time.time() - t_start) * (config.epochs - start + 1))} at this pace")
            if config.patience and saver.since_best >= config.patience:
                if dist_.main:
                    log(f"early stop after epoch {epoch}: no better val score for {config.patience} epochs; "
                        f"best.pt holds epoch {saver.best['epoch']}")
                break
    except KeyboardInterrupt:
        if dist_.main:
            saver.interrupted(epoch, time.time() - t_start)
        return INTERRUPTED
    saver.finish(time.time() - t_start)
    return 0
