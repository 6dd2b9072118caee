"""Summarise the from-scratch vs glyph-pretrained ablation (runs made by scripts/ablation.sh).

    python scripts/ablation_report.py --runs runs --test data/splits/test.csv

For each run: epochs until val accuracy first reached 90%, the epoch best.pt was taken at, and
best.pt's accuracy on the test split (never used for training or selection), with a 95% Wilson
interval. Then the mean per recipe. Prints a markdown table; --json writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from crnn_captcha.data import read_manifest
from crnn_captcha.metrics import score, summarize
from crnn_captcha.reader import CaptchaReader


def first_epoch(rows: list[dict], threshold: float) -> int | None:
    return next((r["epoch"] for r in rows if r["val_accuracy"] >= threshold), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--test", default="data/splits/test.csv")
    ap.add_argument("--recipes", nargs="+", default=["scratch", "pre"])
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    test = read_manifest(args.test)
    results = []
    for recipe in args.recipes:
        for run in sorted(Path(args.runs).glob(f"{recipe}_s*")):
            if not (run / "best.pt").exists():
                continue
            rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
            reader = CaptchaReader(run / "best.pt", device="cpu")
            texts = reader.read_batch([s.path for s in test])
            m = summarize(score(texts, [s.label for s in test]))
            results.append({
                "recipe": recipe, "run": run.name, "epochs_run": rows[-1]["epoch"],
                "epochs_to_90": first_epoch(rows, 0.90), "best_epoch": reader.metrics.get("epoch"),
                "train_seconds": round(sum(r["epoch_seconds"] for r in rows)),
                "test_n": m["n"], "test_accuracy": m["accuracy"], "test_ci95": m["accuracy_ci95"],
                "test_cer": m["cer"],
            })
    if not results:
        print(f"error: no finished runs under {args.runs}", file=sys.stderr)
        return 1
    print("| run | epochs to 90% val | best epoch | epochs run | train time (s) | test accuracy (n, 95% CI) | test CER |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        lo, hi = r["test_ci95"]
        print(f"| {r['run']} | {r['epochs_to_90'] or 'never'} | {r['best_epoch']} | {r['epochs_run']} | {r['train_seconds']} | "
              f"{r['test_accuracy']:.4f} ({r['test_n']}, {lo:.3f}-{hi:.3f}) | {r['test_cer']:.4f} |")
    for recipe in args.recipes:
        rs = [r for r in results if r["recipe"] == recipe]
        if rs:
            e90 = [r["epochs_to_90"] for r in rs if r["epochs_to_90"] is not None]
            reached = f"{statistics.mean(e90):.1f} ({len(e90)} of {len(rs)} reached 90%)" if e90 else f"none of {len(rs)} reached 90%"
            print(f"| **{recipe} mean of {len(rs)}** | {reached} | | | "
                  f"{statistics.mean(r['train_seconds'] for r in rs):.0f} | "
                  f"{statistics.mean(r['test_accuracy'] for r in rs):.4f} | "
                  f"{statistics.mean(r['test_cer'] for r in rs):.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
