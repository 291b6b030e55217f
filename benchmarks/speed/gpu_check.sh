#!/usr/bin/env bash
# The checks to run where a CUDA GPU is at hand (about 5 minutes on one H100), from the repository
# root with the package installed: the tests marked `gpu`, the step-time tables the README quotes
# (both Pyro families, every fast-path option), and the default run end to end (train, evaluate).
#
#     bash benchmarks/speed/gpu_check.sh              # MINUTES=2 by default: the end-to-end run's budget
set -u
export PYTHONUNBUFFERED=1
minutes=${MINUTES:-2}
run=${RUN:-runs/gpu-check-$(date +%Y%m%d-%H%M%S)}

python -m pytest -q -m gpu -rs -p no:cacheprovider
python benchmarks/speed/step_time.py --device cuda --presets paper
python benchmarks/speed/step_time.py --device cuda --presets cpu --only "plain torch (floor)" "pyro (trainer)" \
    "pyro (trainer) + bf16" "pyro (trainer) + channels_last"
python benchmarks/speed/step_time.py --device cuda --models dsa --presets paper cpu --only "pyro (trainer)" \
    "pyro (trainer) + bf16" "pyro (trainer) + channels_last"
# `--device auto` (the default of both commands) picks the GPU, and train then the paper preset.
pyro-dvae train --data sprites --out "$run" --max-minutes "$minutes" --quiet
time pyro-dvae evaluate "$run" --seeds 1 --quiet
