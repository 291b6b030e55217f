"""Equal-budget comparison of the model families: disentanglement and video prediction.

For each data set (Sprites, one-digit Moving MNIST), family (DVAE, DSA, DrNet), setting and
training seed: train the family in that setting for the same wall-clock budget (``--minutes``) on
this machine, evaluate
it with the same judge and protocol (``pyro-dvae evaluate``), train a latent predictor for the
families that need one (DVAE, DrNet; ``--predictor-minutes``, on top of the budget), predict the
test sequences (``pyro-dvae predict``: Sprites 3 -> 5, Moving MNIST 5 -> 10), and print two
markdown tables (mean ± spread over the training seeds) with the machine, the budget and the seeds.
The settings are ``preset``, the family's ``cpu`` preset (each tuned by measured screens:
docs/ablation.md), and ``authors``, the same networks with the choices its authors published
(``AUTHORS``), so that equal compute comes with equal care and the gap tuning makes is shown.
Finished parts are kept in ``--out`` and skipped when the script is run again (an interrupted
training starts again); a finished ``benchmarks/results/quality.py`` run of the same preset, seed
and budget copied in as ``OUT/DATA/FAMILY`` is reused (its evaluation too, when it used the same
evaluation seeds). Run it on a quiet machine:

    python benchmarks/results/compare.py            # 3 families x 2 data sets, the presets' budget
    python benchmarks/results/compare.py --data sprites --settings authors preset --train-seeds 3
    python benchmarks/results/compare.py --data moving-mnist-1 --minutes 5   # a shorter budget (kept per run)
    python benchmarks/results/compare.py --preset tiny --minutes 0.05 --predictor-minutes 0.02 --limit 9  # smoke
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import machine  # noqa: E402

from pyro_dvae import load_run, train
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


# What each family's authors published, on the networks of its `cpu` preset: the DVAE paper's ELBO
# (beta_f = 1, Monte Carlo KLs), 2-D z, N(0, I) p(f) and the conditional Gaussian p(z | f) with no
# second-stage fit, the paper's concat decoder and the whole sprite sheet; DSA's and DrNet's
# presets keep their authors' choices unless a screen changed them (docs/ablation.md).
AUTHORS: dict[str, dict[str, dict]] = {
    "dvae": {"model": {"z_dim": 2, "f_prior": "standard-normal", "z_prior": "conditional-gaussian",
                       "decoder": "concat", "canvases": 1, "shift_sharpening": 0},
             "train": {"f_kl_weight": 1.0, "elbo": "trace"}, "data": {"options": {}}},
    # the common reimplementations' learning rate (the paper's 2e-4 is for 43,000 steps) and the ELBO
    "dsa": {"train": {"lr": 1e-3, "f_kl_weight": 1.0}},
    "drnet": {"train": {"lr": 2e-3}},
}


def setting_config(setting: str, data: str, family: str, preset_name: str):
    config = preset(preset_name, data, family)
    if setting == "authors":
        for section, values in AUTHORS[family].items():
            config = config.override(section, **values)
    return config.validate()


def run_folder(out: Path, data: str, family: str, setting: str, seed: int) -> Path:
    """OUT/DATA/FAMILY for the tuned preset's first seed (the layout of earlier comparisons, so that
    their runs are reused), with -authors and -seedN after it for the others."""
    return out / data / (family + ("-authors" if setting == "authors" else "") + (f"-seed{seed}" if seed else ""))


def run_one(data: str, family: str, setting: str, seed: int, args: argparse.Namespace) -> dict:
    """Train, evaluate, (train a predictor,) predict; each part cached as JSON in the run folder."""
    folder = run_folder(args.out, data, family, setting, seed)
    done = folder / "compare.json"
    if done.exists():
        return {"setting": "preset", "seed": 0, **json.loads(done.read_text())}
    config = setting_config(setting, data, family, args.preset)
    minutes = args.minutes or config.train.max_minutes
    config = config.override("train", seed=seed, steps=10**7, max_minutes=minutes, device="cpu")
    train_minutes = None
    trained = folder / "trained.json"
    if trained.exists():  # trained by an earlier call: keep it
        run, train_minutes = load_run(folder), json.loads(trained.read_text())["train_minutes"]
    elif _finished_elsewhere(folder, config):  # e.g. quality.py's run of the same preset, copied in
        run = load_run(folder)
    else:
        # An interrupted training starts again: its minutes were not recorded, and resuming with the
        # whole budget would give it more than the others had.
        if folder.exists():
            shutil.rmtree(folder)
        start = time.perf_counter()
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
    result = {"data": data, "family": family, "setting": setting, "seed": seed, "budget_minutes": minutes,
              "steps": run.step,
              "train_minutes": train_minutes,
              "predictor_minutes": predictor_minutes,
              "metrics": {f"{s}.{m}": v["mean"] for s, ms in report["metrics"].items() for m, v in ms.items()},
              "prediction": prediction}
    done.write_text(json.dumps(result, indent=2) + "\n")
    return result


def grouped(results: list[dict]) -> list[list[dict]]:
    """The results of each (data, family, setting), in order: one row of a table per group of seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["data"], r["family"], r["setting"]), []).append(r)
    return list(groups.values())


