#!/usr/bin/env bash
# Ablation: CRNN trained from scratch vs from the leak-free glyph-pretrained backbone, 3 seeds each.
# Run from the repository root after scripts/split_data.py (data/splits). Each training run writes
# $RUNS/<recipe>_s<seed>/metrics.jsonl; scripts/ablation_report.py --runs $RUNS makes the table.
#   bash scripts/ablation.sh                              # the default recipe -> runs/nomix
#   MIX=0.5 RUNS=runs/mix bash scripts/ablation.sh        # with splicing
set -euo pipefail
SEEDS=${SEEDS:-"0 1 2"}
EPOCHS=${EPOCHS:-120}
MIX=${MIX:-0}
RUNS=${RUNS:-runs/nomix}
if [ ! -f runs/glyphs/backbone.pt ]; then
  [ -d data/glyphs/train ] || python scripts/make_glyphs.py --split data/splits/train.csv --out data/glyphs/train
  [ -d data/glyphs/val ] || python scripts/make_glyphs.py --split data/splits/val.csv --out data/glyphs/val --copies 0
  python -m crnn_captcha.pretrain --glyphs data/glyphs/train --val-glyphs data/glyphs/val --out runs/glyphs
fi
# Two runs at a time, one thread each (on 2 cores this finishes sooner than one run of 2 threads).
run_one() {
  local recipe=$1 seed=$2 out=$RUNS/${1}_s${2}
  [ -f "$out/curves.png" ] && return 0      # finished already
  local extra=()
  [ "$recipe" = pre ] && extra=(--pretrained-backbone runs/glyphs/backbone.pt)
  [ -f "$out/last.pt" ] && extra+=(--resume)
  OMP_NUM_THREADS=1 python -m crnn_captcha.train --splits data/splits --out "$out" --epochs "$EPOCHS" \
    --seed "$seed" --threads 1 --no-progress --mix-prob "$MIX" "${extra[@]}" > "$RUNS/${recipe}_s${seed}.log" 2>&1
}
mkdir -p "$RUNS"
for seed in $SEEDS; do
  run_one scratch "$seed" &
  run_one pre "$seed" &
  wait
done
