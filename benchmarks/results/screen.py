"""Screen variants of DSA's and DrNet's `cpu` presets with the care the DVAE's had (issue 35).

Each row is a family's `cpu` preset, or an earlier row with one change, given as `pyro-dvae train`
flags. Every row trains through the real command line for the same wall-clock minutes (training seed
0), is evaluated with `pyro-dvae evaluate` (the data set's protocol and judge, docs/metrics.md) and
printed as one line of a markdown table together with the command that trained it, so that any row
can be reproduced by hand. Finished rows are kept in ``--out`` and skipped when the script runs again.
Run it on a quiet machine (one torch job at a time):

    python benchmarks/results/screen.py --model dsa --data sprites --minutes 5 --limit 900
    python benchmarks/results/screen.py --model drnet --data moving-mnist-1 --minutes 5 --limit 300
    python benchmarks/results/screen.py --model dsa --data sprites --table     # print what --out holds
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for common
from common import machine  # noqa: E402

BASE = "the preset"
# The choices that moved the DVAE (docs/ablation.md), for the families that have them: the static
# code's KL weight (DSA; DrNet has no KL), analytic KLs, a smaller dynamic code and a prior fitted
# after training; then each family's own levers. (The DVAE's other transfer, the protocol's training
# poses, both already have: they train on the protocol's ordered sequences, SpritesActions.)
TRANSFERS = ["--f-kl-weight", "0.1", "--elbo", "meanfield", "--z-dim", "4", "--f-prior", "fitted-flow"]
# (row name, the row it changes or None for the preset, the flags it adds)
ROWS: dict[str, list[tuple[str, str | None, list[str]]]] = {
    "dsa": [
        (BASE, None, []),
        ("beta_f 0.1", BASE, ["--f-kl-weight", "0.1"]),
        ("analytic KLs", BASE, ["--elbo", "meanfield"]),
        ("z_dim 4", BASE, ["--z-dim", "4"]),
        ("fitted flow p(f)", BASE, ["--f-prior", "fitted-flow"]),
        ("full posterior", BASE, ["--model-option", "posterior=full"]),
        ("learning rate 2e-3", BASE, ["--lr", "2e-3"]),
        ("the DVAE's transfers", BASE, TRANSFERS),
    ],
    "drnet": [
        (BASE, None, []),
        ("no adversarial loss", BASE, ["--model-option", "adversarial_weight=0"]),
        ("adversarial weight 1e-2", BASE, ["--model-option", "adversarial_weight=1e-2"]),
        ("pairs at most 3 frames apart", BASE, ["--model-option", "frames=4"]),
        ("z_dim 4", BASE, ["--z-dim", "4"]),
        ("f_dim 64", BASE, ["--f-dim", "64"]),
        ("learning rate 1e-3", BASE, ["--lr", "1e-3"]),
        ("convolutions 32 wide", BASE, ["--model-option", "conv_width=32"]),
    ],
}

# Rows for one kind of data only. One digit's dynamics are its 2-D position, the size the DVAE's z
# has there; and the DVAE's largest measured gain on Moving MNIST was its decoder (f draws a canvas
# once per set and z only moves it, the shift kernel narrowed by schedule: docs/ablation.md), a
# shared network that DSA and DrNet can take too.
TRANSLATE = ["--model-option", "decoder=translate", "--model-option", "shift_sharpening=1500"]
DATA_ROWS: dict[str, list[tuple[str, str | None, list[str]]]] = {
    "moving-mnist-1": [("z_dim 2", BASE, ["--z-dim", "2"]), ("the DVAE's translate decoder", BASE, TRANSLATE)],
}


def rows(family: str, data: str) -> list[tuple[str, str | None, list[str]]]:
    """The family's rows, then those for this kind of data."""
    return ROWS[family] + DATA_ROWS.get(data, [])


SPRITES_COLUMNS = [("dynamics_kept.action_accuracy", "action (f resampled)"), ("static_kept.skin", "skin"),
                   ("static_kept.pants", "pants"), ("static_kept.top", "top"),
                   ("static_kept.hair", "hair (z resampled)"), ("swap.attributes", "swap: A's attributes"),
                   ("swap.action", "swap: B's action")]
DIGIT_COLUMNS = [("swap.digit", "swap: A's digit"), ("swap.position_error_px", "position error (px)"),
                 ("reconstruction.reconstructed_digit", "digit read from reconstructions")]


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def row_flags(family: str, data: str, name: str) -> list[str]:
    """The row's flags: its parents' and then its own (a later flag overrides an earlier one)."""
    _, parent, flags = next(row for row in rows(family, data) if row[0] == name)
    return (row_flags(family, data, parent) if parent else []) + flags


