#!/usr/bin/env bash
# The paper preset on one GPU: train Sprites with bf16 autocast in chunks of wall-clock time,
# evaluate after each, and print the quality-against-minutes table with the minutes at which every
# head first reaches 95% and 99% (benchmarks/results/quality.py --curve). Run from the repository
# root with the package installed, nothing else on the GPU:
#
#     bash benchmarks/speed/gpu_paper.sh                      # marks 2 5 10 20 40 minutes, 1 seed
#     MARKS="0.2 0.4" PRESET=tiny DEVICE=cpu LIMIT=18 bash benchmarks/speed/gpu_paper.sh   # a CPU smoke check
#
# A run continues across calls that pass the same OUT (only unevaluated seeds are trained), so a
# lease that ends early loses at most one chunk.
set -euo pipefail
export PYTHONUNBUFFERED=1
preset=${PRESET:-paper}
device=${DEVICE:-cuda}
out=${OUT:-runs/gpu-${preset}-$(date +%Y%m%d-%H%M%S)}
limit=()
if [[ -n "${LIMIT:-}" ]]; then limit=(--limit "$LIMIT"); fi
precision='"bf16"'
if [[ "$device" == cpu ]]; then precision='"fp32"'; fi  # bf16 autocast is slow without AVX-512 BF16
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
# shellcheck disable=SC2086  # MARKS is a list of numbers
python benchmarks/results/quality.py --preset "$preset" --device "$device" --set "train.precision=$precision" \
    --curve ${MARKS:-2 5 10 20 40} --train-seeds "${SEEDS:-1}" --seeds "${EVAL_SEEDS:-3}" --out "$out" "${limit[@]}"
