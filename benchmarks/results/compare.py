"""Equal-budget comparison of the model families: disentanglement and video prediction.

For each data set (Sprites, one-digit Moving MNIST) and family (DVAE, DSA, DrNet): train the
family's ``cpu`` preset for the same wall-clock budget (``--minutes``) on this machine, evaluate
it with the same judge and protocol (``pyro-dvae evaluate``), train a latent predictor for the
families that need one (DVAE, DrNet; ``--predictor-minutes``, on top of the budget), predict the
test sequences (``pyro-dvae predict``: Sprites 3 -> 5, Moving MNIST 5 -> 10), and print two
markdown tables with the machine, the budget and the seeds. Finished parts are kept in ``--out``
and skipped when the script is run again; a finished ``benchmarks/results/quality.py`` run of the same
preset, seed and budget copied in as ``OUT/DATA/FAMILY`` is reused (its evaluation too, when it used
the same evaluation seeds). Run it on a quiet machine:

    python benchmarks/results/compare.py            # 3 families x 2 data sets, the presets' budget
    python benchmarks/results/compare.py --data moving-mnist-1 --minutes 5   # a shorter budget (kept per run)
    python benchmarks/results/compare.py --minutes 0.2 --predictor-minutes 0.1 --limit 20 --seeds 1   # a smoke check
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import machine  # noqa: E402

from pyro_dvae import load_run, resume, train
from pyro_dvae.config import TrainConfig, preset
from pyro_dvae.evaluation import evaluate_run
from pyro_dvae.prediction import predict_report
from pyro_dvae.prediction.predictor import PREDICTOR_FILE, train_predictor


def _mean(values) -> float:
    return statistics.fmean(values)


def _finished_elsewhere(folder: Path, config) -> bool:
    """A finished run of this preset, seed and budget made by another script (its evaluation written)."""
    if not (folder / "evaluation.json").exists():
        return False
    found = load_run(folder).config
    # The trainer takes the channels from the data (1 for Moving MNIST); the preset's default is 3.
    same_model = replace(found.model, channels=config.model.channels) == config.model
    return (same_model and found.data == config.data and found.train.seed == config.train.seed
            and found.train.max_minutes == config.train.max_minutes)


def run_one(data: str, family: str, args: argparse.Namespace) -> dict:
    """Train, evaluate, (train a predictor,) predict; each part cached as JSON in the run folder."""
    folder = args.out / data / family
    done = folder / "compare.json"
    if done.exists():
        return json.loads(done.read_text())
    config = preset("cpu", data, family)
    minutes = args.minutes or config.train.max_minutes
    config = config.override("train", seed=args.train_seed, steps=10**7, max_minutes=minutes, device="cpu")
    train_minutes = None
    trained = folder / "trained.json"
    if trained.exists():  # trained by an earlier call: keep it
        run, train_minutes = load_run(folder), json.loads(trained.read_text())["train_minutes"]
    elif _finished_elsewhere(folder, config):  # e.g. quality.py's run of the same preset, copied in
        run = load_run(folder)
    else:
        start = time.perf_counter()
        if (folder / "checkpoint.pt").exists():  # an interrupted comparison: finish the run's budget
            run = resume(folder, steps=10**7, max_minutes=minutes, progress=True)
        else:
            run = train(config, folder, progress=True)
        train_minutes = (time.perf_counter() - start) / 60
        trained.write_text(json.dumps({"train_minutes": train_minutes}) + "\n")
    evaluation = folder / "evaluation.json"
    report = json.loads(evaluation.read_text()) if evaluation.exists() else None
    if report is None or report["seeds"] != args.seeds or (args.limit and report["n_sequences"] != args.limit):
        report = evaluate_run(run, seeds=args.seeds, limit=args.limit)
        evaluation.write_text(json.dumps(report, indent=2) + "\n")
    predictor_minutes = 0.0
    if not run.model.can("predict_dynamics") and not (folder / PREDICTOR_FILE).exists():
        start = time.perf_counter()
        train_predictor(run, TrainConfig(steps=10**7, batch_size=32, lr=1e-3, log_every=50, eval_every=500,
                                         checkpoint_every=500, eval_batches=2, max_minutes=args.predictor_minutes),
                        progress=True)
        predictor_minutes = (time.perf_counter() - start) / 60
    prediction = json.loads(predict_report(load_run(folder), folder / "prediction", samples=args.samples,
                                           limit=args.limit).read_text())
    result = {"data": data, "family": family, "budget_minutes": minutes, "steps": run.step,
              "train_minutes": train_minutes,
              "predictor_minutes": predictor_minutes,
              "metrics": {f"{s}.{m}": v["mean"] for s, ms in report["metrics"].items() for m, v in ms.items()},
              "prediction": prediction}
    done.write_text(json.dumps(result, indent=2) + "\n")
    return result


def disentanglement_table(results: list[dict]) -> list[str]:
    lines = ["| data | model | budget (min) | steps | action (f resampled) | IS | skin | pants | top "
             "| hair (z resampled) | swap: A's attributes | swap: B's action / digit | position error (px) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        m = r["metrics"]
        if r["data"] == "sprites":
            heads = [f"{100 * m['dynamics_kept.action_accuracy']:.1f}%", f"{m['dynamics_kept.is']:.2f}",
                     *(f"{100 * m[f'static_kept.{a}']:.1f}%" for a in ("skin", "pants", "top", "hair")),
                     f"{100 * _mean(m[f'swap.{a}'] for a in ('skin', 'pants', 'top', 'hair')):.1f}%",
                     f"{100 * m['swap.action']:.1f}%", ""]
        else:
            heads = [""] * 7 + [f"{100 * m['swap.digit']:.1f}%", f"{m['swap.position_error_px']:.2f}"]
        lines.append(f"| {r['data']} | {r['family']} | {r['budget_minutes']:g} | {r['steps']} | "
                     + " | ".join(heads) + " |")
    return lines


def prediction_table(results: list[dict]) -> list[str]:
    lines = ["| data | model | context -> horizon | samples | PSNR mean / best | SSIM mean / best | PSNR last step "
             "| action of predicted sequences | static attributes / digit held |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        p, m = r["prediction"], r["prediction"]["metrics"]
        held = ""
        if "attributes_per_step" in m:
            held = f"{100 * _mean(_mean(v) for v in m['attributes_per_step'].values()):.1f}%"
        elif "digit_per_step" in m:
            held = f"{100 * _mean(m['digit_per_step']):.1f}%"
        action = f"{100 * m['action_accuracy']:.1f}%" if "action_accuracy" in m else ""
        lines.append(f"| {r['data']} | {r['family']} | {p['context']} -> {p['horizon']} | {p['samples']} | "
                     f"{_mean(m['psnr_mean']):.2f} / {_mean(m['psnr_best']):.2f} | "
                     f"{_mean(m['ssim_mean']):.3f} / {_mean(m['ssim_best']):.3f} | {m['psnr_mean'][-1]:.2f} | "
                     f"{action} | {held} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["sprites", "moving-mnist-1"])
    parser.add_argument("--models", nargs="+", default=["dvae", "dsa", "drnet"])
    parser.add_argument("--minutes", type=float,
                        help="wall-clock training budget per run (default: the cpu preset's, 14.5 min)")
    parser.add_argument("--predictor-minutes", type=float, default=3.0, help="budget of a latent predictor")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seeds")
    parser.add_argument("--samples", type=int, default=5, help="predictions per sequence (stochastic families)")
    parser.add_argument("--limit", type=int, help="evaluate and predict only the first N test sequences")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    args = parser.parse_args()
    results = [run_one(data, family, args) for data in args.data for family in args.models]
    print(f"\nmachine: {machine()}")
    print(f"budget: the minutes of training in the table (cpu presets), latent predictors "
          f"{args.predictor_minutes:g} min more (dvae, drnet); training seed {args.train_seed}; "
          f"{args.seeds} evaluation seed(s); runs in {args.out}\n")
    print("\n".join(disentanglement_table(results)) + "\n")
    print("\n".join(prediction_table(results)))


if __name__ == "__main__":
    main()
