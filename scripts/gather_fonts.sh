#!/usr/bin/env bash
# Copy the font files the synthetic captchas are drawn with into one folder (default fonts/, which
# git ignores), to carry to a machine that cannot install them, such as a lent GPU machine, where
# scripts/gpu_pretrain.sh puts them in ~/.fonts for the renderer to find. Install them first (Debian;
# each package's licence is printed by `python -m crnn_captcha.synth`, one line a font):
#
#   apt-get install fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-urw-base35 fonts-comic-neue \
#       fonts-wqy-microhei fonts-roboto-unhinted fonts-open-sans fonts-crosextra-caladea
#   bash scripts/gather_fonts.sh [FOLDER]
set -euo pipefail
out=${1:-fonts}
mkdir -p "$out"
fc-list --format '%{file}\n' \
    | grep -E 'dejavu|liberation|freefont|urw-base35|comic-neue|wqy|roboto|open-sans|caladea' \
    | grep -E '\.(ttf|otf|ttc)$' | sort -u | while read -r f; do cp -p "$f" "$out/"; done
echo "$(ls "$out" | wc -l) font files, $(du -sh "$out" | cut -f1), in $out"
