#!/bin/bash
# Data-parallel training of the paper preset on 2 nodes x 4 GPUs under SLURM: one torchrun per node,
# which starts one worker per GPU and meets the other nodes through its c10d rendezvous on the first
# node. --batch-size is the global batch (here 8 x 15 = 120, the paper's); every worker trains on
# 15 sets per step. The run directory must be on a file system that every node sees: rank 0 writes
# it, and every rank reads the checkpoint when the job is resubmitted with --resume.
#
#   sbatch examples/slurm-multinode.sh                     # a new run
#   RESUME=1 sbatch examples/slurm-multinode.sh            # continue it (same number of GPUs: bit-exact)
#
#SBATCH --job-name=pyro-dvae
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=04:00:00
set -euo pipefail

GPUS_PER_NODE=4
OUT=${OUT:-runs/sprites-paper-ddp}
HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export OMP_NUM_THREADS=$((SLURM_CPUS_PER_TASK / GPUS_PER_NODE))

if [[ -n "${RESUME:-}" ]]; then
    ARGS=(train --resume "$OUT")
else
    ARGS=(train --data sprites --preset paper --batch-size 120 --out "$OUT")
fi

srun torchrun \
    --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS_PER_NODE" \
    --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d --rdzv_endpoint "$HEAD_NODE:29500" \
    -m pyro_dvae "${ARGS[@]}"
