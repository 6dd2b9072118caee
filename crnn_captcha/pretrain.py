"""Pretrain the reader on synthetic captchas: the start every ``train`` fine-tunes by default.

    python -m crnn_captcha.pretrain --out runs/pretrain                      # glyph, then sequence stage
    python -m crnn_captcha.pretrain --out runs/pretrain --stages sequence    # one stage only
    python -m crnn_captcha.pretrain --out runs/pretrain --resume             # after a stop or a kill
    torchrun --nproc_per_node=4 -m crnn_captcha.pretrain --out runs/pretrain # DDP on GPUs
    python -m crnn_captcha.pretrain --glyphs data/glyphs/train --val-glyphs data/glyphs/val --out runs/glyphs

Two stages, each optional (``--stages``):

- **glyph**: the backbone learns characters one at a time, as a classifier of single glyphs (the
  design's first step). The glyphs are synthetic (:mod:`crnn_captcha.synth`), or a glyph set of
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
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from . import cli
from .augment import Augmenter
from .charset import Charset
from .checkpoint import atomic_save, load_checkpoint, make_checkpoint
from .data import GlyphDataset, collate_ctc
from .errors import OptionError, TrainingError
from .images import PreprocessConfig, resize_image, to_tensor
from .model import CRNN, CRNNConfig, GlyphClassifier
from .runtime import Dist, default_threads, default_workers, log, seed_everything

STAGES = ("glyph", "sequence")
#: The pretrained model's input: colour, and the captcha v2 geometry (a fine-tuned model adapts
#: its first convolution to gray and reads any width, and any height that is a multiple of 32).
PRE_HEIGHT, PRE_WIDTH = 32, 128
SEQUENCE_INPUT = PreprocessConfig(height=PRE_HEIGHT, width=PRE_WIDTH, channels=3, resize="pad")
GLYPH_HEIGHT, GLYPH_WIDTH = 32, 20
VAL_SEED_OFFSET = 1_000_003


# ----- synthetic data ------------------------------------------------------------------------------
class FreshSampler(Sampler[int]):
    """Indices ``epoch * size + rank, ... `` a new stretch every epoch, so an on-the-fly renderer
    draws images never seen before; the stretch depends only on the epoch (resumes see the same)."""

    def __init__(self, size: int, rank: int = 0, world: int = 1):
        self.size, self.rank, self.world, self.epoch = size, rank, world, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        base = (self.epoch - 1) * self.size * self.world
        return iter(range(base + self.rank, base + self.size * self.world, self.world))

    def __len__(self) -> int:
        return self.size


class SynthCaptchas(Dataset):
    """Synthetic captchas as training items ``(image (3, H, W), target, label)``; item ``i`` is the
    renderer's image ``i``. With ``cache`` the items are rendered once (a fixed validation set)."""

    def __init__(self, renderer, charset: Charset, cfg: PreprocessConfig, cache: int = 0):
        self.renderer, self.charset, self.cfg = renderer, charset, cfg
        self.augment = None
        self.cached = [self._pixels(i) for i in range(cache)]

    def _pixels(self, i: int):
        rgb, label = self.renderer.sample(i)
        return resize_image(rgb if self.cfg.color else _gray(rgb), self.cfg, f"synthetic {i}"), label

    def __len__(self) -> int:
        return len(self.cached) or 2**31 - 1

    def __getitem__(self, i: int):
        pixels, label = self.cached[i] if self.cached else self._pixels(i)
        return to_tensor(pixels, self.cfg), torch.tensor(self.charset.encode(label), dtype=torch.long), label


