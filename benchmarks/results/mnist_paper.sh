#!/usr/bin/env bash
# The paper's Moving MNIST experiment on its own data format (issue 34, item 4): 64x64 frames,
# 20-frame sequences read from a file in the public file's layout, trained for a wall-clock budget,
# evaluated label-free, and the paper's Fig. 3 (latent manifold) and Fig. 4b (dynamics trace) drawn.
# Run from the repository root with the package installed, on a quiet machine:
#
#     bash benchmarks/results/mnist_paper.sh                        # 60 CPU minutes, seed 0
#     MINUTES=0.2 SEQUENCES=200 LIMIT=8 EVAL_SEEDS=1 PRESET=tiny bash benchmarks/results/mnist_paper.sh   # a smoke check
#
# The public mnist_test_seq.npy cannot be downloaded everywhere: the generator writes the same
# layout (`pyro-dvae data export moving-mnist`, digit images of the test split), and a run on a file
# of that name gets the two-digit preset and the label-free protocol, as a run on the real file does.
# Put the real file at OUT/data/mnist_test_seq.npy first to use it instead.
set -euo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:-runs/mnist-paper}
file="$out/data/mnist_test_seq.npy"
limit=()
if [[ -n "${LIMIT:-}" ]]; then limit=(--limit "$LIMIT"); fi
if [[ ! -f "$file" ]]; then
    pyro-dvae data export moving-mnist --out "$out/data" --sequences "${SEQUENCES:-10000}"
fi
if [[ ! -f "$out/run/checkpoint.pt" ]]; then
    pyro-dvae train --data "$file" --preset "${PRESET:-cpu}" --image-size 64 --max-minutes "${MINUTES:-60}" \
        --seed "${SEED:-0}" --device "${DEVICE:-auto}" --out "$out/run"
fi
pyro-dvae evaluate "$out/run" --seeds "${EVAL_SEEDS:-3}" "${limit[@]}"
pyro-dvae inspect "$out/run" --out "$out/inspect"
echo "figures: $out/inspect/latent_manifold.png (Fig. 3), $out/inspect/dynamics_trace.png (Fig. 4b)"
