#!/usr/bin/env bash
# Ablation: CRNN trained from scratch vs from the leak-free glyph-pretrained backbone, 5 seeds each.
# Run from the repository root after scripts/split_data.py (data/splits). Each training run writes
# $RUNS/<recipe>_s<seed>/metrics.jsonl; scripts/ablation_report.py --runs $RUNS makes the table.
#   bash scripts/ablation.sh                                        # the default recipe -> runs/ablation
#   RECIPES=scratch SEEDS="5 6" bash scripts/ablation.sh            # more seeds, scratch only
#   ARGS="--lstm-layers 2 --hidden 128" RUNS=runs/lstm2x128 bash scripts/ablation.sh   # another recipe
#   MIX=0.5 RUNS=runs/mix bash scripts/ablation.sh                  # with splicing
# A finished run (curves.png present) is skipped and an interrupted one resumed, so the script can be
# run again after a stop.
set -euo pipefail
SEEDS=${SEEDS:-"0 1 2 3 4"}
RECIPES=${RECIPES:-"scratch pre"}
EPOCHS=${EPOCHS:-120}
MIX=${MIX:-0}
ARGS=${ARGS:-}
RUNS=${RUNS:-runs/ablation}
export EPOCHS MIX ARGS RUNS   # read by run_one in the xargs subshells
if [[ " $RECIPES " == *" pre "* && ! -f runs/glyphs/backbone.pt ]]; then
  [ -d data/glyphs/train ] || python scripts/make_glyphs.py --split data/splits/train.csv --out data/glyphs/train
  [ -d data/glyphs/val ] || python scripts/make_glyphs.py --split data/splits/val.csv --out data/glyphs/val --copies 0
  python -m crnn_captcha.pretrain --glyphs data/glyphs/train --val-glyphs data/glyphs/val --out runs/glyphs
fi
run_one() {  # run_one RECIPE SEED
  local recipe=$1 seed=$2 out=$RUNS/${1}_s${2}
  [ -f "$out/curves.png" ] && return 0      # finished already
  local extra=()
  [ "$recipe" = pre ] && extra+=(--pretrained-backbone runs/glyphs/backbone.pt)
  [ -f "$out/last.pt" ] && extra+=(--resume)
  # shellcheck disable=SC2086  # ARGS is a list of words
  OMP_NUM_THREADS=1 python -m crnn_captcha.train --splits data/splits --out "$out" --epochs "$EPOCHS" \
    --seed "$seed" --threads 1 --no-progress --mix-prob "$MIX" $ARGS "${extra[@]}" > "$RUNS/${recipe}_s${seed}.log" 2>&1
}
export -f run_one
mkdir -p "$RUNS"
# Two runs at a time, one thread each (on 2 cores this finishes sooner than one run of 2 threads).
for seed in $SEEDS; do for recipe in $RECIPES; do echo "$recipe $seed"; done; done \
  | xargs -P 2 -L 1 bash -c 'run_one "$0" "$1"'
