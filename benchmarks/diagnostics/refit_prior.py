"""The two-stage priors on finished runs: fit p(f) (`fitted-flow`) and/or p(z | f)
(`fitted-aggregate`) to a trained DVAE run exactly as the trainer does when a run with that prior
ends, or put a two-stage prior back to the density it trained with, then evaluate the run with the
Sprites protocol.

A run trained with a two-stage prior trains bitwise like one trained with the paper's prior (p(f)
= N(0, I), p(z | f) the conditional Gaussian: the fitted parts are used outside training only), so
this measures what a prior would have given on a run made without it, without training again.
Writes RUN/evaluation-<what changed>.json and prints the heads; the run directory's checkpoint is
not changed.

    python benchmarks/diagnostics/refit_prior.py runs/quality-dvae-*/seed0 --seeds 2                  # fit p(f)
    python benchmarks/diagnostics/refit_prior.py RUN --f-prior keep --z-prior fitted-aggregate        # fit p(z | f)
    python benchmarks/diagnostics/refit_prior.py RUN --f-prior keep --z-prior as-trained --seeds 1    # its Gaussian
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import HEADS, machine, spread  # noqa: E402

from pyro_dvae import load_run
from pyro_dvae.data.sprites import ATTRIBUTES
from pyro_dvae.evaluation import evaluate_run
from pyro_dvae.priors import FittedAggregateZPrior, FittedFlowFPrior

F_CHOICES = {"fitted-flow": "fit the flow p(f) to the posterior codes", "keep": "the run's own p(f)"}
Z_CHOICES = {"keep": "the run's own p(z | f)",
             "fitted-aggregate": "fit the aggregate posterior of 4096 training frames",
             "as-trained": "a two-stage p(z | f) as it was in training (the paper's Gaussian)"}


def refit(run, f_prior: str, z_prior: str) -> None:
    """Change the run's priors in place; the random streams are the trainer's (seed + 4, seed + 5)."""
    cfg, model = run.config, run.model
    if f_prior == "fitted-flow":
        model.f_prior = FittedFlowFPrior(cfg.model).to(run.device)
        start = time.perf_counter()
        line = model.f_prior.fit_after_training(model, run.data("train"), cfg.model.frames, cfg.train.seed + 4,
                                                cfg.train.batch_size)
        print(f"{line}, in {time.perf_counter() - start:.1f} s")
    if z_prior == "fitted-aggregate":
        trained = model.z_prior
        aggregate = FittedAggregateZPrior(cfg.model).to(run.device)
        # The conditional Gaussian's weights carry over; only the exemplars are new.
        missing, unexpected = aggregate.load_state_dict(trained.state_dict(), strict=False)
        if unexpected or set(missing) - {"exemplar_loc", "exemplar_scale", "fitted"}:
            raise SystemExit(f"the run's p(z | f) is not the paper's conditional Gaussian "
                             f"({type(trained).__name__}); use --z-prior keep")
        model.z_prior = aggregate
        start = time.perf_counter()
        line = aggregate.fit_after_training(model, run.data("train"), cfg.model.frames, cfg.train.seed + 5,
                                            cfg.train.batch_size)
        print(f"{line}, in {time.perf_counter() - start:.1f} s")
    if z_prior == "as-trained":
        if not hasattr(model.z_prior, "is_fitted"):
            raise SystemExit(f"the run's p(z | f) ({type(model.z_prior).__name__}) has no fitted stage; "
                             "use --z-prior keep")
        model.z_prior.is_fitted = False
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories of DVAE runs on Sprites")
    parser.add_argument("--f-prior", choices=F_CHOICES, default="fitted-flow",
                        help="; ".join(f"{k}: {v}" for k, v in F_CHOICES.items()) + " (default: fitted-flow)")
    parser.add_argument("--z-prior", choices=Z_CHOICES, default="keep",
                        help="; ".join(f"{k}: {v}" for k, v in Z_CHOICES.items()) + " (default: keep)")
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seeds")
    parser.add_argument("--limit", type=int, help="evaluate only the first N test sequences")
    args = parser.parse_args()
    # What changed names the report: evaluation-fitted-flow.json, evaluation-z-as-trained.json, ...
    changed = ([] if args.f_prior == "keep" else [args.f_prior]) + \
        {"keep": [], "fitted-aggregate": ["fitted-aggregate"], "as-trained": ["z-as-trained"]}[args.z_prior]
    if not changed:
        parser.error("nothing to refit: give --f-prior fitted-flow or a --z-prior other than keep")
    results = []
    for folder in args.runs:
        run = load_run(folder)
        print(f"{folder}:")
        refit(run, args.f_prior, args.z_prior)
        report = evaluate_run(run, seeds=args.seeds, limit=args.limit)
        report["refit"] = {"f_prior": args.f_prior, "z_prior": args.z_prior}
        (folder / f"evaluation-{'+'.join(changed)}.json").write_text(json.dumps(report, indent=2) + "\n")
        results.append({f"{s}.{m}": v["mean"] for s, ms in report["metrics"].items() for m, v in ms.items()})
        results[-1]["swap.attributes"] = statistics.fmean(results[-1][f"swap.{a}"] for a in ATTRIBUTES)

    print(f"\nmachine: {machine()}; {len(results)} run(s) x {args.seeds} evaluation seed(s); "
          f"p(f): {args.f_prior}, p(z | f): {args.z_prior}\n")
    names = [("dynamics_kept.action_accuracy", 100, 1, "action (f resampled) %"), ("dynamics_kept.is", 1, 3, "IS"),
             ("dynamics_kept.h_y_given_x", 1, 3, "H(y|x)"), ("dynamics_kept.h_y", 1, 3, "H(y)"),
             *((f"{s}.{m}", 100, 1, label + " %") for s, m, label in HEADS[1:]),
             ("swap.attributes", 100, 1, "swap: A's attributes %"), ("swap.action", 100, 1, "swap: B's action %"),
             ("reconstruction.elbo_per_frame", 1, 1, "ELBO/frame")]
    print("| " + " | ".join(label for *_, label in names) + " |")
    print("|" + "---|" * len(names))
    print("| " + " | ".join(spread([r[key] for r in results], scale, digits) for key, scale, digits, _ in names)
          + " |")


if __name__ == "__main__":
    main()
