"""Regenerate the models shipped in pyro_dvae/pretrained/ from the default commands.

For each shipped model: train it with the default command on the CPU (`pyro-dvae train --data
DATA --preset cpu --device cpu --seed 0`, the run a user without a GPU gets), train its latent
predictor where its family needs one (`pyro-dvae train-predictor RUN`), evaluate it (`pyro-dvae
evaluate RUN`, 3 seeds), then write the release: the configuration, step and weights with the
fitted priors (no optimiser state) in half precision where that changes no reported accuracy by
more than 0.1 point (measured here: both are evaluated with the same seeds), the evaluation
JSON, a model card (command, commit, machine, minutes, evaluation, licence, sha256), and the
sha256 of every file in MANIFEST.json. Run it from the repository root on a quiet machine whenever
a default preset changes (tests/test_pretrained.py says when):

    python scripts/make_pretrained.py                     # every model (about 45 minutes on 2 cores)
    python scripts/make_pretrained.py --only sprites      # one of them
    python scripts/make_pretrained.py --reuse runs/pretrained-work   # package runs trained before
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # for common.machine
from common import machine  # noqa: E402

from pyro_dvae import load_run, pretrained  # noqa: E402
from pyro_dvae.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from pyro_dvae.evaluation import evaluate_run  # noqa: E402
from pyro_dvae.runs import CHECKPOINT_FILE, CONFIG_FILE, Run  # noqa: E402

#: What ships: name -> data source, description, licence of what it learned from, and the check
#: evaluation the tests repeat (a few hundred test sequences, one seed).
MODELS = {
    "sprites": dict(data="sprites", description="the DVAE's default CPU run on Sprites (32x32, 15 minutes)",
                    licence="CC-BY-SA 3.0 / GPL 3.0, as the LPC art it learned from "
                            "(pyro_dvae/data/assets/lpc: AUTHORS.txt and the licence texts)",
                    check_limit=288),
    "moving-mnist-1": dict(data="moving-mnist-1",
                           description="the DVAE's default CPU run on one-digit Moving MNIST (15 minutes)",
                           licence="CC BY-SA 3.0, as the MNIST digits it learned from (pyro_dvae/data/assets/mnist)",
                           check_limit=300),
}
#: Half precision is kept only if no accuracy-like metric (a fraction) moves by more than this.
HALF_TOLERANCE = 0.001
PREDICTOR_FILE = "predictor.pt"


def run_command(args: list[str]) -> float:
    """Run ``pyro-dvae ARGS``; returns its minutes."""
    print("$ pyro-dvae " + " ".join(args), flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pyro_dvae", *args], check=True, cwd=ROOT)
    return (time.perf_counter() - started) / 60


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=ROOT).stdout.strip()
    return head.strip() + (" (with uncommitted changes)" if dirty else "")


def half(state: dict) -> dict:
    return {k: v.half() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in state.items()}


def flat_metrics(report: dict) -> dict[str, float]:
    return {f"{s}.{m}": v["mean"] for s, ms in report["metrics"].items() for m, v in ms.items()}


def release(name: str, spec: dict, work: Path, minutes: dict[str, float], commands: list[str]) -> None:
    run_dir, target = work / name, ROOT / "pyro_dvae" / "pretrained" / name
    target.mkdir(parents=True, exist_ok=True)
    payload = load_checkpoint(run_dir / CHECKPOINT_FILE)
    full = evaluate_run(load_run(run_dir), seeds=3, progress=False)
    # The same model with its weights rounded to half precision, evaluated with the same seeds.
    rounded = load_run(run_dir)
    rounded.model.load_state_dict({k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
                                   for k, v in half(payload["model"]).items()})
    halved = evaluate_run(rounded, seeds=3, progress=False)
    moved = {k: abs(v - flat_metrics(full)[k]) for k, v in flat_metrics(halved).items()}
    accuracy_moves = [d for k, d in moved.items() if _is_fraction(k, flat_metrics(full)[k])]
    use_half = max(accuracy_moves, default=0.0) <= HALF_TOLERANCE
    shipped = rounded if use_half else load_run(run_dir)
    report = halved if use_half else full
    check = evaluate_run(shipped, seeds=1, limit=spec["check_limit"], progress=False)
    save_checkpoint(target / CHECKPOINT_FILE, {
        "config": payload["config"], "step": payload["step"],
        "model": half(payload["model"]) if use_half else payload["model"],
        "release": {"name": name, "half_precision": use_half}})
    (target / CONFIG_FILE).write_text((run_dir / CONFIG_FILE).read_text())
    evaluation = {**report, "run": f"{pretrained.PREFIX}{name}", "check": {
        "limit": spec["check_limit"], "seeds": 1, "metrics": check["metrics"]}}
    (target / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    files = [CHECKPOINT_FILE, CONFIG_FILE, "evaluation.json"]
    if (run_dir / PREDICTOR_FILE).is_file():
        predictor = load_checkpoint(run_dir / PREDICTOR_FILE)
        predictor.pop("optimizer", None)
        predictor.pop("rng", None)
        save_checkpoint(target / PREDICTOR_FILE, predictor)
        files.append(PREDICTOR_FILE)
    (target / pretrained.CARD).write_text(card(name, spec, payload["step"], minutes, commands, report, moved,
                                                use_half, pretrained.sha256(target / CHECKPOINT_FILE)))
    files.append(pretrained.CARD)
    manifest_path = ROOT / "pyro_dvae" / "pretrained" / pretrained.MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[name] = {"description": spec["description"],
                      "files": {f: pretrained.sha256(target / f) for f in files}}
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    size = sum((target / f).stat().st_size for f in files)
    print(f"{name}: {size / 2**20:.2f} MB, half precision: {use_half}", flush=True)


def _is_fraction(key: str, value: float) -> bool:
    """Accuracies and agreement rates (what '0.1 point' applies to), not ELBOs, PSNR, IS or pixels."""
    return 0.0 <= value <= 1.0 and not any(s in key for s in ("elbo", "psnr", "mse", "_px", "ratio", ".is", "h_y"))


def card(name, spec, step, minutes, commands, report, moved, use_half, checkpoint_sha) -> str:
    rows = "\n".join(f"| `{section}.{metric}` | {v['mean']:.4f} | {v['std']:.4f} | {moved[f'{section}.{metric}']:.4f} |"
                     for section, metrics in report["metrics"].items() for metric, v in metrics.items())
    return f"""# pretrained:{name}

