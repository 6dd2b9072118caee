#!/usr/bin/env bash
# Ablation: CRNN trained from scratch vs from the leak-free glyph-pretrained backbone, 3 seeds each.
# Run from the repository root after scripts/split_data.py (data/splits). Each training run writes
# runs/<recipe>_s<seed>/metrics.jsonl; scripts/ablation_report.py turns them into the README table.
set -euo pipefail
SEEDS=${SEEDS:-"0 1 2"}
EPOCHS=${EPOCHS:-120}
if [ ! -f runs/glyphs/backbone.pt ]; then
  [ -d data/glyphs/train ] || python scripts/make_glyphs.py --split data/splits/train.csv --out data/glyphs/train
  [ -d data/glyphs/val ] || python scripts/make_glyphs.py --split data/splits/val.csv --out data/glyphs/val --copies 0
  python -m crnn_captcha.pretrain --glyphs data/glyphs/train --val-glyphs data/glyphs/val --out runs/glyphs
fi
for seed in $SEEDS; do
  for recipe in scratch pre; do
    out=runs/${recipe}_s${seed}
    [ -f "$out/curves.png" ] && continue      # finished already
    extra=()
    [ "$recipe" = pre ] && extra=(--pretrained-backbone runs/glyphs/backbone.pt)
    resume=()
    [ -f "$out/last.pt" ] && resume=(--resume)
    python -m crnn_captcha.train --splits data/splits --out "$out" --epochs "$EPOCHS" --seed "$seed" \
      --no-progress "${extra[@]}" "${resume[@]}"
  done
done
