"""Equal-budget comparison of the model families: disentanglement and video prediction.

For each data set (Sprites, one-digit Moving MNIST), frame size, family (DVAE, DSA, DrNet), setting
and training seed: train the family in that setting on the same budget, evaluate it with the same
judge and protocol (``pyro-dvae evaluate``), train a latent predictor for the families that need one
(DVAE, DrNet; ``--predictor-steps``, on top of the budget), predict the test sequences (``pyro-dvae
predict``: Sprites 3 -> 5, Moving MNIST 5 -> 10), and print two markdown tables (mean ± spread over
the training seeds) with the machine, the budget and the seeds. The settings are ``preset``, the
family's ``cpu`` preset (each tuned by measured screens: docs/ablation.md), and ``authors``, the
same networks with the choices its authors published (``AUTHORS``), so that equal compute comes with
equal care and the gap tuning makes is shown. ``--image-size 64`` trains every setting on frames of
64x64, folded 2x2 into channels (``space_to_depth``, so a step costs about what a 32x32 one does),
the DVAE's preset with the rest of its 64x64 setting (examples/sprites-64.toml).

**The budget is compute**, what a setting does in its preset's 14.5 training minutes on one quiet
machine. This VM's speed varies about 2x between days, so minutes spent over several sessions would
not be equal: each run gets a *step budget* instead. ``--calibrate`` trains every selected setting
for ``--calibration-minutes`` back to back (run it with nothing else on the machine) and writes to
``--budgets`` the steps it reached (data set-up included, as in a timed run) plus its steady rate
times the minutes left. Settings that cost the same per step (DSA's and DrNet's two settings differ
in learning rates and KL weights only) share the mean of their calibrations, so the VM's own spread
(5-9% between such twins) does not split them; a setting identical to another (DrNet's one-digit
preset kept all its authors' choices) is that one's run. Runs then take their budget in steps on
any day, two at a time even (one torch thread each), and still get equal compute. ``--minutes M``
gives every run M wall-clock minutes instead, ``--steps N`` N steps (smoke checks).

**Records.** Each finished run's result is written to ``--record`` (committed:
benchmarks/results/compare/DATA-SIZE/FAMILY-SETTING-seedN.json), so that a table is made over
several sessions and a run with a record is not trained again. Run folders are kept in ``--out``;
an interrupted step-budget run resumes to its budget.

    python benchmarks/results/compare.py --calibrate --settings authors preset            # quiet machine
    python benchmarks/results/compare.py --settings authors preset --train-seeds 3       # the table
    python benchmarks/results/compare.py --data sprites --image-size 64 --settings authors preset
    python benchmarks/results/compare.py --preset tiny --steps 5 --predictor-steps 3 --limit 9 --record ''  # smoke
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import machine  # noqa: E402

from pyro_dvae import load_run, resume, train
from pyro_dvae.atomic import write_text_atomic
from pyro_dvae.checkpoint import load_checkpoint
from pyro_dvae.config import TrainConfig, preset, read_config_file
from pyro_dvae.errors import UserInputError
from pyro_dvae.evaluation import evaluate_run
from pyro_dvae.prediction import predict_report
from pyro_dvae.prediction.predictor import PREDICTOR_FILE, resume_predictor, train_predictor
from pyro_dvae.runs import CHECKPOINT_FILE, METRICS_FILE, read_metrics

REPO = Path(__file__).resolve().parents[2]
RECORDS = REPO / "benchmarks" / "results" / "compare"
DVAE_64 = REPO / "examples" / "sprites-64.toml"  # the DVAE's measured 64x64 setting


def _mean(values) -> float:
    return statistics.fmean(values)


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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


def setting_config(setting: str, data: str, family: str, preset_name: str, image_size: int | None = None):
    """The config of a setting; at another ``image_size`` the frames are folded into channels down to
    the preset's size (same cost per step), and the DVAE's preset takes its measured 64x64 setting."""
    config = preset(preset_name, data, family)
    if setting == "authors":
        for section, values in AUTHORS[family].items():
            config = config.override(section, **values)
    own = config.model.image_size
    if image_size and image_size != own:
        config = config.override("model", image_size=image_size, space_to_depth=max(1, image_size // own))
        if setting == "preset" and family == "dvae":
            for section, values in read_config_file(DVAE_64).items():
                config = config.override(section, **{k: v for k, v in values.items()
                                                     if k not in ("image_size", "space_to_depth")})
    return config.validate()


def budget_key(data: str, image_size: int, family: str, setting: str) -> str:
    return f"{data}-{image_size}/{family}-{setting}"


def run_folder(out: Path, data: str, family: str, setting: str, seed: int, image_size: int | None = None) -> Path:
    """OUT/DATA/FAMILY for the tuned preset's first seed (the layout of earlier comparisons, so that
    their runs are reused), with -authors and -seedN after it for the others; OUT/DATA-SIZE/... at
    another frame size than the preset's."""
    return (out / (data + (f"-{image_size}" if image_size else ""))
            / (family + ("-authors" if setting == "authors" else "") + (f"-seed{seed}" if seed else "")))