def cell(group: list[dict], value, percent: bool = True, digits: int = 1) -> str:
    """Mean (± standard deviation over the training seeds when there are several) of ``value(r)``."""
    values = [value(r) * (100 if percent else 1) for r in group]
    text = f"{_mean(values):.{digits}f}" + ("%" if percent else "")
    return text + (f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else "")


def _label(group: list[dict]) -> str:
    first = group[0]
    return f"{first['family']}{' (authors)' if first['setting'] == 'authors' else ''}"


def disentanglement_table(results: list[dict]) -> list[str]:
    lines = ["| data | model | seeds | budget (min) | steps | action (f resampled) | IS | skin | pants | top "
             "| hair (z resampled) | swap: A's attributes | swap: B's action / digit | position error (px) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for group in grouped(results):
        first = group[0]
        if first["data"] == "sprites":
            heads = [cell(group, lambda r: r["metrics"]["dynamics_kept.action_accuracy"]),
                     cell(group, lambda r: r["metrics"]["dynamics_kept.is"], False, 2),
                     *(cell(group, lambda r, a=a: r["metrics"][f"static_kept.{a}"])
                       for a in ("skin", "pants", "top", "hair")),
                     cell(group, lambda r: _mean(r["metrics"][f"swap.{a}"] for a in ("skin", "pants", "top", "hair"))),
                     cell(group, lambda r: r["metrics"]["swap.action"]), ""]
        else:
            heads = [""] * 7 + [cell(group, lambda r: r["metrics"]["swap.digit"]),
                                cell(group, lambda r: r["metrics"]["swap.position_error_px"], False, 2)]
        lines.append(f"| {first['data']} | {_label(group)} | {len(group)} | {first['budget_minutes']:g} | "
                     f"{_mean(r['steps'] for r in group):.0f} | " + " | ".join(heads) + " |")
    return lines


def prediction_table(results: list[dict]) -> list[str]:
    lines = ["| data | model | seeds | context -> horizon | samples | PSNR mean / best | SSIM mean / best "
             "| PSNR last step | action of predicted sequences | static attributes / digit held |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for group in grouped(results):
        p, m = group[0]["prediction"], group[0]["prediction"]["metrics"]

        def per_step(key, r):
            return _mean(r["prediction"]["metrics"][key])

        held = ""
        if "attributes_per_step" in m:
            held = cell(group, lambda r: _mean(_mean(v) for v in r["prediction"]["metrics"]["attributes_per_step"]
                                               .values()))
        elif "digit_per_step" in m:
            held = cell(group, lambda r: per_step("digit_per_step", r))
        action = cell(group, lambda r: r["prediction"]["metrics"]["action_accuracy"]) if "action_accuracy" in m else ""
        lines.append(f"| {group[0]['data']} | {_label(group)} | {len(group)} | {p['context']} -> {p['horizon']} | "
                     f"{p['samples']} | {cell(group, lambda r: per_step('psnr_mean', r), False, 2)} / "
                     f"{cell(group, lambda r: per_step('psnr_best', r), False, 2)} | "
                     f"{cell(group, lambda r: per_step('ssim_mean', r), False, 3)} / "
                     f"{cell(group, lambda r: per_step('ssim_best', r), False, 3)} | "
                     f"{cell(group, lambda r: r['prediction']['metrics']['psnr_mean'][-1], False, 2)} | "
                     f"{action} | {held} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["sprites", "moving-mnist-1"])
    parser.add_argument("--models", nargs="+", default=["dvae", "dsa", "drnet"])
    parser.add_argument("--minutes", type=float,
                        help="wall-clock training budget per run (default: the cpu preset's, 14.5 min)")
    parser.add_argument("--predictor-minutes", type=float, default=3.0, help="budget of a latent predictor")
    parser.add_argument("--preset", default="cpu", help="every family's preset (tiny: a smoke check)")
    parser.add_argument("--settings", nargs="+", choices=["preset", "authors"], default=["preset"],
                        help="the tuned cpu preset, and/or the authors' published choices on its networks")
    parser.add_argument("--train-seed", type=int, default=0, help="the first training seed")
    parser.add_argument("--train-seeds", type=int, default=1, help="training seeds per setting (mean ± spread)")
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seeds")
    parser.add_argument("--samples", type=int, default=5, help="predictions per sequence (stochastic families)")
    parser.add_argument("--limit", type=int, help="evaluate and predict only the first N test sequences")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    args = parser.parse_args()
    seeds = range(args.train_seed, args.train_seed + args.train_seeds)
    results = [run_one(data, family, setting, seed, args) for data in args.data for family in args.models
               for setting in args.settings for seed in seeds]
    print(f"\nmachine: {machine()}")
    print(f"budget: the minutes of training in the table (cpu presets), latent predictors "
          f"{args.predictor_minutes:g} min more (dvae, drnet); training seeds {list(seeds)}; "
          f"{args.seeds} evaluation seed(s); runs in {args.out}\n")
    print("\n".join(disentanglement_table(results)) + "\n")
    print("\n".join(prediction_table(results)))


if __name__ == "__main__":
    main()
