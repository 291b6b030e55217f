#!/usr/bin/env bash
# Screen `cpu`-preset variants on one CUDA GPU, many runs at once, each trained to the steps it makes
# in 15 minutes on a 2-core CPU (docs/ablation.md, "Moving MNIST: f in every deconvolution"), then
# evaluated with two evaluation seeds; and the Sprites quality curve's seeds 1-2 at seed 0's step
# counts. Prints one line per run; the runs stay in $ROOT. About 7 minutes on one H100.
#
#     bash benchmarks/gpu_screen.sh                 # every run below
#     ROOT=runs/screen bash benchmarks/gpu_screen.sh
#
# The step counts are 5,800 (the preset's 15 minutes on the 2-core AMD EPYC VM, 6.2 steps/s) times
# each variant's steps per second over the preset's, both timed there over 300 steps
# (`pyro-dvae train --data moving-mnist-1 --steps 300 [change]`, then `steps_per_s` in metrics.jsonl).
set -u
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
root=${ROOT:-runs/gpu-screen-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$root"
# CUDA MPS lets the small runs' kernels overlap; without it they take turns on the GPU.
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mpslog
mkdir -p /tmp/mps /tmp/mpslog && nvidia-cuda-mps-control -d 2>/dev/null || unset CUDA_MPS_PIPE_DIRECTORY

mnist() {  # name seed steps [flags...]
  local name=$1 seed=$2 steps=$3 dir="$root/mm-$1-s$2"; shift 3
  pyro-dvae train --data moving-mnist-1 --preset cpu --device cuda --seed "$seed" --steps "$steps" --max-minutes 0 \
    --out "$dir" --quiet "$@" > "$dir.log" 2>&1 && pyro-dvae evaluate "$dir" --seeds 2 --quiet >> "$dir.log" 2>&1
  echo "$name seed $seed, $steps steps: $(grep -E '^swap\.(digit|position_error_px) ' "$dir.log" | tr -s ' ' | tr '\n' ' ')"
}
# seed steps...: one run evaluated at each step count: seed 0's 5- and 30-minute counts, and 22,713,
# the previous preset's hour (the runs docs/ablation.md reports; seed 0 of this preset made 21,695).
sprites() {
  local seed=$1 dir="$root/sprites-s$1"; shift
  for steps in "$@"; do
    if [ -d "$dir" ]; then pyro-dvae train --resume "$dir" --device cuda --steps "$steps" --quiet >> "$dir.log" 2>&1
    else pyro-dvae train --data sprites --preset cpu --device cuda --seed "$seed" --steps "$steps" --max-minutes 0 \
           --out "$dir" --quiet > "$dir.log" 2>&1; fi
    pyro-dvae evaluate "$dir" --seeds 3 --quiet --out "$dir-eval-$steps.json" >> "$dir.log" 2>&1
    echo "sprites seed $seed at $steps steps: $dir-eval-$steps.json"
  done
}

film="--model-option decoder=film"
sprites 1 1727 10515 22713 &
sprites 2 1727 10515 22713 &
mnist preset 0 5800 --model-option decoder=mlp --model-option conv_width=64 &
mnist preset-10k 0 10000 --model-option decoder=mlp --model-option conv_width=64 &
mnist preset-20k 0 20000 --model-option decoder=mlp --model-option conv_width=64 &
mnist lr2e-3 0 5800 --model-option decoder=mlp --model-option conv_width=64 --lr 2e-3 &
mnist meanfield 0 5520 --model-option decoder=mlp --model-option conv_width=64 --elbo meanfield &
mnist batch16 0 10150 --model-option decoder=mlp --model-option conv_width=64 --batch-size 16 &
mnist width32 0 15150 --model-option decoder=mlp &
mnist film 0 5500 $film --model-option conv_width=64 &
mnist film 1 5500 $film --model-option conv_width=64 &
mnist film-width32 0 13400 $film &
mnist film-width32 1 13400 $film &
mnist film-width48 0 6940 $film --model-option conv_width=48 &
wait