{spec['description'][0].upper() + spec['description'][1:]}.

| | |
|---|---|
| commands | {'<br>'.join(f'`{c}`' for c in commands)} |
| commit | {commit()} |
| machine | {machine().replace(' | ', '; ')} |
| minutes | training {minutes['train']:.1f}, latent predictor {minutes.get('predictor', 0):.1f} |
| step | {step} |
| weights | {'half precision (float16)' if use_half else 'single precision (float32)'}, no optimiser state |
| licence | {spec['licence']} |
| sha256 of checkpoint.pt | `{checkpoint_sha}` (every file's in pyro_dvae/pretrained/MANIFEST.json, checked on load) |

Use it as a run directory: `pyro-dvae sample pretrained:{name}`, `inspect`, `evaluate`, `predict`, or
`load_run("pretrained:{name}")`; it is read-only (`pyro-dvae pretrained copy {name} DIR` makes a copy of
your own, which `pyro-dvae train --resume DIR` continues).

## Evaluation

`pyro-dvae evaluate pretrained:{name}` ({report['seeds']} evaluation seeds on {report['n_sequences']} test
sequences, the {report['protocol']} protocol; docs/metrics.md defines each metric). The last column is how
far the metric moved when the weights were rounded to half precision (same seeds).

| metric | mean | std over seeds | moved by half precision |
|---|---|---|---|
{rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(MODELS), help="regenerate only these")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "pretrained-work", help="where runs train")
    parser.add_argument("--reuse", action="store_true", help="package runs already trained in --work")
    args = parser.parse_args()
    for name in args.only or sorted(MODELS):
        spec, run_dir = MODELS[name], args.work / name
        train = ["train", "--data", spec["data"], "--preset", "cpu", "--device", "cpu", "--seed", "0", "--quiet",
                 "--out", str(run_dir)]
        commands = ["pyro-dvae " + " ".join(train).replace(str(run_dir), "RUN")]
        minutes = {}
        if not args.reuse:
            minutes["train"] = run_command(train)
        needs_predictor = not Run.load(run_dir).model.can("predict_dynamics")
        if needs_predictor:
            commands.append("pyro-dvae train-predictor RUN")
            if not args.reuse:
                minutes["predictor"] = run_command(["train-predictor", str(run_dir), "--device", "cpu", "--quiet"])
        if args.reuse:
            minutes = json.loads((run_dir / "minutes.json").read_text())
        (run_dir / "minutes.json").write_text(json.dumps(minutes))
        release(name, spec, args.work, minutes, commands)


if __name__ == "__main__":
    main()
