"""Quality of a family's preset on Sprites: train with a fixed budget, evaluate, print markdown.

Trains ``preset(PRESET, "sprites", MODEL)`` (``--preset``, default ``cpu``) once per training seed
(``--train-seeds``), for the preset's budget or ``--max-minutes`` / ``--steps``, runs the Sprites
protocol of ``pyro-dvae evaluate`` (docs/metrics.md) with ``--seeds`` evaluation seeds on each, and prints the machine,
the budget, a row for the published-numbers table, and every metric as the mean and spread over
training seeds. Run it on a quiet machine (nothing else using the CPU); the judge is trained and
cached first if missing:

    python benchmarks/results/quality.py                                   # the DVAE's default run, 3 seeds
    python benchmarks/results/quality.py --model dsa --max-minutes 15       # DSA at the same budget
    python benchmarks/results/quality.py --steps 5 --limit 18 --train-seeds 1 --seeds 1   # a smoke check
    python benchmarks/results/quality.py --curve 5 15 30 60 --train-seeds 1   # quality after 5, 15, 30, 60 min
    python benchmarks/results/quality.py --curve 5 15 --steps-at 1774 5337     # the same marks, step-matched
    python benchmarks/results/quality.py --plot-curve runs/curve-dvae-...      # redraw its curve.png
    python benchmarks/results/quality.py --set train.f_kl_weight=1              # one preset setting changed

Runs are kept in ``--out``: called again with the same ``--out`` and settings, the script trains
only the seeds it lacks (a run counts once its evaluation was written) and evaluates again only
where the evaluation seeds or ``--limit`` changed, so ``--first-seed`` and ``--train-seeds`` can
split the work over several calls, and a final call over all the seeds prints their table.

``--curve`` trains each seed in chunks of wall-clock time (``resume`` with ``--max-minutes``; a
resumed run equals an uninterrupted one) and evaluates after each, so one 60-minute run gives the
whole curve; the minutes count training (data set-up and held-out ELBOs included), not the
evaluations between chunks. The VM's pace varies by a third from day to day, so ``--steps-at`` trains
to the steps another run made at each mark instead (one count per mark, in order; "step-matched":
its evaluations say so and keep the minutes' file names, so seeds of both kinds share one table).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from pyro_dvae import load_run, resume, train
from pyro_dvae.config import RunConfig, preset, to_toml
from pyro_dvae.data.sprites import ATTRIBUTES
from pyro_dvae.evaluation import evaluate_run, load_judge

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import HEADS, machine, spread, with_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dvae", help="model family (default: dvae)")
    parser.add_argument("--preset", default="cpu", choices=("cpu", "paper", "tiny"),
                        help="the family's preset (default: cpu)")
    parser.add_argument("--steps", type=int, help="SVI steps (default: the preset's; with --curve, a cap)")
    parser.add_argument("--max-minutes", type=float, help="wall-clock budget per run (default: the preset's)")
    parser.add_argument("--train-seeds", type=int, default=3, help="training runs with seeds S..S+K-1")
    parser.add_argument("--first-seed", type=int, default=0, help="S, the first training seed (default 0)")
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seeds per run")
    parser.add_argument("--limit", type=int, help="evaluate only the first N test sequences (smoke checks)")
    parser.add_argument("--judge", type=Path, help="judge file (default: the cached default judge)")
    parser.add_argument("--out", type=Path, help="folder of the runs (default runs/quality-MODEL-TIME)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--curve", type=float, nargs="+", metavar="MINUTES",
                        help="evaluate after each of these cumulative training minutes")
    parser.add_argument("--steps-at", type=int, nargs="+", metavar="STEPS",
                        help="with --curve: train to these steps at the marks instead of to the minutes")
    parser.add_argument("--plot-curve", type=Path, metavar="DIR",
                        help="only draw DIR/curve.png from a finished --curve folder's evaluations")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="change one setting of the preset, e.g. train.f_kl_weight=1 (TOML value; repeatable)")
    args = parser.parse_args()
    if args.plot_curve:
        return print(f"wrote {plot_curve(args.plot_curve)}")
    if args.steps_at and len(args.steps_at) != len(args.curve or ()):
        parser.error("--steps-at takes one step count per --curve mark")
    if args.curve:
        return curve(args)

    base = with_settings(preset(args.preset, "sprites", args.model), args.settings).override(
        "train", steps=args.steps, device=args.device, max_minutes=args.max_minutes)
    root = args.out or Path("runs") / f"quality-{args.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    judge = load_judge(args.judge) if args.judge else None
    results = []
    for seed in range(args.first_seed, args.first_seed + args.train_seeds):
        config = base.override("train", seed=seed)
        folder = root / f"seed{seed}"
        report = finished_report(folder, config)
        if report is None:
            start = time.perf_counter()
            run = train(config, folder, progress=True)
            minutes = (time.perf_counter() - start) / 60
        else:
            run, minutes = load_run(folder), report.get("training_minutes")
            print(f"{folder}: trained with this configuration before; not trained again")
        if report is None or (report["seeds"], report.get("limit")) != (args.seeds, args.limit):
            report = evaluate_run(run, seeds=args.seeds, judge=judge, limit=args.limit)
            report.update(training_minutes=minutes, limit=args.limit)
            (folder / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
        results.append({"steps": run.step, "minutes": minutes,
                        "metrics": {f"{s}.{m}": v["mean"] for s, ms in report["metrics"].items()
                                    for m, v in ms.items()}})

    cfg = base.train
    budget = f"{cfg.max_minutes:g} min wall clock" if cfg.max_minutes else f"{cfg.steps} steps"
    steps = [r["steps"] for r in results]
    minutes = [r["minutes"] for r in results if r["minutes"] is not None]
    took = f"{min(minutes):.1f}-{max(minutes):.1f} min" if minutes else "minutes not recorded"
    print(f"\nmachine: {machine()}")
    changed = f" with {', '.join(args.settings)}" if args.settings else ""
    print(f"model: {args.model}, {args.preset} preset{changed} (batch {cfg.batch_size} x {base.model.frames} frames, "
          f"{base.model.image_size}px), budget {budget}: {min(steps)}-{max(steps)} steps in "
          f"{took}; {args.train_seeds} training seed(s) x {args.seeds} "
          f"evaluation seed(s) on {report['n_sequences']} test sequences; runs in {root}\n")

    def metric(name: str) -> list[float]:
        return [r["metrics"][name] for r in results]

    print("| method | Acc | IS | H(y\\|x) | H(y) | source |")
    print("|---|---|---|---|---|---|")
    print(f"| pyro-dvae {args.model}, `cpu` preset ({budget}) | "
          f"{spread(metric('dynamics_kept.action_accuracy'), 100, 2)}% | {spread(metric('dynamics_kept.is'))} | "
          f"{spread(metric('dynamics_kept.h_y_given_x'))} | {spread(metric('dynamics_kept.h_y'))} | "
          f"`benchmarks/results/quality.py --model {args.model}` |\n")
    print("| " + " | ".join(label for _, _, label in HEADS) + " | swap: A's attributes (mean) | swap: B's action |")
    print("|" + "---|" * (len(HEADS) + 2))
    swap_attrs = swap_attributes(results)
    print("| " + " | ".join(spread(metric(f"{s}.{m}"), 100, 1) + "%" for s, m, _ in HEADS)
          + f" | {spread(swap_attrs, 100, 1)}% | {spread(metric('swap.action'), 100, 1)}% |\n")
    print("| metric | mean over training seeds | std |")
    print("|---|---|---|")
    for name in results[0]["metrics"]:
        values = metric(name)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"| `{name}` | {statistics.fmean(values):.4f} | {std:.4f} |")


def finished_report(folder: Path, config: RunConfig) -> dict | None:
    """The evaluation a previous call of this script wrote for a run trained to the end with exactly
    ``config`` (so an interrupted or extended call only trains the seeds it lacks), else None."""
    path = folder / "evaluation.json"
    if not path.is_file() or not (folder / "config.toml").is_file():
        return None
    if (folder / "config.toml").read_text() != to_toml(config):
        return None
    return json.loads(path.read_text())


def swap_attributes(results: list[dict]) -> list[float]:
    """Per run: the mean over the four attributes of A that the swaps keep."""
    return [statistics.fmean(r["metrics"][f"swap.{a}"] for a in ("skin", "pants", "top", "hair"))
            for r in results]


def curve(args: argparse.Namespace) -> None:
    """Quality against training minutes (and steps): one run per seed, evaluated between chunks."""
    base = with_settings(preset(args.preset, "sprites", args.model), args.settings).override(
        "train", steps=args.steps or 10**7, device=args.device, max_minutes=0)
    root = args.out or Path("runs") / f"curve-{args.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    judge = load_judge(args.judge) if args.judge else None
    marks = sorted(args.curve)
    steps_at = dict(zip(marks, sorted(args.steps_at), strict=True)) if args.steps_at else {}
    rows: dict[float, list[dict]] = {m: [] for m in marks}
    for seed in range(args.first_seed, args.first_seed + args.train_seeds):
        folder, spent = root / f"seed{seed}", 0.0
        done = [folder / f"evaluation-{mark:g}min.json" for mark in marks]
        if all(path.is_file() for path in done):  # measured by an earlier call: read, do not train again
            print(f"{folder}: every mark evaluated before; not trained again")
            for mark, path in zip(marks, done, strict=True):
                report = json.loads(path.read_text())
                rows[mark].append({"steps": report["step"], "minutes": report.get("training_minutes"), "metrics": {
                    f"{s}.{m}": v["mean"] for s, ms in report["metrics"].items() for m, v in ms.items()}})
            continue
        for mark in marks:
            start = time.perf_counter()
            if steps_at:  # to the step count, with no clock (train() and resume() both stop there)
                config = base.override("train", seed=seed, steps=steps_at[mark])
                run = (train(config, folder, progress=True) if spent == 0 else
                       resume(folder, steps=steps_at[mark], max_minutes=0, progress=True))
            elif spent == 0:
                run = train(base.override("train", seed=seed, max_minutes=mark), folder, progress=True)
            # A --steps cap may end the run before the last mark, and a chunk (its set-up and prior fits
            # included) may overrun the next mark: then that mark reads the run as it is.
            elif run.step < base.train.steps and mark > spent:
                run = resume(folder, steps=base.train.steps, max_minutes=mark - spent, progress=True)
            spent += (time.perf_counter() - start) / 60
            report = evaluate_run(run, seeds=args.seeds, judge=judge, limit=args.limit)
            report.update(training_minutes=spent, step_matched=bool(steps_at))
            (folder / f"evaluation-{mark:g}min.json").write_text(json.dumps(report, indent=2) + "\n")
            rows[mark].append({"steps": run.step, "minutes": spent, "metrics": {
                f"{s}.{m}": v["mean"] for s, ms in report["metrics"].items() for m, v in ms.items()}})
    print(f"\nmachine: {machine()}")
    changed = f" with {', '.join(args.settings)}" if args.settings else ""
    print(f"model: {args.model}, {args.preset} preset{changed} without its budget, {args.train_seeds} training "
          f"seed(s) x {args.seeds} evaluation seed(s) on {report['n_sequences']} test sequences; runs in {root}\n")
    print("| minutes | steps | " + " | ".join(label for _, _, label in HEADS)
          + " | IS | H(y\\|x) | swap: A's attributes (mean) | swap: B's action | PSNR |")
    print("|" + "---|" * (len(HEADS) + 7))
    for mark in marks:
        results = rows[mark]

        def metric(name: str, results=results) -> list[float]:
            return [r["metrics"][name] for r in results]

        steps = [r["steps"] for r in results]
        print(f"| {mark:g} | {min(steps)}-{max(steps)} | "
              + " | ".join(spread(metric(f"{s}.{m}"), 100, 1) + "%" for s, m, _ in HEADS)
              + f" | {spread(metric('dynamics_kept.is'), 1, 2)} | {spread(metric('dynamics_kept.h_y_given_x'))}"
              + f" | {spread(swap_attributes(results), 100, 1)}% | {spread(metric('swap.action'), 100, 1)}%"
              + f" | {spread(metric('reconstruction.psnr'), 1, 1)} |")
    for level in (0.95, 0.99):
        print(f"\nevery head >= {level:.0%} (mean over training seeds): " + time_to(rows, level))
    print(f"\nfigure: {plot_curve(root)}")


def time_to(rows: dict[float, list[dict]], level: float) -> str:
    """The first mark at which the mean of every head (and of both swap columns) reaches ``level``."""
    for mark, results in sorted(rows.items()):
        heads = [statistics.fmean(r["metrics"][f"{s}.{m}"] for r in results) for s, m, _ in HEADS]
        swaps = [statistics.fmean(swap_attributes(results)), statistics.fmean(r["metrics"]["swap.action"]
                                                                               for r in results)]
        if min(heads + swaps) >= level:
            steps = [r["steps"] for r in results]
            return f"after {mark:g} minutes ({min(steps)}-{max(steps)} steps)"
    return f"not within {max(rows):g} minutes"


def plot_curve(root: Path) -> Path:
    """ROOT/curve.png: every head against training minutes, one line per head (mean over the
    training seeds), from the evaluation-<minutes>min.json files that --curve wrote."""
    import matplotlib.pyplot as plt

    from pyro_dvae.plotting import save_figure

    reports = defaultdict(list)  # minutes -> one report per training seed
    for path in sorted(root.glob("seed*/evaluation-*min.json")):
        reports[float(path.stem.removeprefix("evaluation-").removesuffix("min"))].append(json.loads(path.read_text()))
    if not reports:
        raise SystemExit(f"{root}: no seed*/evaluation-<minutes>min.json files; run --curve first")
    minutes = sorted(reports)

    def mean(key: str) -> list[float]:
        section, name = key.split(".")
        return [100 * statistics.fmean(r["metrics"][section][name]["mean"] for r in reports[m]) for m in minutes]

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for section, name, label in HEADS:
        ax.plot(minutes, mean(f"{section}.{name}"), marker="o", label=label)
    swaps = [statistics.fmean(values) for values in zip(*(mean(f"swap.{a}") for a in ATTRIBUTES), strict=True)]
    ax.plot(minutes, swaps, marker="s", linestyle="--", label="swap: A's attributes")
    ax.plot(minutes, mean("swap.action"), marker="s", linestyle="--", label="swap: B's action")
    steps = [statistics.fmean(r["step"] for r in reports[m]) for m in minutes]
    first = reports[minutes[0]][0]
    size = first.get("image_size", "?")  # evaluations before the resolution was recorded lack it
    ax.set_xticks(minutes, [f"{m:g}" for m in minutes])
    ax.set(xlabel="training minutes (steps: " + " / ".join(f"{s:,.0f}" for s in steps) + ")",
           ylabel="judge accuracy (%)", ylim=(0, 101),
           title=f"{first['model']} on {first['data']} at {size}x{size}: {len(reports[minutes[0]])} training seed(s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, root / "curve.png")


if __name__ == "__main__":
    main()