def train_command(args: argparse.Namespace, name: str, folder: Path) -> list[str]:
    return ["pyro-dvae", "train", "--model", args.model, "--data", args.data, "--preset", args.preset,
            "--seed", str(args.seed), "--max-minutes", f"{args.minutes:g}", "--device", "cpu",
            *row_flags(args.model, args.data, name), "--out", str(folder)]


def run_row(args: argparse.Namespace, name: str) -> dict:
    """Train and evaluate one row through the command line; the result is cached in its folder."""
    folder = args.out / slug(name)
    done = folder / "screen.json"
    if done.exists():
        return json.loads(done.read_text())
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted row starts again
    command = train_command(args, name, folder)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {shlex.join(command)}", flush=True)
    start = time.perf_counter()
    trained = subprocess.run([*command, "--quiet"], stderr=subprocess.PIPE, text=True)
    minutes = (time.perf_counter() - start) / 60
    if trained.returncode:  # a row the family refuses is a result too; the screen goes on
        error = (trained.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"  failed: {error}", flush=True)
        return {"name": name, "command": shlex.join(command).replace(str(folder), "RUN"), "failed": error}
    evaluate = ["pyro-dvae", "evaluate", str(folder), "--seeds", str(args.seeds), "--device", "cpu", "--quiet",
                *(["--limit", str(args.limit)] if args.limit else [])]
    subprocess.run(evaluate, check=True, stdout=subprocess.DEVNULL)
    report = json.loads((folder / "evaluation.json").read_text())
    metrics = {f"{s}.{m}": v["mean"] for s, ms in report["metrics"].items() for m, v in ms.items()}
    attributes = [metrics[f"swap.{a}"] for a in ("skin", "pants", "top", "hair") if f"swap.{a}" in metrics]
    if attributes:
        metrics["swap.attributes"] = sum(attributes) / len(attributes)
    result = {"name": name, "command": shlex.join(command).replace(str(folder), "RUN"),
              "steps": last_step(folder),
              "train_minutes": minutes, "n_sequences": report["n_sequences"], "metrics": metrics}
    done.write_text(json.dumps(result, indent=2) + "\n")
    return result


def last_step(folder: Path) -> int:
    """The run's last logged step (read from its metrics, so that this script never loads a model)."""
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return max(json.loads(line)["step"] for line in lines if line.strip())


def table(results: list[dict]) -> list[str]:
    columns = SPRITES_COLUMNS if any("dynamics_kept.action_accuracy" in r.get("metrics", {}) for r in results) \
        else DIGIT_COLUMNS
    lines = ["| change | steps | " + " | ".join(label for _, label in columns) + " | command |",
             "|---|---|" + "---|" * len(columns) + "---|"]
    for r in results:
        if "failed" in r:
            lines.append(f"| {r['name']} | failed: {r['failed']} |" + " |" * len(columns) + f" `{r['command']}` |")
            continue
        cells = [("" if key not in r["metrics"] else f"{r['metrics'][key]:.2f}" if key.endswith("_px")
                  else f"{100 * r['metrics'][key]:.1f}") for key, _ in columns]
        lines.append(f"| {r['name']} | {r['steps']} | " + " | ".join(cells) + f" | `{r['command']}` |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(ROWS), required=True)
    parser.add_argument("--data", default="sprites")
    parser.add_argument("--minutes", type=float, default=5.0, help="wall-clock training budget of every row")
    parser.add_argument("--preset", default="cpu", help="the preset the rows change (tiny: a smoke check)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every row")
    parser.add_argument("--seeds", type=int, default=1, help="evaluation seeds")
    parser.add_argument("--limit", type=int, help="evaluate the first N test sequences (default: all)")
    parser.add_argument("--rows", nargs="+", help="row names to run (default: all of the family's)")
    parser.add_argument("--out", type=Path, help="default runs/screen/MODEL-DATA")
    parser.add_argument("--table", action="store_true", help="train nothing: print the rows in --out")
    args = parser.parse_args()
    args.out = args.out or Path("runs/screen") / f"{args.model}-{slug(args.data)}"
    known = [row[0] for row in rows(args.model, args.data)]
    names = args.rows or known
    unknown = set(names) - set(known)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; the {args.model} rows on {args.data} are {known}")
    if args.table:
        results = [json.loads(f.read_text()) for name in names if (f := args.out / slug(name) / "screen.json").exists()]
    else:
        results = [run_row(args, name) for name in names]
    print(f"\nmachine: {machine()}")
    print(f"{args.model} on {args.data}: the {args.preset} preset and one change per row, {args.minutes:g} min of "
          f"training each, training seed {args.seed}, {args.seeds} evaluation seed(s)"
          + (f" on the first {args.limit} test sequences" if args.limit else "") + f"; runs in {args.out}\n")
    print("\n".join(table(results)))


if __name__ == "__main__":
    main()