class SynthGlyphs(Dataset):
    """Synthetic single characters ``(image (3, H, W), class)``: the glyph stage's data."""

    def __init__(self, renderer, charset: Charset, cfg: PreprocessConfig, cache: int = 0):
        self.renderer, self.charset, self.cfg = renderer, charset, cfg
        self.cached = [self._item(i) for i in range(cache)]

    def _item(self, i: int):
        rgb, char = self.renderer.glyph(i)
        return to_tensor(resize_image(rgb, self.cfg, f"glyph {i}"), self.cfg), self.charset.encode(char)[0] - 1

    def __len__(self) -> int:
        return len(self.cached) or 2**31 - 1

    def __getitem__(self, i: int):
        return self.cached[i] if self.cached else self._item(i)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"))


def _one_thread_worker(worker_id: int) -> None:
    """A rendering worker keeps to one core: OpenCV would start a thread per core (torch's own
    thread count is already 1 in a loader worker)."""
    import cv2

    cv2.setNumThreads(1)


def worker_options(workers: int) -> dict:
    """DataLoader settings for rendering workers: started once and by spawning, not forking (a
    fork of a process whose OpenMP threads have run can hang in the child)."""
    if not workers:
        return {"num_workers": 0}
    return {"num_workers": workers, "worker_init_fn": _one_thread_worker, "persistent_workers": True,
            "multiprocessing_context": "spawn", "prefetch_factor": 4}


def synthetic_loader(renderer, charset: Charset, pre: PreprocessConfig, batch_size: int, sampler: Sampler,
                     cuda: bool, workers: int, seed: int) -> DataLoader:
    """Batches of fresh synthetic captchas, drawn in ``workers`` processes: the sequence stage's data."""
    return DataLoader(SynthCaptchas(renderer, charset, pre), batch_size=batch_size, sampler=sampler,
                      collate_fn=collate_ctc, pin_memory=cuda, generator=torch.Generator().manual_seed(seed),
                      drop_last=True, **worker_options(workers))


def sequence_model(charset: Charset, renderer, channels, hidden: int, lstm_layers: int) -> CRNN:
    """The CRNN the sequence stage trains, reading colour at :data:`SEQUENCE_INPUT`'s size."""
    return CRNN(CRNNConfig(num_classes=charset.num_classes, height=PRE_HEIGHT, width=PRE_WIDTH, channels=channels,
                           hidden=hidden, lstm_layers=lstm_layers, max_label_length=renderer.config.max_length,
                           in_channels=3, rows=2))


def make_renderer(seed: int):
    from .synth import SynthRenderer  # the renderer is only needed here

    return SynthRenderer(seed=seed)


# ----- the glyph stage -------------------------------------------------------------------------------
def glyph_accuracy(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, int]:
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in loader:
            pred = model(x.to(device)).argmax(1).cpu()
            correct += int((pred == y).sum())
            total += len(y)
    return correct / max(total, 1), total


def glyph_data(args, device: torch.device) -> tuple[Dataset, Dataset | None, Charset, PreprocessConfig, DataLoader]:
    """The glyph stage's data: a user's glyph set (``--glyphs``) or synthetic glyphs."""
    cuda = device.type == "cuda"
    if args.glyphs:
        pre = PreprocessConfig(height=args.height, width=args.width, max_aspect_error=0.0)
        augment = Augmenter(args.aug_strength, strike_line=False, seed=args.seed) if args.aug_strength > 0 else None
        train = GlyphDataset(args.glyphs, pre, augment=augment, subfolder=args.subfolder,
                             skip_invalid=args.skip_invalid, progress=args.progress)
        val = GlyphDataset(args.val_glyphs, pre, charset=train.charset, skip_invalid=True, progress=args.progress) \
            if args.val_glyphs else None
        if val is not None and not len(val):
            raise OptionError(f"--val-glyphs {args.val_glyphs}: no glyph there is one character of the training "
                              f"glyphs' alphabet {train.charset.chars!r}")
        loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, pin_memory=cuda,
                            generator=torch.Generator().manual_seed(args.seed))
        return train, val, train.charset, pre, loader
    renderer = make_renderer(args.seed)
    charset = Charset(renderer.config.alphabet)
    pre = PreprocessConfig(height=GLYPH_HEIGHT, width=GLYPH_WIDTH, max_aspect_error=0.0, channels=3)
    train = SynthGlyphs(renderer, charset, pre)
    val = SynthGlyphs(make_renderer(args.seed + VAL_SEED_OFFSET), charset, pre, cache=2000)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=FreshSampler(args.epoch_samples), pin_memory=cuda,
                        **worker_options(args.workers))
    return train, val, charset, pre, loader


