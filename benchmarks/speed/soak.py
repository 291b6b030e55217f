"""A long run of the default preset, watched: resident memory, steps/s and checkpoint time.

Trains ``preset("cpu", DATA)`` (the default `pyro-dvae train` run, without its 14.5-minute budget)
for ``--minutes`` in this process and prints a row every ``--every`` minutes: resident memory
(VmRSS), its growth since the row at ``--settle`` minutes (the first minutes fill the allocator's
caches, the data set and the optimiser state), steps/s over the interval, and the time of the
checkpoint writes in it. Run it on a quiet machine:

    python benchmarks/speed/soak.py --minutes 60                 # the hour the docs quote
    python benchmarks/speed/soak.py --minutes 0.3 --every 0.1 --preset tiny --data squares   # a smoke check
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from pyro_dvae.config import preset
from pyro_dvae.runs import read_metrics
from pyro_dvae.training import engine, train

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import machine, with_settings  # noqa: E402


def resident_mb() -> float:
    """This process's resident memory (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no /proc/self/status: the soak test reads resident memory on Linux")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=5.0, help="minutes between rows (default 5)")
    parser.add_argument("--settle", type=float, default=5.0, help="growth is measured from this row's minute")
    parser.add_argument("--data", default="sprites")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--out", type=Path, help="run directory (default: a temporary one)")
    args = parser.parse_args()

    config = with_settings(preset(args.preset, args.data), args.settings)
    config = config.override("train", steps=10**8, max_minutes=args.minutes, device="cpu")
    writes: list[float] = []
    save = engine.save_checkpoint

    def timed_save(*a, **k):
        begun = time.perf_counter()
        save(*a, **k)
        writes.append(time.perf_counter() - begun)

    engine.save_checkpoint = timed_save  # the engine's own writes, timed
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-")) / "run"
    rows: list[tuple[float, int, float]] = []  # (minute, step, resident MB)
    started = time.perf_counter()
    stop = threading.Event()

    def watch() -> None:
        seen = 0
        print("| minute | step | steps/s (interval) | resident MB | growth since settle "
              "| checkpoints: n, mean ms, max ms |")
        print("|---|---|---|---|---|---|")
        while not stop.wait(args.every * 60):
            minute = (time.perf_counter() - started) / 60
            logged = [m for m in read_metrics(out / "metrics.jsonl") if m["split"] == "train"]
            step = logged[-1]["step"] if logged else 0
            rss = resident_mb()
            last_minute, last_step = rows[-1][:2] if rows else (0.0, 0)
            rows.append((minute, step, rss))
            rate = (step - last_step) / ((minute - last_minute) * 60)
            settled = next((r for r in rows if r[0] >= args.settle - 1e-9), None)
            growth = f"{100 * (rss / settled[2] - 1):+.1f}%" if settled else "-"
            new = writes[seen:]
            seen = len(writes)
            timing = f"{len(new)}, {1000 * sum(new) / len(new):.0f}, {1000 * max(new):.0f}" if new else "0"
            print(f"| {minute:.1f} | {step} | {rate:.2f} | {rss:.0f} | {growth} | {timing} |", flush=True)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run = train(config, out, progress=False)
    stop.set()
    print(f"\nmachine: {machine()}")
    changed = f" with {', '.join(args.settings)}" if args.settings else ""
    print(f"{args.preset} preset on {args.data}{changed}: {run.step} steps in {args.minutes:g} minutes; run in {out}")
    settled = next((r for r in rows if r[0] >= args.settle - 1e-9), None)
    if settled and rows[-1] is not settled:
        print(f"resident memory {settled[2]:.0f} MB at minute {settled[0]:.1f} -> {rows[-1][2]:.0f} MB at minute "
              f"{rows[-1][0]:.1f}: {100 * (rows[-1][2] / settled[2] - 1):+.1f}%")


if __name__ == "__main__":
    main()
