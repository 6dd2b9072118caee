"""How fast each candidate CRNN size reads one image on this CPU, beside the fastest peer: the
budget a general reader may grow within (2 ms a read, and 5 times faster than the fastest peer).

    python scripts/model_sizes.py --data data/families/ic36/test.csv --threads 1 --json sizes.json

Each size is built with random weights (reading speed does not depend on them), its batch norms
folded as an export does, exported to ONNX and run by ONNX Runtime on one preprocessed image: the
model's own time. The shipped captcha v2 reader and the peers then read the same encoded images
whole (decoding, preprocessing, model, text), so "whole read" for a size is its model time plus what
the shipped reader spends outside its model. Each reader runs in a fresh process.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

#: name -> (height, width, channels of the five conv blocks, LSTM hidden size, LSTM layers); heights are
#: multiples of 32, as the backbone's two feature rows need
SIZES = {
    "today (32x128, 16-96, h64)": (32, 128, (16, 32, 64, 64, 96), 64, 1),
    "a half wider (32x128, 24-144, h96)": (32, 128, (24, 48, 96, 96, 144), 96, 1),
    "narrow first blocks (32x128, 16-32-64-64-144, h96)": (32, 128, (16, 32, 64, 64, 144), 96, 1),
    "wider convolutions (32x128, 32-192, h64)": (32, 128, (32, 64, 128, 128, 192), 64, 1),
    "wider (32x128, 32-192, h128)": (32, 128, (32, 64, 128, 128, 192), 128, 1),
    "wider, 2 LSTM layers": (32, 128, (32, 64, 128, 128, 192), 128, 2),
    "taller (64x256, 16-96, h64)": (64, 256, (16, 32, 64, 64, 96), 64, 1),
    "taller and wider (64x256, 32-192, h128)": (64, 256, (32, 64, 128, 128, 192), 128, 1),
    "widest (32x128, 48-256, h192)": (32, 128, (48, 96, 192, 192, 256), 192, 1),
}


def model_ms(size: tuple, threads: int, repeats: int) -> dict:
    """Median milliseconds of one ONNX Runtime run of a random-weight CRNN of this size."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from crnn_captcha.read.model import CRNN, CRNNConfig

    height, width, channels, hidden, layers = size
    model = CRNN(CRNNConfig(num_classes=74, height=height, width=width, channels=channels, hidden=hidden,
                            lstm_layers=layers, max_label_length=8, in_channels=3, rows=2)).eval()
    model.fuse_batchnorm()
    params = sum(p.numel() for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = str(Path(tmp) / "m.onnx")
        torch.onnx.export(model, torch.zeros(1, 3, height, width), path, input_names=["image"],
                          output_names=["logits"], opset_version=17, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        model_run = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"]).run
    x = np.random.default_rng(0).standard_normal((1, 3, height, width)).astype(np.float32)
    for _ in range(20):
        model_run(None, {"image": x})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model_run(None, {"image": x})
        times.append((time.perf_counter() - t) * 1000)
    return {"params": params, "model_ms": statistics.median(times)}


def whole_read_ms(reader: str, data: str, threads: int) -> dict:
    """Median milliseconds of a whole read (bytes to text) by one reader of scripts/benchmark.py."""
    bench = Path(__file__).with_name("benchmark.py")
    cmd = [sys.executable, str(bench), "--data", data, "--threads", str(threads), "--repeats", "2", "--worker", reader]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if proc.returncode != 0:
        return {"reader": reader, "installed": False}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"reader": reader, "installed": out.get("installed", False), "ms": out.get("latency_ms_median")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="labelled images the whole reads are timed on (a test split)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=300, help="timed runs of each size")
    ap.add_argument("--peers", nargs="*", default=["ddddocr", "captcha_whisperer"])
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        ap.error("--threads and --repeats take whole numbers of at least 1")

    wholes = [whole_read_ms(r, args.data, args.threads) for r in ["crnn_captcha", *args.peers]]
    ours = wholes[0]["ms"]
    shipped = model_ms((32, 128, (16, 32, 64, 64, 96), 64, 1), args.threads, args.repeats)["model_ms"]
    outside = ours - shipped  # decoding, preprocessing and the text: the same whatever the model
    peers = [w["ms"] for w in wholes[1:] if w.get("installed")]
    fastest = min(peers) if peers else None
    rows = []
    for name, size in SIZES.items():
        m = model_ms(size, args.threads, args.repeats)
        rows.append({"size": name, **m, "whole_ms": m["model_ms"] + outside})
    print(f"\n{datetime.date.today()}  {os.cpu_count()} cores, {args.threads} thread(s), images {args.data}")
    print("whole reads: " + ", ".join(f"{w['reader']} {w['ms']:.2f} ms" if w.get("installed") else f"{w['reader']} not installed"
                                      for w in wholes))
    print(f"(the shipped reader: model {shipped:.2f} ms, the rest {outside:.2f} ms)\n")
    print("| size | parameters | model (ms) | whole read (ms) | within 2 ms | 5x faster than the fastest peer |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        five = "-" if fastest is None else ("yes" if r["whole_ms"] * 5 <= fastest else "no")
        print(f"| {r['size']} | {r['params'] / 1e6:.2f} M | {r['model_ms']:.2f} | {r['whole_ms']:.2f} | "
              f"{'yes' if r['whole_ms'] <= 2 else 'no'} | {five} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"date": str(datetime.date.today()), "threads": args.threads,
                                               "whole_reads": wholes, "sizes": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
