"""Split the shared real captcha sets for fine-tuning and testing, the way docs/results.md measures them.

    python scripts/real_splits.py                                  # ../shared/data/real -> data/real
    python scripts/real_splits.py --src DIR --out /tmp/real

For each set (a folder of SRC holding all.csv, `path,label`, paths relative to the folder) writes
OUT/<set>/ with train.csv, val.csv and test.csv (75 / 12.5 / 12.5), train_250.csv and train_1000.csv
(the first 250 and 1,000 training rows) and rest.csv (the training rows after the first 250, whose
labels a self-training run leaves unused). The rows, with absolute paths, are sorted, then shuffled
by random.Random(SEED): rows [:int(0.75 n)] train, [int(0.75 n):int(0.875 n)] validation, the rest
test. So the splits depend only on where the data lies and the seed: with ../shared beside the
repository, the test splits hold 622 railway, 587 university portal and 625 digit captchas. The
source folders are only read.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crnn_captcha.data.labels import Sample, read_manifest, write_manifest  # noqa: E402
from crnn_captcha.errors import CaptchaError  # noqa: E402
from crnn_captcha.split import check_out  # noqa: E402

PARTS = ("train", "val", "test")


def split_rows(samples: list[Sample], seed: int) -> dict[str, list[Sample]]:
    """The samples as {part: samples} for train, val, test and the training subsets."""
    rows = sorted(samples, key=lambda s: (str(s.path), s.label))
    random.Random(seed).shuffle(rows)
    a, b = int(0.75 * len(rows)), int(0.875 * len(rows))
    train = rows[:a]
    return {"train": train, "val": rows[a:b], "test": rows[b:], "train_250": train[:250],
            "train_1000": train[:1000], "rest": train[250:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parents[1]
    ap.add_argument("--src", type=Path, default=root.parent / "shared" / "data" / "real",
                    help="folder of sets, each a folder with all.csv (default: ../shared/data/real)")
    ap.add_argument("--out", type=Path, default=root / "data" / "real", help="where the splits go (default: data/real)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the shuffle (default: 0)")
    args = ap.parse_args(argv)
    sets = sorted(p.parent for p in args.src.glob("*/all.csv"))
    if not sets:
        ap.error(f"--src {args.src}: no folder in it holds an all.csv")
    try:
        check_out(args.out, args.src, force=True)  # never inside the data folder
        for folder in sets:
            parts = split_rows(read_manifest(folder / "all.csv"), args.seed)
            (args.out / folder.name).mkdir(parents=True, exist_ok=True)
            for name, rows in parts.items():
                write_manifest(args.out / folder.name / f"{name}.csv", rows)
            print(f"{folder.name}: " + ", ".join(f"{p} {len(parts[p])}" for p in PARTS) + f" -> {args.out / folder.name}")
    except CaptchaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
