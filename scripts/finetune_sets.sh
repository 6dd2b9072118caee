#!/usr/bin/env bash
# Fine-tune a start at 250 labels on every development family and shared real set, and on captcha
# v2's training split, then read each test split: the check a new general reader passes before it
# ships (docs/pretraining.md, "Fine-tuning from it"). Run from the repository root after
#   python scripts/make_family.py --family ic36 --family ic62 --family warped --family colour --train 250
#   python scripts/split_data.py --src ../shared/data/captcha_v2 --out data/splits
#   python scripts/real_splits.py
# Then:
#   INIT=runs/cpu9/pretrained.pt bash scripts/finetune_sets.sh          # -> runs/ft/<set>/, a table
#   INIT=general RUNS=runs/ft_shipped SETS="ic36 thsr_rail" bash scripts/finetune_sets.sh
# Two runs at a time, one thread each. A finished run (curves.png present) is skipped and an
# interrupted one resumed, so the script can be run again after a stop; the table reads every
# finished run.
set -euo pipefail
INIT=${INIT:?give INIT, the start to fine-tune: general, pretrained or a checkpoint path}
RUNS=${RUNS:-runs/ft}
SETS=${SETS:-"ic36 ic62 warped colour thsr_rail swust_univ lzu_digits captcha_v2"}
export INIT RUNS
data_of() {  # data_of SET: the folder holding its train_250.csv, val.csv and test.csv
  case $1 in
    captcha_v2) echo data/splits ;;
    thsr_rail|swust_univ|lzu_digits) echo data/real/$1 ;;
    *) echo data/families/$1 ;;
  esac
}
run_one() {  # run_one SET
  local out=$RUNS/$1 data
  data=$(data_of "$1")
  [ -f "$out/curves.png" ] && return 0      # finished already
  if [ -f "$out/last.pt" ]; then
    python -m crnn_captcha.train --out "$out" --resume --threads 1 --no-progress >> "$RUNS/$1.log" 2>&1
  elif [ "$1" = captcha_v2 ]; then
    python -m crnn_captcha.train --splits data/splits --out "$out" --init "$INIT" --threads 1 --no-progress > "$RUNS/$1.log" 2>&1
  else
    python -m crnn_captcha.train --train "$data/train_250.csv" --val "$data/val.csv" --out "$out" --init "$INIT" \
      --threads 1 --no-progress > "$RUNS/$1.log" 2>&1
  fi
}
export -f run_one data_of
for set in $SETS; do
  data=$(data_of "$set")
  [ -f "$data/test.csv" ] || { echo "error: $data/test.csv is missing: make the data first (see the top of $0)" >&2; exit 2; }
done
mkdir -p "$RUNS"
printf '%s\n' $SETS | xargs -P 2 -I{} bash -c 'run_one {} || echo "error: the run for {} failed; see $RUNS/{}.log" >&2'
echo "| set | test accuracy (95% interval) |"
echo "|---|---|"
for set in $SETS; do
  [ -f "$RUNS/$set/curves.png" ] || { echo "| $set | (not finished) |"; continue; }
  python -m crnn_captcha.evaluate "$(data_of "$set")/test.csv" --checkpoint "$RUNS/$set/best.pt" \
    | awk -v s="$set" '/^images/ {n=$2} /^accuracy/ {gsub(",", "", $5); split($5, ci, "-");
        printf "| %s (%s) | %.1f%% (%.1f-%.1f) |\n", s, n, 100 * $2, 100 * ci[1], 100 * ci[2]}' || true
done
