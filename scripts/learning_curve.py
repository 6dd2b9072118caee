"""Learning curve: the default training recipe on 250 / 1,000 / 5,000 labelled images of a family.

    python scripts/make_family.py --family ic36                     # data/families/ic36/
    python scripts/learning_curve.py --data data/families/ic36 --out runs/curves/ic36
    python scripts/learning_curve.py --data data/families/colour --out runs/curves/colour_gray --args "--color gray"
    python scripts/learning_curve.py --data data/splits --sizes 750 --seeds 0 1 2 3 4 --out runs/curves/v2

``--data`` is a folder with ``val.csv``, ``test.csv`` and the training manifests: ``train_<N>.csv``
for each size N (``scripts/make_family.py`` writes train_250.csv and train_1000.csv), or
``train.csv`` when it has exactly N rows. Each (size, seed) trains with
``python -m crnn_captcha.train --train ... --val val.csv`` and nothing else but ``--args``, one
thread per run, ``--jobs`` runs at a time; a finished run is skipped and an interrupted one resumed,
so the script can be run again after a stop. Then every run's best.pt (chosen on val) reads the test
split, which took no part in training or choosing. Prints a markdown table; ``--json`` writes the
numbers: test accuracy (n, 95% Wilson interval), character accuracy, epochs, training time and
training samples/s.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def train_manifest(data: Path, size: int) -> Path:
    named = data / f"train_{size}.csv"
    if named.exists():
        return named
    whole = data / "train.csv"
    if whole.exists() and rows(whole) == size:
        return whole
    raise SystemExit(f"error: {data} has no train_{size}.csv and train.csv does not have {size} rows")


def train_one(data: Path, out: Path, size: int, seed: int, extra: list[str], log_dir: Path) -> int:
    run = out / f"n{size}_s{seed}"
    if (run / "curves.png").exists():
        return 0
    cmd = [sys.executable, "-m", "crnn_captcha.train", "--train", str(train_manifest(data, size)),
           "--val", str(data / "val.csv"), "--out", str(run), "--seed", str(seed), "--threads", "1", "--no-progress", *extra]
    if (run / "last.pt").exists():
        cmd = [sys.executable, "-m", "crnn_captcha.train", "--out", str(run), "--resume", "--threads", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with (log_dir / f"{run.name}.log").open("a") as log:
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode


def measure(data: Path, run: Path) -> dict:
    from crnn_captcha import CaptchaReader
    from crnn_captcha.data.labels import read_manifest
    from crnn_captcha.data.scoring import score, summarize

    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    test = read_manifest(data / "test.csv")
    reader = CaptchaReader(run / "best.pt", device="cpu", backend="torch")
    texts = reader.read_batch([s.path for s in test], batch_size=128)
    m = summarize(score(texts, [s.label for s in test]))
    seconds = sum(h["epoch_seconds"] for h in history)
    return {
        "run": run.name, "test_n": m["n"], "test_accuracy": m["accuracy"], "test_ci95": m["accuracy_ci95"],
        "test_char_accuracy": m["char_accuracy"], "best_epoch": reader.metrics.get("epoch"),
        "best_val_accuracy": reader.metrics.get("val_accuracy"), "epochs_run": history[-1]["epoch"],
        "train_seconds": round(seconds), "samples_per_s": round(sum(h["train_samples_per_s"] for h in history) / len(history)),
        "input": f"{reader.preprocess.width}x{reader.preprocess.height} {'rgb' if reader.preprocess.color else 'gray'}",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder with val.csv, test.csv and train_<N>.csv manifests")
    ap.add_argument("--out", required=True, help="folder for the runs (one per size and seed)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 5000], help="training set sizes")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    ap.add_argument("--args", default="", help="other train arguments, e.g. \"--color gray\"")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (each with one thread)")
    ap.add_argument("--json", help="write the table's numbers here")
    args = ap.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(size, seed) for size in args.sizes for seed in args.seeds]
    extra = shlex.split(args.args)
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        codes = list(pool.map(lambda job: train_one(data, out, job[0], job[1], extra, out), jobs))
    failed = [f"n{size}_s{seed}" for (size, seed), code in zip(jobs, codes) if code != 0]
    if failed:
        print(f"error: runs failed (see their logs in {out}): {', '.join(failed)}", file=sys.stderr)
    results = [measure(data, out / f"n{size}_s{seed}") for size, seed in jobs if f"n{size}_s{seed}" not in failed]
    print(f"\n{data} ({args.args or 'default recipe'})\n")
    print("| run | input | test accuracy (n, 95% CI) | char acc | best epoch / run | train time (s) | samples/s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        lo, hi = r["test_ci95"]
        print(f"| {r['run']} | {r['input']} | {r['test_accuracy']:.4f} ({r['test_n']}, {lo:.3f}-{hi:.3f}) | "
              f"{r['test_char_accuracy']:.4f} | {r['best_epoch']} / {r['epochs_run']} | {r['train_seconds']} | "
              f"{r['samples_per_s']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"data": str(data), "args": args.args, "results": results}, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
