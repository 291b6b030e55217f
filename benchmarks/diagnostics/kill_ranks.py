"""Fault drill for data-parallel training: kill -9 one rank at random points, resume, compare.

Trains a reference run on ``--nproc`` processes (`pyro-dvae train --nproc N`), then the same run
again, killing one randomly chosen worker with SIGKILL at a random moment ``--kills`` times. After
each kill the command must end with one line naming the killed rank and the kept checkpoint; the
run is then continued with `--resume` on as many processes, until it reaches the reference's
steps, and its weights must equal the reference's bit for bit. Prints one row per kill. Takes a
few minutes on the tiny preset:

    python benchmarks/diagnostics/kill_ranks.py                       # 5 kills, 2 processes, tiny preset
    python benchmarks/diagnostics/kill_ranks.py --kills 3 --steps 600
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pyro_dvae.runs import load_run

STARTUP_S = 4.0  # seconds before a launch of the tiny preset trains: processes, imports, data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import machine  # noqa: E402


def workers_of(launcher: int) -> list[int]:
    """PIDs of the processes whose parent is ``launcher`` and that carry a RANK (the workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == launcher and b"RANK=" in environ:
            found.append(int(entry.name))
    return sorted(found)


def rank_of(pid: int) -> int:
    for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if item.startswith(b"RANK="):
            return int(item[5:])
    raise RuntimeError(f"process {pid} has no RANK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="of the kill times and victims")
    parser.add_argument("--out", type=Path, help="folder of the two runs (default: a temporary one)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = args.out or Path(tempfile.mkdtemp(prefix="kill-ranks-"))
    base = [sys.executable, "-m", "pyro_dvae", "train", "--nproc", str(args.nproc), "--quiet"]
    new = ["--data", "squares", "--preset", "tiny", "--data-option", "num_sets=64", "--steps", str(args.steps)]
    started = time.perf_counter()
    subprocess.run([*base, *new, "--out", str(root / "reference")], check=True, capture_output=True)
    reference_s = time.perf_counter() - started
    print(f"machine: {machine()}\nreference: {args.steps} steps on {args.nproc} processes in {reference_s:.0f} s\n")
    print("| kill | after s | rank killed | exit | last line | checkpoint step |")
    print("|---|---|---|---|---|---|")
    run, command, step = root / "run", [*base, *new, "--out", str(root / "run")], None
    for kill in range(1, args.kills + 1):
        launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # After start-up (a few seconds), somewhere in the steps this launch still has to train.
        remaining = args.steps - (step or 0)
        wait = STARTUP_S + rng.uniform(0.1, 0.6) * (reference_s - STARTUP_S) * remaining / args.steps
        time.sleep(wait)
        workers = workers_of(launcher.pid)
        if launcher.poll() is not None or not workers:
            raise SystemExit(f"kill {kill}: the run ended before it could be killed; raise --steps")
        victim = rng.choice(workers)
        rank = rank_of(victim)
        os.kill(victim, signal.SIGKILL)
        out, err = launcher.communicate(timeout=600)
        last = [line for line in (out + err).splitlines() if line.strip()][-1]
        step = load_run(run).step if (run / "checkpoint.pt").is_file() else None
        print(f"| {kill} | {wait:.1f} | {rank} | {launcher.returncode} | {last} | {step} |", flush=True)
        claims = "last checkpoint" in last
        if launcher.returncode != 1 or f"rank {rank} was killed" not in last or claims != (step is not None):
            raise SystemExit(f"kill {kill}: expected exit 1 and a line naming rank {rank} that claims a "
                             "checkpoint exactly when one exists")
        command = [*base, "--resume", str(run), "--steps", str(args.steps)] if step else command
    subprocess.run(command, check=True, capture_output=True)  # to the end: resumed, or anew if never saved
    ours, theirs = load_run(run), load_run(root / "reference")
    equal = all(torch.equal(a, b) for a, b in zip(ours.model.state_dict().values(),
                                                   theirs.model.state_dict().values(), strict=True))
    print(f"\nafter {args.kills} kills and resumes: step {ours.step}; weights equal to the uninterrupted "
          f"run's: {equal}")
    if not equal:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