def glyph_stage(args, out: Path, device: torch.device) -> Path:
    """Train the backbone as a glyph classifier (in one process); returns the backbone's path."""
    seed_everything(args.seed)
    _, val, charset, pre, loader = glyph_data(args, device)
    log(f"glyph stage: {len(charset)} classes, device {device}" + (f", val {len(val)}" if val is not None else ""))
    model = GlyphClassifier(len(charset), tuple(args.channels), in_channels=pre.channels).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.glyph_epochs * len(loader))
    val_loader = DataLoader(val, batch_size=512) if val is not None else None
    metrics: dict = {}
    for epoch in range(1, args.glyph_epochs + 1):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        model.train()
        t0, loss_sum, n = time.time(), 0.0, 0
        for x, y in tqdm(loader, desc=f"glyph epoch {epoch}/{args.glyph_epochs}", leave=False, file=sys.stderr,
                         disable=not args.progress or None):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = nn.functional.cross_entropy(model(x), y)
            if not torch.isfinite(loss):
                raise TrainingError(f"glyph loss became {float(loss)} in epoch {epoch}; try a lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(y)
            n += len(y)
        metrics = {"epoch": epoch, "train_loss": loss_sum / n, "epoch_seconds": time.time() - t0}
        if val_loader:
            metrics["val_accuracy"], metrics["val_n"] = glyph_accuracy(model, val_loader, device)
        log("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()))
    path = out / "backbone.pt"
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "resume", "progress", "given")}
    atomic_save(make_checkpoint(model, charset, pre, metrics, settings), path)
    print(f"wrote {path}" + (f"; val glyph accuracy {metrics['val_accuracy']:.4f} (n={metrics['val_n']})" if val_loader else ""))
    return path


