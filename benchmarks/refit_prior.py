"""The two-stage p(f) on finished runs: fit the `fitted-flow` prior to a trained DVAE run exactly
as the trainer does when a run with that prior ends, then evaluate it with the Sprites protocol.

A run trained with p(f) = N(0, I) and one trained with ``f_prior = "fitted-flow"`` train bitwise
alike (the flow is built from a forked random stream and p(f) is N(0, I) in training mode), so
this measures what the current default would have given on runs made before it, without training
them again. Writes RUN/evaluation-fitted-flow.json and prints the heads; the run is not changed.

    python benchmarks/refit_prior.py runs/quality-dvae-*/seed0 runs/quality-dvae-*/seed1 --seeds 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from quality import HEADS, machine, spread

from pyro_dvae import load_run
from pyro_dvae.evaluation import evaluate_run
from pyro_dvae.priors import FittedFlowFPrior
from pyro_dvae.training import fit_static_prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories of DVAE runs on Sprites")
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seeds")
    parser.add_argument("--limit", type=int, help="evaluate only the first N test sequences")
    args = parser.parse_args()
    results = []
    for folder in args.runs:
        run = load_run(folder)
        cfg = run.config
        run.model.f_prior = FittedFlowFPrior(cfg.model).to(run.device)
        start = time.perf_counter()
        sets, log_density = fit_static_prior(run.model, run.data("train"), cfg.model.frames, cfg.train.seed + 4,
                                             cfg.train.batch_size)
        print(f"{folder}: fitted to {sets} codes in {time.perf_counter() - start:.1f} s "
              f"(mean log-density {log_density:.1f})")
        run.model.eval()
        report = evaluate_run(run, seeds=args.seeds, limit=args.limit)
        (folder / "evaluation-fitted-flow.json").write_text(json.dumps(report, indent=2) + "\n")
        results.append({f"{s}.{m}": v["mean"] for s, ms in report["metrics"].items() for m, v in ms.items()})

    print(f"\nmachine: {machine()}; {len(results)} run(s) x {args.seeds} evaluation seed(s)\n")
    names = [("dynamics_kept.action_accuracy", 100, 1, "action (f resampled) %"), ("dynamics_kept.is", 1, 3, "IS"),
             ("dynamics_kept.h_y_given_x", 1, 3, "H(y|x)"), ("dynamics_kept.h_y", 1, 3, "H(y)"),
             *((f"{s}.{m}", 100, 1, label + " %") for s, m, label in HEADS[1:]),
             ("swap.action", 100, 1, "swap: B's action %")]
    print("| " + " | ".join(label for *_, label in names) + " |")
    print("|" + "---|" * len(names))
    print("| " + " | ".join(spread([r[key] for r in results], scale, digits) for key, scale, digits, _ in names)
          + " |")


if __name__ == "__main__":
    main()
