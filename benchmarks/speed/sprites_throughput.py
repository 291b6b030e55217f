"""Frames per second of the Sprites compositor, and the process's resident memory.

Times ``Sprites.sample`` (the training path: a batch of identities, N distinct poses each) and
the uint8 evaluation rendering used by ``pyro-dvae data export sprites``, for a few batch sizes.
Memory is the process's RSS (it includes torch itself, measured before the layers are loaded)
and its peak so far; the rows run in increasing batch size, so each peak is set by that row's
output tensor at most. Run on a quiet machine; other jobs lower the numbers.

    python benchmarks/speed/sprites_throughput.py                      # all cores torch uses
    OMP_NUM_THREADS=1 python benchmarks/speed/sprites_throughput.py --threads 1
    python benchmarks/speed/sprites_throughput.py --device cuda
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch

from pyro_dvae.data.sprites import Sprites, sprites_eval_sequences


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB (Linux /proc; peak via getrusage)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    try:
        with open("/proc/self/status") as f:
            current = next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        current = float("nan")
    return current, peak


def frames_per_second(render, n_frames: int, device: torch.device, min_seconds: float) -> float:
    """Repeat ``render()`` (which makes ``n_frames`` frames) for at least ``min_seconds``."""
    render()  # warm-up: first-touch page faults, CUDA kernels
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start, reps = time.perf_counter(), 0
    while True:
        render()
        reps += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return reps * n_frames / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--frames-per-set", type=int, default=8, help="N poses drawn per identity")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 128, 512], help="sets per batch")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timing per row")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch_rss, _ = rss_mb()
    start = time.perf_counter()
    ds = Sprites("train", device=device)
    seqs = sprites_eval_sequences("train", device=device)
    load_s = time.perf_counter() - start
    loaded_rss, loaded_peak = rss_mb()

    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, device {device},")
    layers_mb = ds.compositor.nbytes / 1e6
    print(f"# {torch.get_num_threads()} thread(s); layers {layers_mb:.0f} MB, loaded in {load_s:.2f} s")
    print(f"# RSS after importing torch {torch_rss:.0f} MB; after loading {loaded_rss:.0f} MB", end="")
    print(f" (peak {loaded_peak:.0f} MB)")
    print()
    print("| path | batch | frames/batch | frames/s | RSS MB | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    generator = torch.Generator(device=device).manual_seed(0)
    n = args.frames_per_set
    for batch in sorted(args.batch_sizes):
        fps = frames_per_second(lambda b=batch: ds.sample(b, n, generator), batch * n, device, args.seconds)
        print(f"| Sprites.sample float32, N={n} | {batch} | {batch * n} | {fps:,.0f} | %.0f | %.0f |" % rss_mb())
    for batch in sorted(args.batch_sizes):
        rows = slice(0, batch)
        fps = frames_per_second(lambda r=rows: seqs.frames(r, torch.uint8), batch * 8, device, args.seconds)
        print(f"| eval sequences uint8 (export) | {batch} | {batch * 8} | {fps:,.0f} | %.0f | %.0f |" % rss_mb())


if __name__ == "__main__":
    main()
