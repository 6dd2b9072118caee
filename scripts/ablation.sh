#!/usr/bin/env bash
# Captcha v2, several seeds of each start: from scratch vs from the shipped pretrained model.
# Run from the repository root after scripts/split_data.py (data/splits). Each training run writes
# $RUNS/<recipe>_s<seed>/; scripts/ablation_report.py --runs $RUNS makes the table (--no-test: val only).
#   bash scripts/ablation.sh                                   # both starts, seeds 0-4 -> runs/ablation
#   RECIPES=pretrained SEEDS="5 6" bash scripts/ablation.sh    # more seeds, one start
#   ARGS="--splice-prob 0" RUNS=runs/nomix bash scripts/ablation.sh   # another recipe
# A finished run (curves.png present) is skipped and an interrupted one resumed, so the script can be
# run again after a stop.
set -euo pipefail
SEEDS=${SEEDS:-"0 1 2 3 4"}
RECIPES=${RECIPES:-"scratch pretrained"}
ARGS=${ARGS:-}
RUNS=${RUNS:-runs/ablation}
export ARGS RUNS   # read by run_one in the xargs subshells
run_one() {  # run_one RECIPE SEED
  local recipe=$1 seed=$2 out=$RUNS/${1}_s${2}
  [ -f "$out/curves.png" ] && return 0      # finished already
  if [ -f "$out/last.pt" ]; then
    OMP_NUM_THREADS=1 python -m crnn_captcha.train --out "$out" --resume --threads 1 --no-progress >> "$RUNS/${recipe}_s${seed}.log" 2>&1
    return
  fi
  # shellcheck disable=SC2086  # ARGS is a list of words
  OMP_NUM_THREADS=1 python -m crnn_captcha.train --splits data/splits --out "$out" --init "$recipe" --seed "$seed" \
    --threads 1 --no-progress $ARGS > "$RUNS/${recipe}_s${seed}.log" 2>&1
}
export -f run_one
mkdir -p "$RUNS"
# Two runs at a time, one thread each (on 2 cores this finishes sooner than one run of 2 threads).
for seed in $SEEDS; do for recipe in $RECIPES; do echo "$recipe $seed"; done; done \
  | xargs -P 2 -L 1 bash -c 'run_one "$0" "$1"'