# What sets the cost of a step (the learning rate and the KL weights do not).
_COSTLY_TRAIN = ("batch_size", "elbo", "weight_average", "log_every", "eval_every", "eval_batches",
                 "checkpoint_every")


def cost_signature(config) -> str:
    """Settings with the same signature cost the same per step, so they share one budget."""
    sections = config.to_dict()
    train = {k: sections["train"][k] for k in _COSTLY_TRAIN}
    return json.dumps({"model": sections["model"], "data": sections["data"], "train": train}, sort_keys=True)


def pooled_budget(budgets: dict, key: str) -> dict:
    """The budget of ``key``: its steps averaged over the calibrations of every setting of the same
    data and size that costs the same per step (their spread is the VM's, not theirs)."""
    prefix, entry = key.split("/")[0] + "/", budgets[key]
    same = [b for k, b in budgets.items() if k.startswith(prefix) and b.get("cost") == entry.get("cost")]
    steps = round(_mean(b["steps"] for b in same)) if entry.get("cost") else entry["steps"]
    return {"steps": steps, "minutes": entry["minutes"], "calibrations": len(same) if entry.get("cost") else 1,
            "date": entry["date"], "commit": entry["commit"]}


def read_budgets(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def calibrate(data: str, family: str, setting: str, args: argparse.Namespace) -> tuple[str, dict]:
    """Train the setting for ``--calibration-minutes`` and extend its steps to the budget's minutes at
    its steady rate (the log windows after the first two, which hold the start-up)."""
    config = setting_config(setting, data, family, args.preset, args.image_size)
    minutes = args.budget_minutes or config.train.max_minutes
    if not minutes:
        raise SystemExit(f"the {args.preset} preset has no wall-clock budget; pass --budget-minutes")
    key = budget_key(data, config.model.image_size, family, setting)
    folder = args.out / "calibration" / key
    shutil.rmtree(folder, ignore_errors=True)
    config = config.override("train", seed=0, steps=10**7, max_minutes=args.calibration_minutes, device="cpu")
    run = train(config, folder, progress=True)
    windows = [r for r in read_metrics(folder / METRICS_FILE) if r["split"] == "train"]
    steps = [(b["step"] - a["step"], b["steps_per_s"]) for a, b in pairwise(windows)][1:]
    if not steps:
        raise SystemExit(f"{key}: too few log windows in {args.calibration_minutes:g} min to measure a rate; "
                         "pass a longer --calibration-minutes")
    rate = sum(n for n, _ in steps) / sum(n / r for n, r in steps)
    extra = max(0.0, minutes - args.calibration_minutes) * 60 * rate
    return key, {"minutes": minutes, "steps": run.step + round(extra), "steps_per_s": round(rate, 3),
                 "cost": cost_signature(config),
                 "calibration_minutes": args.calibration_minutes, "calibration_steps": run.step,
                 "machine": machine(), "commit": _commit(), "date": datetime.date.today().isoformat()}


def partial_step(folder: Path) -> float:
    """The step of the checkpoint an interrupted run left (inf when there is none to continue)."""
    try:
        return load_checkpoint(folder / CHECKPOINT_FILE)["step"]
    except UserInputError:  # none, or damaged: the run starts again
        return float("inf")


def _finished_elsewhere(folder: Path, config) -> bool:
    """A finished run of this preset, seed and budget made by another script (its evaluation written),
    e.g. quality.py's, copied in as the run folder."""
    if not (folder / "evaluation.json").exists():
        return False
    found = load_run(folder).config
    # The trainer takes the channels from the data (1 for Moving MNIST); the preset's default is 3.
    same_model = replace(found.model, channels=config.model.channels) == config.model
    return (same_model and found.data == config.data and found.train.seed == config.train.seed
            and found.train.max_minutes == config.train.max_minutes
            and (config.train.max_minutes or found.train.steps == config.train.steps))  # a step budget: its steps


def _train(config, folder: Path, budget_steps: int | None) -> tuple:
    """Train (or, for a step budget, resume) the run in ``folder``; returns it and its wall minutes."""
    trained = folder / "trained.json"
    if trained.exists():  # trained by an earlier call: keep it
        return load_run(folder), json.loads(trained.read_text())["train_minutes"]
    if _finished_elsewhere(folder, config):
        return load_run(folder), None
    start = time.perf_counter()
    if budget_steps and partial_step(folder) < budget_steps:
        run = resume(folder, steps=budget_steps, device="cpu", max_minutes=0)  # the same steps, exactly
    else:
        # An interrupted timed run starts again: its minutes were not recorded, and resuming with the
        # whole budget would give it more than the others had.
        shutil.rmtree(folder, ignore_errors=True)
        run = train(config, folder, progress=True)
    train_minutes = (time.perf_counter() - start) / 60
    trained.write_text(json.dumps({"train_minutes": train_minutes}) + "\n")
    return run, train_minutes


def run_one(data: str, family: str, setting: str, seed: int, args: argparse.Namespace, budgets: dict) -> dict:
    """Train, evaluate, (train a predictor,) predict; each part cached as JSON in the run folder, the
    result recorded under ``--record``."""
    config = setting_config(setting, data, family, args.preset, args.image_size)
    key = budget_key(data, config.model.image_size, family, setting)
    record = Path(args.record) / f"{key}-seed{seed}.json" if args.record else None
    if record is not None and record.exists():
        return json.loads(record.read_text())
    if setting == "authors" and config == setting_config("preset", data, family, args.preset, args.image_size):
        # The preset kept every choice of its authors (no screened change won): one run serves both rows.
        return _record({**run_one(data, family, "preset", seed, args, budgets), "setting": "authors",
                        "same_as": "preset"}, record)
    folder = run_folder(args.out, data, family, setting, seed, args.image_size)
    if (folder / "compare.json").exists():  # finished by an earlier call (killed before recording it, say)
        found = json.loads((folder / "compare.json").read_text())
        if "budget" not in found:  # written before step budgets: always the preset's first seed, in minutes
            found = {"setting": "preset", "seed": 0, "budget": {"minutes": found["budget_minutes"]}, **found}
        return _record(found, record)
    if args.minutes:
        budget = {"minutes": args.minutes}
        config = config.override("train", seed=seed, steps=10**7, max_minutes=args.minutes, device="cpu")
    else:
        if args.steps:
            budget = {"steps": args.steps}
        elif key in budgets:
            budget = pooled_budget(budgets, key)
        else:
            raise SystemExit(f"no step budget for {key} in {args.budgets}; measure it first on a quiet machine "
                             f"(python benchmarks/results/compare.py --calibrate with the same --data, --models, "
                             "--settings and --image-size), or pass --minutes M for a wall-clock budget")
        config = config.override("train", seed=seed, steps=budget["steps"], max_minutes=0, device="cpu")
    run, train_minutes = _train(config, folder, budget.get("steps") if not args.minutes else None)
    evaluation = folder / "evaluation.json"
    report = json.loads(evaluation.read_text()) if evaluation.exists() else None
    if report is None or report["seeds"] != args.seeds or (args.limit and report["n_sequences"] != args.limit):
        report = evaluate_run(run, seeds=args.seeds, limit=args.limit)
        evaluation.write_text(json.dumps(report, indent=2) + "\n")
    predictor_steps = 0
    if not run.model.can("predict_dynamics"):
        if (folder / PREDICTOR_FILE).exists():
            if not args.predictor_minutes and read_predictor_step(folder) < args.predictor_steps:
                resume_predictor(run, steps=args.predictor_steps, progress=True)  # an interrupted one
        else:
            train_predictor(run, TrainConfig(steps=args.predictor_steps if not args.predictor_minutes else 10**7,
                                             batch_size=32, lr=1e-3, log_every=50, eval_every=500,
                                             checkpoint_every=500, eval_batches=2,
                                             max_minutes=args.predictor_minutes or 0.0), progress=True)
        predictor_steps = read_predictor_step(folder)
    prediction = json.loads(predict_report(load_run(folder), folder / "prediction", samples=args.samples,
                                           limit=args.limit).read_text())
    result = {"data": data, "image_size": config.model.image_size, "family": family, "setting": setting,
              "seed": seed, "budget": budget, "steps": run.step, "train_minutes": train_minutes,
              "predictor_steps": predictor_steps, "evaluation_seeds": args.seeds,
              "metrics": {f"{s}.{m}": v["mean"] for s, ms in report["metrics"].items() for m, v in ms.items()},
              "prediction": prediction, "machine": machine(), "commit": _commit(),
              "date": datetime.date.today().isoformat()}
    (folder / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    return _record(result, record)


def _record(result: dict, record: Path | None) -> dict:
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, json.dumps(result, indent=2) + "\n")
    return result


def read_predictor_step(folder: Path) -> int:
    return int(load_checkpoint(folder / PREDICTOR_FILE)["step"])


def grouped(results: list[dict]) -> list[list[dict]]:
    """The results of each (data, family, setting), in order: one row of a table per group of seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["data"], r.get("image_size"), r["family"], r["setting"]), []).append(r)
    return list(groups.values())


def cell(group: list[dict], value, percent: bool = True, digits: int = 1) -> str:
    """Mean (± standard deviation over the training seeds when there are several) of ``value(r)``."""
    values = [value(r) * (100 if percent else 1) for r in group]
    text = f"{_mean(values):.{digits}f}" + ("%" if percent else "")
    return text + (f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else "")


def _label(group: list[dict]) -> str:
    first = group[0]
    return f"{first['family']}{' (authors)' if first['setting'] == 'authors' else ''}"


def _data(group: list[dict]) -> str:
    size = group[0].get("image_size")
    return group[0]["data"] + (f" {size}x{size}" if size else "")


def _budget(group: list[dict]) -> str:
    """The budget: wall-clock minutes, or the steps its minutes were calibrated to."""
    budget = group[0]["budget"]
    if "steps" not in budget:
        return f"{budget['minutes']:g} min"
    return f"{budget['minutes']:g} min = {budget['steps']} steps" if "minutes" in budget else f"{budget['steps']} steps"


def disentanglement_table(results: list[dict]) -> list[str]:
    lines = ["| data | model | seeds | budget | steps | action (f resampled) | IS | skin | pants | top "
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
        lines.append(f"| {_data(group)} | {_label(group)} | {len(group)} | {_budget(group)} | "
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
        lines.append(f"| {_data(group)} | {_label(group)} | {len(group)} | {p['context']} -> {p['horizon']} | "
                     f"{p['samples']} | {cell(group, lambda r: per_step('psnr_mean', r), False, 2)} / "
                     f"{cell(group, lambda r: per_step('psnr_best', r), False, 2)} | "
                     f"{cell(group, lambda r: per_step('ssim_mean', r), False, 3)} / "
                     f"{cell(group, lambda r: per_step('ssim_best', r), False, 3)} | "
                     f"{cell(group, lambda r: r['prediction']['metrics']['psnr_mean'][-1], False, 2)} | "
                     f"{action} | {held} |")
    return lines


def recorded(settings: list[tuple], seeds: range, args: argparse.Namespace) -> tuple[list[dict], list[str]]:
    """The recorded results of the selected runs, and the names of those not recorded yet."""
    results, missing = [], []
    for data, family, setting in settings:
        size = setting_config(setting, data, family, args.preset, args.image_size).model.image_size
        for seed in seeds:
            record = Path(args.record) / f"{budget_key(data, size, family, setting)}-seed{seed}.json"
            if record.exists():
                results.append(json.loads(record.read_text()))
            else:
                missing.append(f"{budget_key(data, size, family, setting)}-seed{seed}")
    return results, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["sprites", "moving-mnist-1"])
    parser.add_argument("--models", nargs="+", default=["dvae", "dsa", "drnet"])
    parser.add_argument("--settings", nargs="+", choices=["preset", "authors"], default=["preset"],
                        help="the tuned cpu preset, and/or the authors' published choices on its networks")
    parser.add_argument("--image-size", type=int, choices=[16, 32, 64],
                        help="frame size (default: the preset's, 32; 64: folded 2x2 into channels)")
    parser.add_argument("--preset", default="cpu", help="every family's preset (tiny: a smoke check)")
    parser.add_argument("--calibrate", action="store_true",
                        help="measure each setting's step budget on this (quiet) machine into --budgets")
    parser.add_argument("--calibration-minutes", type=float, default=2.0, help="training minutes per calibration")
    parser.add_argument("--budget-minutes", type=float, help="the minutes a step budget stands for "
                        "(default: the preset's wall-clock budget, 14.5)")
    parser.add_argument("--budgets", type=Path, default=RECORDS / "budgets.json", help="the calibrated step budgets")
    parser.add_argument("--minutes", type=float, help="a wall-clock budget per run instead of the step budgets")
    parser.add_argument("--steps", type=int, help="one step budget for every run instead of the calibrated ones")
    parser.add_argument("--predictor-steps", type=int, default=2000,
                        help="steps of a latent predictor (train-predictor's default)")
    parser.add_argument("--predictor-minutes", type=float, help="a wall-clock budget for predictors instead")
    parser.add_argument("--train-seed", type=int, default=0, help="the first training seed")
    parser.add_argument("--train-seeds", type=int, default=1, help="training seeds per setting (mean ± spread)")
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seeds")
    parser.add_argument("--samples", type=int, default=5, help="predictions per sequence (stochastic families)")
    parser.add_argument("--limit", type=int, help="evaluate and predict only the first N test sequences")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"), help="the run folders")
    parser.add_argument("--table", action="store_true", help="print the recorded results only; train nothing")
    parser.add_argument("--record", help="where each finished run's result is kept and read back ('': nowhere; "
                        "default: benchmarks/results/compare under calibrated budgets, else nowhere)")
    args = parser.parse_args()
    if args.record is None:  # by default only results under the calibrated step budgets are recorded
        args.record = "" if args.minutes or args.steps else str(RECORDS)
    settings = [(data, family, setting) for data in args.data for family in args.models for setting in args.settings]
    if args.calibrate:
        budgets = read_budgets(args.budgets)
        for data, family, setting in settings:
            key, budgets[key] = calibrate(data, family, setting, args)
            print(f"{key}: {budgets[key]['steps']} steps in {budgets[key]['minutes']:g} min "
                  f"({budgets[key]['steps_per_s']:.2f} steps/s)")
            args.budgets.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(args.budgets, json.dumps(dict(sorted(budgets.items())), indent=2) + "\n")
        return
    budgets = read_budgets(args.budgets)
    seeds = range(args.train_seed, args.train_seed + args.train_seeds)
    if args.table:
        results, missing = recorded(settings, seeds, args)
        print(f"recorded: {len(results)} runs; not yet: {', '.join(missing) or 'none'}")
    else:
        results = [run_one(data, family, setting, seed, args, budgets) for data, family, setting in settings
                   for seed in seeds]
    predictor = f"{args.predictor_minutes:g} min" if args.predictor_minutes else f"{args.predictor_steps} steps"
    machines = sorted({r.get("machine", "not recorded") for r in results})
    print(f"\nmachine{'s' if len(machines) > 1 else ''} of the runs: {'; '.join(machines)}")
    print(f"budget: the training budget in the table; latent predictors {predictor} more (dvae, drnet); "
          f"training seeds {list(seeds)}; {args.seeds} evaluation seed(s); runs in {args.out}"
          + (f", results in {args.record}" if args.record else "") + "\n")
    print("\n".join(disentanglement_table(results)) + "\n")
    print("\n".join(prediction_table(results)))


if __name__ == "__main__":
    main()
