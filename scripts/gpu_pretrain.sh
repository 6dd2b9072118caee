#!/usr/bin/env bash
# Pretrain the general reader on a lent GPU for a fixed number of minutes, adding to the run that
# earlier machines left in $RUN (git keeps its resumable state): the first call starts it from the
# shipped general reader ($INIT); every later call resumes it and adds $MORE epochs, so that its
# learning rate rises again and ends low within the call (flat for half the epochs, then a cosine).
# Hands back, in $OUT: the run folder as run.tgz (one file: the lent machine returns few files,
# none deeper than two folders), its log and the GPU's utilisation, sampled every half second.
# Unpack it here before the next call, also a second call on the same machine: each call sends
# this checkout's $RUN, which replaces the one the machine has.
#   mkdir -p runs/general && tar xzf FILES_AT/run.tgz -C runs/general
#
#   bash scripts/gather_fonts.sh && bash scripts/gpu_wheels.sh        # here, once: fonts/ and .whl/ to carry
#   MINUTES=9 bash scripts/gpu_pretrain.sh                            # on the GPU machine, carrying fonts and .whl
#   RUN=runs/other MINUTES=9 VIEWS=1 bash scripts/gpu_pretrain.sh    # another run, each render trained on once
#   RUN=runs/wide MINUTES=9 EXTRA="--sequence-width 192 --x-scale 1.5" bash scripts/gpu_pretrain.sh  # wider input
#   RUN=/tmp/gp MINUTES=1 OUT=/tmp/gp_out EXTRA="--device cpu --epoch-samples 256 --val-samples 32 \
#       --epochs 2" bash scripts/gpu_pretrain.sh                        # a dry run on a CPU
#
# The run takes the size of its start: conv channels 16-32-64-64-144 and 96 LSTM units, which read one
# image in 1.4-2.0 ms on a 2-core CPU (docs/results.md). 8 epochs of 180,000 fresh images, each trained
# on in 3 versions (--views 3 read more of the real captchas than the renders alone, for the same
# minutes of an H200), take about 6.5 minutes of an H200, whose renderer draws about 3,700-4,200
# captchas a second (docs/results.md, "The general reader pretrained on one H200").
set -euo pipefail
RUN=${RUN:-runs/general}
INIT=${INIT:-checkpoints/general.pt}   # what a new run starts from
MINUTES=${MINUTES:-8}
MORE=${MORE:-8}      # epochs a resumed run adds: 8 of 180,000 fit a 9-minute call on an H200
OUT=${OUT:-/tmp/gpu_pretrain_out}
FONTS=${FONTS:-fonts}   # carried font files (scripts/gather_fonts.sh): the renderer finds them in ~/.fonts
WHEELS=${WHEELS:-.whl}  # carried wheels (scripts/gpu_wheels.sh) of the dependencies the lent machine lacks
mkdir -p "$OUT"
# the lent machine's PyTorch lives in this environment; elsewhere the python on the PATH is used
[ -x /opt/torch/.venv/bin/python ] && export PATH=/opt/torch/.venv/bin:$PATH
export PYTHONUNBUFFERED=1
if ! python -c "import albumentations, editdistance" 2> /dev/null && compgen -G "$WHEELS/*.whl" > /dev/null; then
    python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
    export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -d "$FONTS" ]; then
    mkdir -p ~/.fonts && cp -p "$FONTS"/* ~/.fonts/
    echo "$(ls "$FONTS" | wc -l) font files from $FONTS put in ~/.fonts" | tee "$OUT/pretrain.log"
fi

if [ -f "$RUN/sequence/last.pt" ]; then
    done_epochs=$(python -c 'import json, sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["epoch"])' \
        "$RUN/sequence/metrics.jsonl")
    # a resumed run keeps its own settings (seed, batch, epoch size) unless given
    args=(--out "$RUN" --resume --epochs "$((done_epochs + MORE))" --no-progress ${VIEWS:+--views "$VIEWS"})
else
    args=(--out "$RUN" --stages sequence --init "$INIT" --epoch-samples 180000 --epochs "$MORE" --batch-size 256
          --lr 2e-3 --views "${VIEWS:-3}" --seed 11 --no-progress)
fi
# shellcheck disable=SC2206
args+=(${EXTRA:-})

sampler=""
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 > "$OUT/gpu_util.csv" &
    sampler=$!
fi
start=$(date +%s)
status=0
timeout --signal=INT "$((MINUTES * 60))" python -m crnn_captcha.pretrain "${args[@]}" >> "$OUT/pretrain.log" 2>&1 || status=$?
[ -n "$sampler" ] && kill "$sampler" 2> /dev/null || true
echo "pretrain exit status $status after $(( $(date +%s) - start )) s (124: stopped at the time limit, as planned)" | tee -a "$OUT/pretrain.log"
tar czf "$OUT/run.tgz" -C "$RUN" .
tail -n 3 "$OUT/pretrain.log"