# ----- the sequence stage ----------------------------------------------------------------------------
def sequence_stage(args, out: Path, backbone: Path | None, dist_: Dist) -> Path | None:
    """Train the whole CRNN on synthetic captchas with the training loop of :mod:`crnn_captcha.train`,
    from the glyph stage's backbone, the model ``--init`` names, or scratch; returns the path of the
    pretrained model (None when interrupted)."""
    from .train import Checkpointer, TrainConfig, _architecture, _train
    from .transfer import start_from

    size = {"init": str(backbone) if backbone else "scratch", "channels": tuple(args.channels),
            "hidden": args.hidden, "lstm_layers": args.lstm_layers}
    if args.init:  # a further run keeps the size of the model it starts from, as train does; a clash is an error
        given = {name: size[name] if name in args.given else None for name in size}
        size = _architecture(TrainConfig(**{**given, "init": args.init}), [])

    config = TrainConfig(train="synthetic", val="synthetic", height=PRE_HEIGHT, width=PRE_WIDTH, color="rgb",
                         init=size["init"], channels=size["channels"],
                         hidden=size["hidden"], lstm_layers=size["lstm_layers"], epochs=args.epochs,
                         epoch_samples=args.epoch_samples, batch_size=args.batch_size, lr=args.lr,
                         patience=0, seed=args.seed, aug_strength=0.0, plain_finish=0.0)
    saver = Checkpointer(out / "sequence", writer=dist_.main)
    resumed = saver.previous(args.resume)
    if resumed is not None:  # the run's own settings (size of batch and epoch, seed); only --epochs may change
        config = resumed_settings(resumed, config, args.given)
    check_epoch(config.epoch_samples, config.batch_size, dist_.world)
    seed_everything(config.seed + dist_.rank)
    renderer = make_renderer(config.seed)
    charset = Charset(renderer.config.alphabet)
    pre = SEQUENCE_INPUT
    model = sequence_model(charset, renderer, config.channels, config.hidden, config.lstm_layers)
    if resumed is not None:
        model.load_state_dict(resumed["state_dict"])
    else:
        for note in start_from(model, charset, config.init):
            if dist_.main:
                log(note)
    cuda = dist_.device.type == "cuda"
    train = synthetic_loader(renderer, charset, pre, config.batch_size,
                             FreshSampler(config.epoch_samples // dist_.world, dist_.rank, dist_.world), cuda,
                             args.workers, config.seed)
    val_set = SynthCaptchas(make_renderer(config.seed + VAL_SEED_OFFSET), charset, pre, cache=args.val_samples)
    val = DataLoader(torch.utils.data.Subset(val_set, list(range(dist_.rank, len(val_set), dist_.world))),
                     batch_size=256, collate_fn=collate_ctc)
    if dist_.main:
        log(f"sequence stage: {len(charset)} characters, {config.epochs} epochs of {config.epoch_samples} images, "
            f"val {len(val_set)}, device {dist_.device}, processes {dist_.world}")
    if _train(config, model, charset, pre, (train, val), dist_, saver, resumed, args.progress) != 0:
        return None
    final = out / "pretrained.pt"
    if dist_.main:
        shutil.copyfile(saver.best_path, final)
        print(f"wrote {final} (best val epoch of {saver.best_path})")
    return final


def check_epoch(epoch_samples: int, batch_size: int, processes: int) -> None:
    """An epoch of the sequence stage must give every process at least one whole batch (a part
    batch is dropped, so a smaller epoch would train on nothing)."""
    if epoch_samples // processes < batch_size:
        each = f" for each of {processes} processes" if processes > 1 else ""
        raise OptionError(f"--epoch-samples {epoch_samples}: less than one batch of {batch_size}{each}; "
                          f"give at least {batch_size * processes} or a smaller --batch-size")


def resumed_settings(resumed: dict, config, given: set[str]):
    """The stored run's settings, with --epochs from the command line; any other setting given
    explicitly and different is an error naming both values."""
    from dataclasses import replace

    from .train import TrainConfig

    stored = TrainConfig.from_dict(resumed.get("train_args", {}))
    clashes = [f"--{name.replace('_', '-')} {getattr(config, name)!r} (the run has {getattr(stored, name)!r})"
               for name in ("channels", "hidden", "lstm_layers", "batch_size", "lr", "epoch_samples", "seed")
               if name in given and getattr(config, name) != getattr(stored, name)]
    if clashes:
        raise OptionError(f"--resume keeps the run's saved settings, but these differ: {'; '.join(clashes)}")
    return replace(stored, epochs=config.epochs) if "epochs" in given else stored


# ----- command line ------------------------------------------------------------------------------------
def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.pretrain", __doc__)
    groups = cli.add_training_options(ap, out="runs/pretrain", epochs=40, batch_size=64, lr=2e-3, height=32, width=20,
                                      aug_strength=0.0, channels=CRNNConfig.channels)
    d, m, o, r = groups["data"], groups["model"], groups["optimisation"], groups["run"]
    d.add_argument("--stages", nargs="+", choices=STAGES,
                   help="which stages to run, in order (default: glyph sequence; with --glyphs: glyph)")
    d.add_argument("--glyphs", help="your own glyph set (folder or .tar.gz of <char>_<n>.png) instead of synthetic glyphs")
    d.add_argument("--val-glyphs", help="held-out glyphs of your own to report accuracy on")
    d.add_argument("--subfolder", help="only files below this folder of --glyphs")
    d.add_argument("--epoch-samples", type=cli.positive_int, default=20_000,
                   help="synthetic images drawn per epoch (a new set each epoch)")
    d.add_argument("--val-samples", type=cli.positive_int, default=2000, help="synthetic images of the fixed val set")
    m.add_argument("--hidden", type=cli.positive_int, default=CRNNConfig.hidden, help="LSTM units per direction")
    m.add_argument("--lstm-layers", type=cli.positive_int, default=CRNNConfig.lstm_layers, help="stacked BiLSTM layers")
    o.add_argument("--glyph-epochs", type=cli.positive_int, default=3, help="epochs of the glyph stage")
    m.add_argument("--init", metavar="pretrained|scratch|PATH",
                   help="start the sequence stage from this model (e.g. the shipped start, to pretrain it "
                        "further), or from scratch, instead of a glyph stage; implies --stages sequence")
    r.add_argument("--resume", action="store_true", help="continue the sequence stage in OUT/sequence")
    r.add_argument("--workers", type=cli.non_negative_int,
                   help="processes rendering images (default: 1 on the CPU; on a GPU all cores but two, shared "
                        "among torchrun's processes: each renders about 1,000 captchas/s)")
    r.add_argument("--threads", type=cli.non_negative_int, default=0,
                   help="CPU threads for torch (0: half the cores, at most 4)")
    r.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return ap


def check_paths(args) -> None:
    """Every path the run needs, checked before the long loads."""
    for option, value in (("--glyphs", args.glyphs), ("--val-glyphs", args.val_glyphs)):
        if value and not Path(value).exists():
            raise OptionError(f"{option} {value}: no such folder or archive")
    if args.init and args.init not in ("pretrained", "scratch") and not Path(args.init).exists():
        raise OptionError(f"--init {args.init}: no such checkpoint")
    out = cli.check_out_folder(args.out)
    if args.height % 16:
        raise OptionError(f"--height {args.height}: the backbone needs a multiple of 16 (e.g. 32)")
    if args.resume and not (out / "sequence" / "last.pt").exists():
        raise OptionError(f"--resume: {out / 'sequence' / 'last.pt'} does not exist; start without --resume")


def run(args) -> int:
    stages = args.stages or (["glyph"] if args.glyphs else ["sequence"] if args.init else list(STAGES))
    if args.glyphs and "glyph" not in stages:
        raise OptionError("--glyphs feeds the glyph stage, but --stages leaves it out")
    if args.init and stages != ["sequence"]:
        raise OptionError(f"--init {args.init} starts the sequence stage; it cannot follow a glyph stage "
                          "(give --stages sequence, or leave --init out)")
    check_paths(args)
    dist_ = Dist(args.device)
    return dist_.run(lambda: _run(args, stages, Path(args.out), dist_))


def _run(args, stages: list[str], out: Path, dist_: Dist) -> int:
    """:func:`run` once its processes are joined up: the stages in order."""
    if dist_.device.type == "cpu":
        torch.set_num_threads(args.threads or default_threads())
    if args.workers is None:
        args.workers = default_workers(dist_.device.type == "cuda", cpu=1)
    backbone = out / "backbone.pt" if "glyph" in stages else None
    if "sequence" in stages and not args.resume:  # before the glyph stage's work, not after it
        check_epoch(args.epoch_samples, args.batch_size, dist_.world)
    if backbone is not None and not args.resume:
        if dist_.main:  # one process trains the glyph stage; the others wait for its backbone
            out.mkdir(parents=True, exist_ok=True)
            glyph_stage(args, out, dist_.device)
        dist_.barrier()
    elif backbone is not None:
        load_checkpoint(backbone, kind="glyph")
    finished = "sequence" not in stages or sequence_stage(args, out, backbone, dist_) is not None
    return 0 if finished else cli.INTERRUPTED


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    args.given = cli.given_options(parser, argv)
    return cli.run_main(lambda: run(args))

if __name__ == "__main__":
    raise SystemExit(main())
