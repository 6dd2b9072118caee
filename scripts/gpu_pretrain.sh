#!/usr/bin/env bash
# Pretrain the general reader on a lent GPU for a fixed number of minutes, adding to the run that
# earlier machines left in $RUN: the first call starts it from the shipped general reader ($INIT),
# every later call resumes it where the last one stopped (an epoch is the unit kept).
# Hands back, in $OUT: the run folder as run.tgz (one file: the lent machine returns few files,
# none deeper than two folders), its log and the GPU's utilisation, sampled every half second.
# Unpack it where the next call carries it from: mkdir -p runs/general && tar xzf run.tgz -C runs/general
#
#   bash scripts/gather_fonts.sh && bash scripts/gpu_wheels.sh        # here, once: fonts/ and .whl/ to carry
#   MINUTES=9 bash scripts/gpu_pretrain.sh                            # on the GPU machine, carrying fonts and .whl
#   RUN=runs/other MINUTES=9 VIEWS=1 bash scripts/gpu_pretrain.sh    # another run, each render trained on once
#   RUN=/tmp/gp MINUTES=1 OUT=/tmp/gp_out EXTRA="--device cpu --epoch-samples 256 --val-samples 32 \
#       --epochs 2" bash scripts/gpu_pretrain.sh                        # a dry run on a CPU
#
# The run takes the size of its start: conv channels 16-32-64-64-144 and 96 LSTM units, which read one
# image in about 1.5 ms on a 2-core CPU (docs/results.md, "A narrower general reader"); 200,000 fresh
# images an epoch, each trained on in 3 versions (--views 3 read more of the real captchas than the
# renders alone, for the same minutes of an H200), 200 epochs: about 3.9 hours of an H200, whose
# renderer feeds 3,700 images/s, so the schedule spans many lent GPUs.
set -euo pipefail
RUN=${RUN:-runs/general}
INIT=${INIT:-checkpoints/general.pt}   # what a new run starts from
MINUTES=${MINUTES:-8}
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
    args=(--out "$RUN" --resume --no-progress ${VIEWS:+--views "$VIEWS"})   # a resumed run keeps its own unless given
else
    args=(--out "$RUN" --stages sequence --init "$INIT" --epoch-samples 200000 --epochs 200 --batch-size 256
          --lr 2e-3 --views "${VIEWS:-3}" --no-progress)
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
