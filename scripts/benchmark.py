"""Benchmark our reader side by side with ddddocr and captcha-whisperer, on the same images.

    python -m pip install -e ".[bench]"        # the peers are optional
    python scripts/benchmark.py --data data/splits/test.csv --threads 2 --json bench.json

Each reader runs in its own fresh process (so peak memory is its own) with the same number of
threads, on the same encoded image bytes held in memory: the timings cover decoding, preprocessing,
the model and decoding of the text. Reported per reader: full-string and character accuracy,
single-image latency (median and p95 over repeated reads after warm-up), throughput at batch 1, 16
and 64 (where the reader takes batches), model load time, peak resident memory and model file size.
captcha-whisperer reads upper case, so its text is compared case-insensitively. Readers that are not
installed are listed as such. Also reports our training throughput (samples/s) on this machine.

Zero-shot: how each reader does on captchas it was never trained on, with no hint of their alphabet,
set by set (exact, and with both sides lower-cased for sites that ignore case), and the mean over sets:

    python scripts/make_family.py --family ic36 --family ic62 --family warped --family colour --train 250
    python scripts/benchmark.py --zero-shot data/families/{ic36,ic62,warped,colour}/test.csv \
        ../shared/data/real/{thsr_rail,swust_univ,lzu_digits}/all.csv --json zs.json      # our general reader
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: crnn_captcha: as installed (ONNX Runtime where an export is beside the checkpoint); _light: the same
#: with PyTorch made unimportable, as after a plain ``pip install crnn_captcha``; _torch: the PyTorch path;
#: _two_widths: each image read as drawn and twice as wide, the surer reading kept (``widths=(1, 2)``).
READERS = ["crnn_captcha", "crnn_captcha_two_widths", "crnn_captcha_light", "crnn_captcha_torch", "ddddocr",
           "ddddocr_ranges", "captcha_whisperer"]


class _NoTorch:
    """A finder that makes PyTorch look uninstalled in this process (the light reader's case)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "albumentations"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


# ----- one reader, inside its own process ------------------------------------------------------
def make_reader(name: str, alphabet: str, threads: int, checkpoint: str | None):
    """(read one bytes -> str, read a batch or None, model file size in bytes)."""
    if name.startswith("crnn_captcha"):
        from crnn_captcha import CaptchaReader

        backend = "torch" if name == "crnn_captcha_torch" else "auto"
        widths = (1, 2) if name == "crnn_captcha_two_widths" else (1,)
        r = CaptchaReader(checkpoint, device="cpu", threads=threads, backend=backend, widths=widths)
        if "torch" in sys.modules:  # for the PyTorch path; ONNX Runtime took ``threads`` above
            sys.modules["torch"].set_num_threads(threads)
        size = r.checkpoint_path.stat().st_size  # config, charset, weights
        if r.backend == "onnx":
            size += r.checkpoint_path.with_suffix(".onnx").stat().st_size  # and the weights ONNX Runtime runs
        print(f"{name} backend: {r.backend}, PyTorch loaded: {'torch' in sys.modules}", file=sys.stderr)
        return r.read, lambda xs: r.read_batch(xs, batch_size=len(xs)), size
    if name.startswith("ddddocr"):
        import ddddocr

        ocr = ddddocr.DdddOcr(show_ad=False)
        if name == "ddddocr_ranges":
            ocr.set_ranges(alphabet)
        pkg = Path(ddddocr.__file__).parent
        size = max((p.stat().st_size for p in pkg.rglob("*.onnx")), default=0)
        return ocr.classification, None, size
    if name == "captcha_whisperer":
        import captcha_whisperer as cw
        from captcha_whisperer.recognizer import preprocess_bytes

        r = cw.CaptchaRecognizer(threads=threads)
        model = Path(cw.default_model_path())
        size = model.stat().st_size + sum(p.stat().st_size for p in model.parent.glob("*.data"))

        def one(b: bytes) -> str:
            return r.recognize_bytes(b)["text"].lower()

        def batch(xs: list[bytes]) -> list[str]:
            return [d["text"].lower() for d in r.recognize_batch([preprocess_bytes(b) for b in xs])]

        return one, batch, size
    raise ValueError(name)


def worker(name: str, data: str, threads: int, repeats: int, checkpoint: str | None) -> dict:
    if name == "crnn_captcha_light":
        sys.meta_path.insert(0, _NoTorch)
    from crnn_captcha.data.labels import load_samples
    from crnn_captcha.data.scoring import score, summarize

    samples = load_samples(data, length=None)
    blobs = [s.path.read_bytes() for s in samples]
    truths = [s.label for s in samples]
    alphabet = "".join(sorted(set("".join(truths))))
    t0 = time.perf_counter()
    try:
        read, read_batch, size = make_reader(name, alphabet, threads, checkpoint)
    except ImportError as e:
        return {"reader": name, "installed": False, "why": str(e)}
    load_s = time.perf_counter() - t0
    preds = [read(b) for b in blobs]  # also the warm-up
    m = summarize(score(preds, truths))
    lat = []
    for _ in range(repeats):
        for b in blobs:
            t = time.perf_counter()
            read(b)
            lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    out = {
        "reader": name, "installed": True, "n": m["n"], "accuracy": m["accuracy"], "accuracy_ci95": m["accuracy_ci95"],
        "char_accuracy": m["char_accuracy"], "latency_ms_median": statistics.median(lat),
        "latency_ms_p95": lat[int(0.95 * (len(lat) - 1))], "load_s": load_s, "model_bytes": size,
    }
    for bs in (1, 16, 64):
        if bs > 1 and read_batch is None:
            out[f"images_per_s_batch{bs}"] = None
            continue
        chunks = [blobs[i : i + bs] for i in range(0, len(blobs), bs)]
        fn = (lambda c: [read(c[0])]) if bs == 1 else read_batch
        fn(chunks[0])
        t = time.perf_counter()
        for _ in range(repeats):
            for c in chunks:
                fn(c)
        out[f"images_per_s_batch{bs}"] = repeats * len(blobs) / (time.perf_counter() - t)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def zero_shot_worker(name: str, sets: list[str], threads: int, checkpoint: str | None) -> dict:
    """Accuracy of one reader on each set, exact and case-folded, every image read once."""
    from crnn_captcha.data.labels import load_samples
    from crnn_captcha.data.scoring import score, summarize

    try:
        read, _, _ = make_reader(name, "", threads, checkpoint)
    except ImportError as e:
        return {"reader": name, "installed": False, "why": str(e)}
    rows = []
    for data in sets:
        samples = load_samples(data, length=None)
        truths = [s.label for s in samples]
        t = time.perf_counter()
        preds = [read(s.path.read_bytes()) for s in samples]
        seconds = time.perf_counter() - t
        exact = summarize(score(preds, truths))
        folded = summarize(score([p.lower() for p in preds], [x.lower() for x in truths]))
        rows.append({"set": set_name(data), "data": data, "n": exact["n"], "seconds": seconds,
                     "exact": exact["accuracy"], "exact_ci95": exact["accuracy_ci95"],
                     "folded": folded["accuracy"], "folded_ci95": folded["accuracy_ci95"],
                     "folded_char_accuracy": folded["char_accuracy"]})
    return {"reader": name, "installed": True, "sets": rows}


def set_name(data: str) -> str:
    """A set's name in the table: its folder (``data/families/ic36/test.csv`` -> ``ic36``)."""
    path = Path(data)
    return path.parent.name if path.suffix == ".csv" else path.name


def in_own_processes(workers: list[str], what: list[str], args) -> list[dict]:
    """Each worker's JSON result, each run as this script in a fresh process with ``what`` to do."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    results = []
    for name in workers:
        cmd = [sys.executable, __file__, *what, "--threads", str(args.threads), "--worker", name]
        if args.checkpoint:
            cmd += ["--checkpoint", args.checkpoint]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            results.append({"reader": name, "installed": False, "why": proc.stderr.strip().splitlines()[-1:]})
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def zero_shot(args) -> int:
    readers = [r for r in args.readers if r not in ("crnn_captcha_light", "crnn_captcha_torch", "ddddocr_ranges")]
    results = in_own_processes(readers, ["--zero-shot", *args.zero_shot], args)
    ours = {"crnn_captcha": f"crnn_captcha ({args.checkpoint or 'captcha_v2'})",
            "crnn_captcha_two_widths": f"crnn_captcha ({args.checkpoint or 'captcha_v2'}, widths 1 and 2)"}
    shown = [r for r in results if r.get("installed")]
    print(f"\n{datetime.date.today()}  zero-shot, {os.cpu_count()} cores, {args.threads} threads; "
          "exact / case-folded full-string accuracy (95% CI of the case-folded)\n")
    heads = [ours.get(r["reader"], r["reader"]) for r in shown]
    print("| set | n | " + " | ".join(heads) + " |\n|---|---|" + "---|" * len(shown))
    for i, data in enumerate(args.zero_shot):
        cells = []
        for r in shown:
            row = r["sets"][i]
            lo, hi = row["folded_ci95"]
            cells.append(f"{100 * row['exact']:.1f}% / {100 * row['folded']:.1f}% ({100 * lo:.1f}-{100 * hi:.1f})")
        print(f"| {set_name(data)} | {shown[0]['sets'][i]['n'] if shown else '-'} | " + " | ".join(cells) + " |")
    means = [statistics.mean(row["folded"] for row in r["sets"]) for r in shown]
    print("| mean over sets (case-folded) | | " + " | ".join(f"{100 * m:.1f}%" for m in means) + " |")
    for r in results:
        if not r.get("installed"):
            print(f"{r['reader']}: not installed ({r.get('why')})")
    if args.json:
        Path(args.json).write_text(json.dumps({"date": str(datetime.date.today()), "cpu_count": os.cpu_count(),
                                               "threads": args.threads, "checkpoint": args.checkpoint,
                                               "results": results}, indent=2) + "\n")
    return 0


def train_throughput(data: str, threads: int, steps: int = 30) -> dict:
    """Samples/s of training steps (forward, CTC loss, backward, AdamW step) on the CPU."""
    import torch

    from crnn_captcha.read.charset import Charset
    from crnn_captcha.read.ctc import ctc_loss
    from crnn_captcha.data.datasets import CaptchaDataset, collate_ctc
    from crnn_captcha.data.labels import load_samples
    from crnn_captcha.read.images import PreprocessConfig
    from crnn_captcha.read.model import CRNN, CRNNConfig

    torch.set_num_threads(threads)
    samples = load_samples(data, length=None)
    cs = Charset.from_labels(s.label for s in samples)
    ds = CaptchaDataset(samples, cs, PreprocessConfig())
    batch = collate_ctc([ds[i % len(ds)] for i in range(16)])
    model = CRNN(CRNNConfig(num_classes=cs.num_classes))
    opt = torch.optim.AdamW(model.parameters(), 1e-3)

    def step():
        loss = ctc_loss(model(batch[0]), batch[1], batch[2])
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return {"device": "cpu", "batch_size": 16, "samples_per_s": steps * 16 / (time.perf_counter() - t)}


def busy(seconds: float) -> None:
    """Keep one core busy (the "anything else running" of a shared machine)."""
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def thread_table(data: str, counts: list[int], loads: list[int]) -> list[dict]:
    """Training samples/s for each torch thread count, alone and beside ``load`` busy processes."""
    import multiprocessing

    rows = []
    for load in loads:
        for threads in counts:
            procs = [multiprocessing.Process(target=busy, args=(120,)) for _ in range(load)]
            for p in procs:
                p.start()
            try:
                cmd = [sys.executable, __file__, "--data", data, "--threads", str(threads), "--worker", "train"]
                env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
                rows.append({"threads": threads, "busy_processes": load, **json.loads(out.strip().splitlines()[-1])})
            finally:
                for p in procs:
                    p.terminate()
                    p.join()
    return rows


# ----- the parent: run each reader in a fresh process, print one table ------------------------
def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark captcha readers side by side.")
    ap.add_argument("--data", help="manifest or folder of labelled captchas (use the test split)")
    ap.add_argument("--zero-shot", nargs="+", metavar="SET",
                    help="instead: accuracy only, on each of these manifests or folders, exact and case-folded")
    ap.add_argument("--readers", nargs="+", default=READERS, choices=READERS)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3, help="passes over the images for the timings")
    ap.add_argument("--checkpoint", help="our checkpoint or shipped model (default: captcha_v2; with --zero-shot, "
                                         "general, the reader for captchas no model was trained on)")
    ap.add_argument("--json", help="write all numbers here")
    ap.add_argument("--train-threads", type=int, nargs="+", metavar="N",
                    help="instead: training samples/s with each of these torch thread counts, alone and beside busy processes")
    ap.add_argument("--busy", type=int, nargs="+", default=[0, 1], metavar="N",
                    help="with --train-threads: numbers of busy processes to measure beside (default 0 and 1)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker and args.zero_shot:  # the parent names the checkpoint
        print(json.dumps(zero_shot_worker(args.worker, args.zero_shot, args.threads, args.checkpoint)))
        return 0
    if args.zero_shot:
        args.checkpoint = args.checkpoint or "general"
        return zero_shot(args)
    if not args.data:
        ap.error("give --data (or --zero-shot SET ...)")
    if args.worker:
        res = train_throughput(args.data, args.threads) if args.worker == "train" else worker(
            args.worker, args.data, args.threads, args.repeats, args.checkpoint)
        print(json.dumps(res))
        return 0

    if args.train_threads:
        rows = thread_table(args.data, args.train_threads, args.busy)
        print(f"\n{datetime.date.today()}  {os.cpu_count()} cores; training steps of batch 16 on {args.data}\n")
        print("| torch threads | busy processes beside | samples/s |\n|---|---|---|")
        for r in rows:
            print(f"| {r['threads']} | {r['busy_processes']} | {r['samples_per_s']:.0f} |")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        return 0

    results = in_own_processes(args.readers + ["train"], ["--data", args.data, "--repeats", str(args.repeats)], args)
    train = next((r for r in results if r.get("reader") == "train" or "samples_per_s" in r), None)
    readers = [r for r in results if r is not train]
    print(f"\n{datetime.date.today()}  {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{args.threads} threads, data {args.data}\n")
    print("| reader | n | accuracy (95% CI) | char acc | latency median / p95 (ms) | img/s b1 | img/s b16 | img/s b64 | load (s) | peak RSS (MB) | model (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in readers:
        if not r.get("installed"):
            print(f"| {r['reader']} | not installed | | | | | | | | | |")
            continue
        lo, hi = r["accuracy_ci95"]
        print(f"| {r['reader']} | {r['n']} | {r['accuracy']:.4f} ({lo:.3f}-{hi:.3f}) | {r['char_accuracy']:.4f} | "
              f"{r['latency_ms_median']:.2f} / {r['latency_ms_p95']:.2f} | {fmt(r['images_per_s_batch1'], '.0f')} | "
              f"{fmt(r['images_per_s_batch16'], '.0f')} | {fmt(r['images_per_s_batch64'], '.0f')} | {r['load_s']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | {r['model_bytes'] / 1e6:.2f} |")
    if train and "samples_per_s" in train:
        print(f"\ntraining throughput (crnn_captcha, CPU, batch {train['batch_size']}): {train['samples_per_s']:.0f} samples/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"date": str(datetime.date.today()), "cpu_count": os.cpu_count(),
                                               "threads": args.threads, "data": args.data, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
