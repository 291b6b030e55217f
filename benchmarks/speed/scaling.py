"""Throughput and efficiency of data-parallel training on 1, 2, ... processes of this machine.

Each row is a real `pyro-dvae train --nproc N` run (torch.distributed, gloo on CPU, NCCL on CUDA;
one process per GPU) of a preset, timed by the trainer itself: the steps/s it logs, after the first
log window (start-up, first-touch allocation). Weak scaling (the default) keeps each rank's batch
fixed, so the global batch grows with N; strong scaling (--strong) splits one global batch.

    throughput = steps/s x global batch x frames per example       (frames/s)
    speed-up   = throughput(N) / throughput(1)
    efficiency = throughput(N) / (N x throughput(1))

On a CPU the processes share the cores (each gets cores / N threads), so the efficiency there
measures what the gradient all-reduce and the split cost, not a speed-up; on GPUs N devices work
at once. Run on a quiet machine:

    python benchmarks/speed/scaling.py                              # CPU: 1 and 2 processes
    python benchmarks/speed/scaling.py --device cuda --ranks 1 2 4 8 --preset paper
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from pyro_dvae.config import preset


def run(n: int, args, batch: int, workdir: Path) -> float:
    """Median steps/s of one `pyro-dvae train --nproc n` run (log windows after the first)."""
    out = workdir / f"ranks-{n}"
    config = workdir / "bench.toml"
    config.write_text(f"[train]\nlog_every = {args.log_every}\neval_every = 1000000\ncheckpoint_every = 1000000\n"
                      f"max_minutes = 0.0\neval_batches = 1\n")
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // n))}
    cmd = [sys.executable, "-m", "pyro_dvae", "train", "--data", args.data, "--preset", args.preset,
           "--model", args.model, "--config", str(config), "--steps", str(args.steps), "--batch-size", str(batch),
           "--device", args.device, "--nproc", str(n), "--quiet", "--out", str(out)]
    if args.model == "dvae":
        cmd += ["--f-prior", "standard-normal"]  # no p(f) fit after the timed steps
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["steps_per_s"] for r in records if r["split"] == "train"][1:]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--data", default="sprites")
    parser.add_argument("--model", default="dvae")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--strong", action="store_true", help="one global batch split over the ranks")
    args = parser.parse_args()
    cfg = preset(args.preset, args.data, args.model)
    per_rank, frames = cfg.train.batch_size, cfg.model.frames
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"machine: {platform.node()} | {os.cpu_count()} cores | device: {device} | torch {torch.__version__} | "
          f"{args.model} {args.preset} preset on {args.data} | {'strong' if args.strong else 'weak'} scaling\n")
    print("| ranks | global batch | steps/s | frames/s | speed-up | efficiency |")
    print("|---|---|---|---|---|---|")
    base = None
    with tempfile.TemporaryDirectory(prefix="pyro-dvae-scaling-") as tmp:
        for n in args.ranks:
            batch = per_rank if args.strong else per_rank * n
            if batch % n:
                sys.exit(f"batch {batch} does not split over {n} ranks; pick other --ranks")
            rate = run(n, args, batch, Path(tmp))
            throughput = rate * batch * frames
            base = base or throughput / n
            print(f"| {n} | {batch} | {rate:.2f} | {throughput:,.0f} | {throughput / base:.2f}x | "
                  f"{throughput / (n * base):.0%} |", flush=True)


if __name__ == "__main__":
    main()
