#!/usr/bin/env bash
# Download, here, the wheels of the library's dependencies that a lent GPU machine lacks (it has
# PyTorch, NumPy, OpenCV, Pillow, SciPy and PyYAML, Python 3.12, and no network), into .whl/ (add it
# to .git/info/exclude), to carry there; scripts/gpu_pretrain.sh installs them where it finds them.
#
#   bash scripts/gpu_wheels.sh [FOLDER]
set -euo pipefail
out=${1:-.whl}
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
    -d "$out" albumentations==2.0.8 albucore==0.0.24 pydantic==2.13.4 pydantic_core==2.46.4 annotated-types==0.7.0 \
    typing-inspection==0.4.2 typing_extensions==4.16.0 editdistance==0.8.1 simsimd==6.5.16 stringzilla==5.3.2
echo "$(ls "$out"/*.whl | wc -l) wheels, $(du -sh "$out" | cut -f1), in $out"
