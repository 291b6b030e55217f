"""Ablation of the DVAE's CPU preset on Sprites: what each change does to the five heads and to the step.

Every row is a configuration: the 0.1.0 ``cpu`` preset, or an earlier row with one change. Each is
trained once (seed 0) for the same budget, evaluated with the Sprites protocol of ``pyro-dvae
evaluate`` (docs/metrics.md), and timed on fixed data (seconds per step, nothing else running).
Finished rows are kept in ``--out`` and not trained again, so the script can be stopped and re-run;
``--rows`` picks rows by name. The table it prints is docs/ablation.md's.

    python benchmarks/results/ablation.py --steps 3000 --limit 900           # the table in docs/ablation.md
    python benchmarks/results/ablation.py --max-minutes 15 --rows "cpu preset (0.2)"   # one row, a time budget
    python benchmarks/results/ablation.py --timing-only                       # just the s/step column
    python benchmarks/results/ablation.py --table                             # print what --out holds

A row's s/step is measured once, when it is trained (or again with ``--timing-only``).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import time
from pathlib import Path

import pyro
import torch

from pyro_dvae import train
from pyro_dvae.config import RunConfig
from pyro_dvae.evaluation import evaluate_run, load_judge
from pyro_dvae.models import get_family

# The 0.1.0 cpu preset, spelled out so that the table's first row does not move with the preset.
BASELINE = {
    "model": dict(family="dvae", image_size=32, f_dim=64, z_dim=2, frames=3, conv_width=64, pair_width=64,
                  hidden=256, likelihood="bernoulli"),
    "train": dict(steps=14_000, batch_size=32, lr=1e-3, kl_warmup=500, log_every=50, eval_every=1000,
                  checkpoint_every=500),
    "data": dict(source="sprites"),
}

# (row name, the row it changes or None for BASELINE, the change: {section: {field: value}})
ROWS: list[tuple[str, str | None, dict]] = [
    ("0.1.0 cpu preset", None, {}),
    ("Gaussian likelihood, learned scale", "0.1.0 cpu preset", {"model": {"likelihood": "gaussian"}}),
    ("Gaussian likelihood, scale 0.1", "0.1.0 cpu preset",
     {"model": {"likelihood": "gaussian", "pixel_scale": 0.1}}),
    ("Gaussian (linear mean), scale 0.1", "0.1.0 cpu preset",
     {"model": {"likelihood": "gaussian-linear", "pixel_scale": 0.1}}),
    ("Gaussian (linear mean), scale 0.05", "0.1.0 cpu preset",
     {"model": {"likelihood": "gaussian-linear", "pixel_scale": 0.05}}),
    ("continuous Bernoulli likelihood", "0.1.0 cpu preset", {"model": {"likelihood": "continuous-bernoulli"}}),
    ("z_dim 8", "0.1.0 cpu preset", {"model": {"z_dim": 8}}),
    ("z_dim 4", "0.1.0 cpu preset", {"model": {"z_dim": 4}}),
    ("z_dim 8, p(z) = N(0, I)", "z_dim 8", {"model": {"z_prior": "standard-normal"}}),
    ("f_dim 16", "0.1.0 cpu preset", {"model": {"f_dim": 16}}),
    ("FiLM decoder", "0.1.0 cpu preset", {"model": {"decoder": "film"}}),
    ("flow p(f)", "0.1.0 cpu preset", {"model": {"f_prior": "flow"}}),
    ("flow p(f) + Gaussian (linear mean), scale 0.05", "flow p(f)",
     {"model": {"likelihood": "gaussian-linear", "pixel_scale": 0.05}}),
    ("flow p(f) + FiLM decoder", "flow p(f)", {"model": {"decoder": "film"}}),
    ("16x16 frames", "0.1.0 cpu preset", {"model": {"image_size": 16}}),
    ("16x16 frames, the minutes of 3000 steps at 32x32", "16x16 frames", {"train": {"steps": 10_000}}),
    ("learning rate 2e-3", "0.1.0 cpu preset", {"train": {"lr": 2e-3}}),
    ("N = 5 frames", "0.1.0 cpu preset", {"model": {"frames": 5}}),
]


def slug(name: str) -> str:
    """The row's folder name (unique: row names are)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def row_config(name: str) -> dict:
    rows = {row[0]: row for row in ROWS}
    _, parent, change = rows[name]
    config = copy.deepcopy(BASELINE) if parent is None else row_config(parent)
    for section, values in change.items():
        config[section].update(values)
    return config


