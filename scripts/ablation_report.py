"""Summarise the from-scratch vs pretrained ablation on captcha v2 (runs made by scripts/ablation.sh).

    python scripts/ablation_report.py --runs runs --test data/splits/test.csv

For each run: epochs until val accuracy first reached 90%, the epoch best.pt was taken at, its val
accuracy, and best.pt's accuracy on the test split (never used for training or selection), with a
95% Wilson interval. Then the mean per recipe. Prints a markdown table; --json writes the numbers.
--no-test leaves the test split out (to choose among runs by val before looking at test).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from crnn_captcha.data.labels import read_manifest
from crnn_captcha.data.scoring import score, summarize
from crnn_captcha import CaptchaReader


def first_epoch(rows: list[dict], threshold: float) -> int | None:
    return next((r["epoch"] for r in rows if r["val_accuracy"] >= threshold), None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--test", default="data/splits/test.csv")
    ap.add_argument("--recipes", nargs="+", default=["scratch", "pretrained"])
    ap.add_argument("--no-test", action="store_true", help="val columns only; the test split is not read")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    test = None if args.no_test else read_manifest(args.test)
    results = []
    for recipe in args.recipes:
        for run in sorted(Path(args.runs).glob(f"{recipe}_s*")):
            if not (run / "best.pt").exists():
                continue
            rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
            reader = CaptchaReader(run / "best.pt", device="cpu")
            result = {
                "recipe": recipe, "run": run.name, "epochs_run": rows[-1]["epoch"],
                "epochs_to_90": first_epoch(rows, 0.90), "best_epoch": reader.metrics.get("epoch"),
                "best_val_accuracy": reader.metrics.get("val_accuracy"),
                "best_val_cer": reader.metrics.get("val_cer"),
                "train_seconds": round(sum(r["epoch_seconds"] for r in rows)),
            }
            if test is not None:
                texts = reader.read_batch([s.path for s in test])
                m = summarize(score(texts, [s.label for s in test]))
                result.update(test_n=m["n"], test_accuracy=m["accuracy"], test_ci95=m["accuracy_ci95"], test_cer=m["cer"])
            results.append(result)
    if not results:
        print(f"error: no finished runs under {args.runs}", file=sys.stderr)
        return 1
    head = "| run | epochs to 90% val | best epoch | best val accuracy (CER) | epochs run | train time (s) |"
    rule = "|---|---|---|---|---|---|"
    if test is not None:
        head, rule = head + " test accuracy (n, 95% CI) | test CER |", rule + "---|---|"
    print(head)
    print(rule)
    for r in results:
        line = (f"| {r['run']} | {r['epochs_to_90'] or 'never'} | {r['best_epoch']} | "
                f"{r['best_val_accuracy']:.4f} ({r['best_val_cer']:.4f}) | {r['epochs_run']} | {r['train_seconds']} |")
        if test is not None:
            lo, hi = r["test_ci95"]
            line += f" {r['test_accuracy']:.4f} ({r['test_n']}, {lo:.3f}-{hi:.3f}) | {r['test_cer']:.4f} |"
        print(line)
    for recipe in args.recipes:
        rs = [r for r in results if r["recipe"] == recipe]
        if rs:
            e90 = [r["epochs_to_90"] for r in rs if r["epochs_to_90"] is not None]
            reached = f"{statistics.mean(e90):.1f} ({len(e90)} of {len(rs)} reached 90%)" if e90 else f"none of {len(rs)} reached 90%"
            line = (f"| **{recipe}, mean of {len(rs)}** | {reached} | | "
                    f"{statistics.mean(r['best_val_accuracy'] for r in rs):.4f} | | "
                    f"{statistics.mean(r['train_seconds'] for r in rs):.0f} |")
            if test is not None:
                line += (f" **{statistics.mean(r['test_accuracy'] for r in rs):.4f}** | "
                         f"{statistics.mean(r['test_cer'] for r in rs):.4f} |")
            print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
