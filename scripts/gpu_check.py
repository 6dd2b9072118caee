"""Training and pretraining speed on this machine's device, with the GPU's utilisation beside them.

    python scripts/gpu_check.py --out /tmp/gpu_check                       # on a GPU machine
    python scripts/gpu_check.py --out /tmp/gpu_check --n-train 64 --epochs 2 --pretrain-samples 128 --pretrain-val 16 --device cpu

Renders a labelled set of synthetic captchas (160x60, 0-9a-z, 4-6 characters: the shape of the
ImageCaptcha development family, drawn by our own renderer so that no generator or data folder has
to travel), then times two commands as a user runs them:

- ``python -m crnn_captcha.train --train ... --val ...`` (the default recipe, ``--epochs`` of them);
- ``python -m crnn_captcha.pretrain --stages sequence`` (two epochs of ``--pretrain-samples``), at
  each batch size of ``--pretrain-batches`` and each number of ``--pretrain-views`` (each rendered
  batch trained on in that many versions, all but the first changed on the device: its samples/s
  count every version, its renders/s only the captchas drawn).

Then it splits each command's step in two (``--breakdown``): the loader alone (for ``train``
decoding, augmentation, splicing, collation; for ``pretrain`` the renderer drawing fresh captchas;
each in its default number of workers) and the device step alone (one batch moved to the device and
trained on again and again, as ``train`` steps: forward, CTC loss, backward, optimizer), each in
images/s, so that the slower of the two names where the time goes.

For each command it reports training samples/s (epoch 1 left out where there are more: it holds the warm-up
and cuDNN's kernel search) and, where ``nvidia-smi`` is there, the GPU's utilisation sampled every
half second while the command ran (mean and median), as a markdown table and ``OUT/gpu_check.json``.

On a machine without albumentations or editdistance (the device image has torch but not these),
carry their wheels and put them on the path first; see docs/training.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from crnn_captcha import cli


def render_family(folder: Path, n_train: int, n_val: int) -> tuple[Path, Path]:
    from crnn_captcha.synthetic import SynthConfig, SynthRenderer

    renderer = SynthRenderer(SynthConfig(alphabet="0123456789abcdefghijklmnopqrstuvwxyz", min_length=4,
                                         max_length=6, height=(60, 60), aspect=(2.67, 2.67)), seed=0)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    manifests = []
    for name, start, count in (("train", 0, n_train), ("val", n_train, n_val)):
        path = folder / f"{name}.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label"])
            for i in range(start, start + count):
                image, label = renderer.sample(i)
                Image.fromarray(image).save(images / f"{i}.png")
                w.writerow([f"images/{i}.png", label])
        manifests.append(path)
    return manifests[0], manifests[1]


class GpuSampler:
    """``nvidia-smi`` utilisation readings every half second, in the background."""

    def __init__(self, path: Path):
        self.path, self.proc, self.log = path, None, None
        if shutil.which("nvidia-smi"):
            self.log = open(path, "w")
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                          "--format=csv,noheader,nounits", "-lms", "500"],
                                         stdout=self.log, stderr=subprocess.DEVNULL)

    def stop(self) -> dict:
        if self.proc is None:
            return {"gpu_util_mean": None, "gpu_util_median": None, "gpu_memory_mib_max": None}
        self.proc.terminate()
        self.proc.wait()
        self.log.close()
        rows = [line.split(",") for line in self.path.read_text().splitlines()]
        readings = [(float(u), float(m)) for u, m in (r for r in rows if len(r) == 2)
                    if u.strip().isdigit() and m.strip().isdigit()]  # "[N/A]" and cut-off lines are skipped
        util = [u for u, _ in readings]
        memory = [m for _, m in readings]
        return {"gpu_util_mean": statistics.fmean(util) if util else None,
                "gpu_util_median": statistics.median(util) if util else None,
                "gpu_memory_mib_max": max(memory) if memory else None}


def timed(name: str, cmd: list[str], metrics: Path, out: Path) -> dict:
    print(f"$ {' '.join(cmd)}", file=sys.stderr, flush=True)
    sampler = GpuSampler(out / f"{name}_gpu.csv")
    t0 = time.time()
    rc = subprocess.call(cmd)
    result = {"command": name, "rc": rc, "seconds": round(time.time() - t0, 1), **sampler.stop()}
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    epochs = [json.loads(line) for line in lines if line.strip()]
    speeds = [e["train_samples_per_s"] for e in epochs]
    result["samples_per_s"] = statistics.fmean(speeds[1:] or speeds) if speeds else None
    result["epochs"] = len(epochs)
    return result


def breakdown(train: Path, val: Path, device: str, batches: int, sizes: list[int]) -> dict:
    """Images/s of the training loader alone and of the device step alone, as ``train`` builds them;
    the step also at each batch size in ``sizes``."""
    from crnn_captcha.training.runtime import Dist, default_workers
    from crnn_captcha.training import TrainConfig
    from crnn_captcha.training.loaders import build_loaders, build_model, load_data
    from crnn_captcha.training.recipe import resolve

    dist_ = Dist(device)
    cuda = dist_.device.type == "cuda"
    config = TrainConfig(train=str(train), val=str(val))
    train_samples, val_samples = load_data(config)
    config, _ = resolve(config, train_samples, val_samples, cuda)
    model, charset, pre = build_model(config, train_samples, val_samples, None, Path("none"))
    workers = default_workers(cuda, cpu=0, cap=12)
    loader, _ = build_loaders(config, train_samples, val_samples, charset, pre, dist_, workers, False)
    rate = loader_rate(loader, batches)
    rates = step_rates(model, config, loader.dataset, dist_.device, batches, sorted({config.batch_size, *sizes}))
    return {"batch_size": config.batch_size, "workers": workers, "loader_images_per_s": round(rate),
            "step_images_per_s": rates[config.batch_size], "step_images_per_s_by_batch": rates}


def loader_rate(loader, batches: int) -> float:
    """Images/s out of ``loader`` once its workers are started and their first batches taken."""
    it = iter(loader)
    for _ in range(min(5, batches)):
        next(it)
    t0, n = time.perf_counter(), 0
    for _ in range(batches):
        try:
            images = next(it)[0]
        except StopIteration:
            it = iter(loader)
            images = next(it)[0]
        n += images.shape[0]
    return n / (time.perf_counter() - t0)


def step_rates(model, config, dataset, device, batches: int, sizes: list[int]) -> dict[int, int]:
    """Images/s of the training step alone (forward, CTC loss, backward, AdamW, as ``train`` steps),
    one batch of ``dataset`` stepped on again and again, at each batch size."""
    import torch
    from crnn_captcha.data.datasets import collate_ctc
    from crnn_captcha.training.loop import Optimisation, batch_loss

    cuda = device.type == "cuda"
    model.to(device).train()
    optim = Optimisation(model, config, batches, cuda)

    def rate(size: int) -> int:
        images, targets, lengths, _ = collate_ctc([dataset[i % len(dataset)] for i in range(size)])

        def steps(k: int) -> None:
            for _ in range(k):
                optim.step(model, batch_loss(model, images, targets, lengths, device))
            if cuda:
                torch.cuda.synchronize()

        steps(10)  # cuDNN's kernel search and the allocator's first blocks
        t0 = time.perf_counter()
        steps(batches)
        return round(batches * size / (time.perf_counter() - t0))

    return {size: rate(size) for size in sizes}


def pretrain_breakdown(device: str, batches: int, sizes: list[int]) -> dict:
    """The sequence stage's time split as ``breakdown`` splits train's: the renderer alone, in the
    workers ``pretrain`` starts (drawing, resizing, collating fresh synthetic captchas), and its
    device step alone at each batch size."""
    from crnn_captcha.read.charset import Charset
    from crnn_captcha.read.model import CRNNConfig
    from crnn_captcha.training.pretraining import PRE_HEIGHT, PRE_WIDTH, SEQUENCE_INPUT, make_renderer, sequence_model
    from crnn_captcha.training.synthetic_data import FreshSampler, synthetic_loader
    from crnn_captcha.training.runtime import Dist, default_workers
    from crnn_captcha.training import TrainConfig

    dist_ = Dist(device)
    cuda = dist_.device.type == "cuda"
    renderer = make_renderer(0)
    charset = Charset(renderer.config.alphabet)
    workers = default_workers(cuda, cpu=1)
    loader = synthetic_loader(renderer, charset, SEQUENCE_INPUT, 64, FreshSampler(10**7), cuda, workers, seed=0)
    rendered = loader_rate(loader, batches)
    config = TrainConfig(train="synthetic", val="synthetic", height=PRE_HEIGHT, width=PRE_WIDTH, color="rgb",
                         lr=2e-3, epochs=2)  # pretrain's own; a step costs the same at any rate
    model = sequence_model(charset, renderer, CRNNConfig.channels, CRNNConfig.hidden, CRNNConfig.lstm_layers)
    steps = step_rates(model, config, loader.dataset, dist_.device, batches, sorted({64, *sizes}))
    return {"workers": workers, "render_images_per_s": round(rendered), "step_images_per_s_by_batch": steps,
            "views_images_per_s": views_rate(loader.dataset, dist_.device, batches)}


def views_rate(dataset, device, batches: int, size: int = 256, views: int = 3) -> int:
    """Images/s of the device's changed copies alone (``--views``): ``views - 1`` copies of a batch
    of ``size`` made again and again."""
    import torch
    from crnn_captcha.data.datasets import collate_ctc
    from crnn_captcha.training.pretraining import SEQUENCE_INPUT
    from crnn_captcha.training.views import new_views

    images = collate_ctc([dataset[i] for i in range(size)])[0].to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def run(k: int) -> None:
        for _ in range(k):
            new_views(images, views, SEQUENCE_INPUT, gen)
        if device.type == "cuda":
            torch.cuda.synchronize()

    run(3)
    t0 = time.perf_counter()
    run(batches)
    return round(batches * size * (views - 1) / (time.perf_counter() - t0))


def record(results: list[dict], out: Path, name: str, split: dict, step: str, headline: str) -> None:
    """Print a split's headline and its step's rate at each batch size; keep it in the results file."""
    print(f"\n{headline}")
    for size, rate in split["step_images_per_s_by_batch"].items():
        print(f"{step} at batch {size}: {rate:,} images/s")
    results.append({"command": name, "rc": 0, **split})
    (out / "gpu_check.json").write_text(json.dumps(results, indent=2))


def batch_sizes(text: str) -> list[int]:
    """``--step-batches``: positive whole numbers separated by commas."""
    try:
        sizes = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of batch sizes like 128,256") from None
    if any(b < 1 for b in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes must be at least 1")
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/gpu_check", help="folder for the images, runs and results")
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=4, help="training epochs to time")
    ap.add_argument("--pretrain-samples", type=int, default=100_000, help="synthetic captchas per pretraining epoch")
    ap.add_argument("--pretrain-val", type=int, default=500, help="synthetic captchas of the pretraining val set")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--breakdown", type=cli.non_negative_int, default=200, metavar="BATCHES",
                    help="batches to time the loader alone and the device step alone on (0: skip)")
    ap.add_argument("--step-batches", type=batch_sizes, default=[], metavar="B,B",
                    help="also time the device step alone at these batch sizes (e.g. 128,256)")
    ap.add_argument("--pretrain-batches", type=batch_sizes, default=[64], metavar="B,B",
                    help="time pretrain at each of these batch sizes (default: its own, 64)")
    ap.add_argument("--pretrain-views", type=batch_sizes, default=[1], metavar="K,K",
                    help="and with each of these --views (default: 1, the renders as drawn)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    t0 = time.time()
    train, val = render_family(out / "family", args.n_train, args.n_val)
    print(f"rendered {args.n_train + args.n_val} captchas in {time.time() - t0:.0f}s", file=sys.stderr)
    py = [sys.executable, "-m"]
    common = ["--device", args.device, "--no-progress"]
    results = [
        timed("train", [*py, "crnn_captcha.train", "--train", str(train), "--val", str(val), "--out",
                        str(out / "train"), "--epochs", str(args.epochs), *common], out / "train" / "metrics.jsonl", out),
    ]
    for size in args.pretrain_batches:
        for views in args.pretrain_views:
            name = " ".join(["pretrain"] + [f"--batch-size {size}"] * (size != 64) + [f"--views {views}"] * (views != 1))
            folder = out / f"pretrain_b{size}_v{views}"
            result = timed(name, [*py, "crnn_captcha.pretrain", "--stages", "sequence", "--epochs", "2", "--out",
                                  str(folder), "--epoch-samples", str(args.pretrain_samples), "--val-samples",
                                  str(args.pretrain_val), "--batch-size", str(size), "--views", str(views), *common],
                           folder / "sequence" / "metrics.jsonl", out)
            if result["samples_per_s"] is not None:
                result["renders_per_s"] = round(result["samples_per_s"] / views)
            results.append(result)
    print("| command | rc | epochs | samples/s | GPU util mean / median (%) | GPU memory max (MiB) | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        util = "n/a" if r["gpu_util_mean"] is None else f"{r['gpu_util_mean']:.0f} / {r['gpu_util_median']:.0f}"
        speed = "n/a" if r["samples_per_s"] is None else f"{r['samples_per_s']:,.0f}"
        print(f"| {r['command']} | {r['rc']} | {r['epochs']} | {speed} | {util} | {r['gpu_memory_mib_max']} | {r['seconds']} |")
    (out / "gpu_check.json").write_text(json.dumps(results, indent=2))  # kept should the split fail
    if args.breakdown:
        split = breakdown(train, val, args.device, args.breakdown, args.step_batches)
        record(results, out, "breakdown", split, "device step alone",
               f"training step, split (batch {split['batch_size']}, {split['workers']} loader workers): loader alone "
               f"{split['loader_images_per_s']:,} images/s, device step alone {split['step_images_per_s']:,} images/s")
        split = pretrain_breakdown(args.device, args.breakdown, args.pretrain_batches + args.step_batches)
        record(results, out, "pretrain breakdown", split, "pretrain's device step alone",
               f"pretrain's sequence stage, split: the renderer alone in {split['workers']} workers "
               f"{split['render_images_per_s']:,} images/s; the device's changed copies (--views 3, batch 256) "
               f"alone {split['views_images_per_s']:,} images/s")
    return max(r["rc"] for r in results)


if __name__ == "__main__":
    raise SystemExit(main())