def _changed(name: str) -> set[str]:
    """The train fields a row or its parents change."""
    rows = {row[0]: row for row in ROWS}
    _, parent, change = rows[name]
    return set(change.get("train", {})) | (_changed(parent) if parent else set())


def seconds_per_step(config: RunConfig, steps: int = 20) -> float:
    """One training step on fixed random frames, as the trainer does it (no data rendering)."""
    torch.manual_seed(0)
    family = get_family(config.model.family)
    model = family.build(config.model)
    plan = family.plan_class(model, config.train)
    m = config.model
    x = torch.rand(config.train.batch_size, m.frames, 3, m.image_size, m.image_size)
    with pyro.validation_enabled(False):
        for i in range(steps + 3):
            if i == 3:
                start = time.perf_counter()
            plan.step(x, 10**6)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="training steps per row")
    parser.add_argument("--max-minutes", type=float, help="a wall-clock budget per row instead of --steps")
    parser.add_argument("--limit", type=int, help="evaluate the first N test sequences (default: all 2664)")
    parser.add_argument("--seeds", type=int, default=1, help="evaluation seeds per row")
    parser.add_argument("--rows", nargs="+", help="row names to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--judge", type=Path, help="judge file (default: the cached default judge)")
    parser.add_argument("--timing-only", action="store_true", help="only measure s/step")
    parser.add_argument("--table", action="store_true", help="train and time nothing: print the rows in --out")
    args = parser.parse_args()
    names = args.rows or [row[0] for row in ROWS]
    unknown = set(names) - {row[0] for row in ROWS}
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}")
    judge = load_judge(args.judge) if args.judge else None
    budget = {"max_minutes": args.max_minutes, "steps": 10**7} if args.max_minutes else {"steps": args.steps}

    table = []
    for name in names:
        settings = row_config(name)
        # A row that sets its own step count (a same-minutes comparison) keeps it under --steps.
        own = {"steps": settings["train"]["steps"]} if "steps" in _changed(name) and not args.max_minutes else {}
        config = RunConfig.from_dict(settings).override("train", device="cpu", **{**budget, **own})
        folder = args.out / slug(name)
        result_file = folder / "ablation.json"
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        if args.table:
            table.append((name, result))
            continue
        if not args.timing_only and "metrics" not in result:
            if folder.exists():
                import shutil

                shutil.rmtree(folder)  # an interrupted row starts again
            start = time.perf_counter()
            run = train(config, folder, progress=True)
            minutes = (time.perf_counter() - start) / 60
            report = evaluate_run(run, seeds=args.seeds, judge=judge, limit=args.limit)
            result = {"steps": run.step, "train_minutes": minutes, "n_sequences": report["n_sequences"],
                      "metrics": {f"{s}.{m}": v["mean"] for s, ms in report["metrics"].items() for m, v in ms.items()}}
        if args.timing_only or "s_per_step" not in result:
            result["s_per_step"] = seconds_per_step(config)
        folder.mkdir(parents=True, exist_ok=True)
        result_file.write_text(json.dumps(result, indent=2) + "\n")
        table.append((name, result))

    print(f"\n{torch.__version__=} {pyro.__version__=} threads={torch.get_num_threads()}")
    print("| change | steps | s/step | action (f resampled) | skin | pants | top | hair (z resampled) "
          "| swap: A's attributes | swap: B's action | PSNR |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in table:
        m, timing = r.get("metrics"), f"{r['s_per_step']:.3f}" if "s_per_step" in r else ""
        if not m:
            print(f"| {name} | not run | {timing} | | | | | | | | |")
            continue
        swap_attrs = sum(m[f"swap.{a}"] for a in ("skin", "pants", "top", "hair")) / 4
        heads = " | ".join(f"{100 * m[k]:.1f}" for k in (
            "dynamics_kept.action_accuracy", "static_kept.skin", "static_kept.pants", "static_kept.top",
            "static_kept.hair"))
        print(f"| {name} | {r['steps']} | {timing} | {heads} | {100 * swap_attrs:.1f} | "
              f"{100 * m['swap.action']:.1f} | {m['reconstruction.psnr']:.1f} |")


if __name__ == "__main__":
    main()
