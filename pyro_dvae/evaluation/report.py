"""The evaluation of a trained run: its protocol's batches and terms over K seeds, and the report.

The protocol follows the run's data set (:func:`~pyro_dvae.evaluation.protocol.protocol_for`):
Sprites (:mod:`.sprites`), one-digit Moving MNIST (:mod:`.digits`), or for anything else the
label-free metrics only (ELBO, MSE, PSNR, f consistency). Every stochastic step (which N-frame
subsets infer f, prior draws, swap partners) is repeated for each of K seeds; each metric is
reported as mean, std and per-seed values. See ``docs/metrics.md`` for the definitions and the
JSON layout.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

import torch

from .. import posterior
from ..errors import UserInputError
from ..runs import Run
from .judges import JUDGE_SIZE, Judge, default_settings, get_judge
from .metrics import summarize
from .protocol import Batch, Protocol, label_free, protocol_for, resampling

# --------------------------------------------------------------------------------------------
# The run over seeds
# --------------------------------------------------------------------------------------------


def _one_seed(run: Run, protocol: Protocol, judge: Judge | None, batches: Iterator[Batch], seed: int,
              progress: Callable[[int], None]) -> dict[str, float]:
    model = run.model.eval()
    generator = torch.Generator(run.device).manual_seed(seed)
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    extras = []
    with torch.random.fork_rng(devices=[run.device] if run.device.type == "cuda" else []):
        torch.manual_seed(seed)  # prior draws and the ELBO's posterior samples
        for batch in batches:
            codes = posterior.encode(model, batch.x, generator)
            terms = label_free(model, batch.x, codes, generator)
            if protocol.terms is not None:
                judged, extra = protocol.terms(model, judge, batch, codes, generator)
                terms.update(judged)
                extras.append(extra)
            for name, (total, count) in terms.items():
                sums[name][0] += total
                sums[name][1] += count
            progress(len(batch.x))
    values = {name: total / count for name, (total, count) in sums.items()}
    if protocol.totals is not None and extras:
        values.update(protocol.totals(extras))
    return values


def evaluate_run(run: Run, *, seeds: int = 3, judge: Judge | None = None, limit: int | None = None,
                 batch_size: int = 128, progress: bool = True, protocol_name: str | None = None) -> dict:
    """Evaluate a trained run on its test data; returns the report written as JSON.

    Parameters
    ----------
    run : the trained run (``load_run``).
    seeds : K repetitions of every stochastic step (seeds 0..K-1); metrics are summarised over them.
    judge : the judge to use; by default the protocol's default judge (shipped with the package).
    limit : evaluate only the first ``limit`` test sequences (quick checks); None for all.
    batch_size : sequences per forward pass.
    progress : show a tqdm bar.
    protocol_name : evaluate with this data set's protocol (label-free on another data set's run)
        instead of the run's own.
    """
    from tqdm.auto import tqdm

    if seeds < 1:
        raise UserInputError(f"--seeds must be >= 1, got {seeds}")
    protocol = protocol_for(run, protocol_name)
    kind = protocol.judge.name if protocol.judge is not None else None
    if kind is not None and judge is None:
        judge = get_judge(default_settings(kind), run.device, progress)
    if kind is not None:
        if judge.kind != kind:
            raise UserInputError(f"the {protocol.name} protocol needs a {kind} judge, got a {judge.kind} judge")
        judge.to(run.device)
    n, n_frames, make_batches = protocol.test_batches(run, limit, batch_size)
    if n_frames < run.model.min_frames:
        raise UserInputError(f"the test sequences have {n_frames} frames but the model compares "
                             f"N={run.model.min_frames}; evaluate a model trained with --frames {n_frames} or fewer")
    per_seed = []
    with tqdm(total=n * seeds, desc="evaluate", unit="seq", disable=not progress, dynamic_ncols=True) as bar:
        for seed in range(seeds):
            per_seed.append(_one_seed(run, protocol, judge if kind else None, make_batches(), seed, bar.update))
    metrics: dict[str, dict] = defaultdict(dict)
    for name in per_seed[0]:
        section, metric = name.split(".", 1)
        metrics[section][metric] = summarize([values[name] for values in per_seed])
    return {
        "run": str(run.path), "step": run.step, "model": run.config.model.family,
        "data": str(run.config.data.source), "protocol": protocol.name, "resampled_from": resampling(run.model),
        "references": _REFERENCES[protocol.labelled] if kind is not None else None,
        "seeds": seeds, "n_sequences": n, "frames_per_sequence": n_frames,
        "image_size": run.config.model.image_size,
        "judge": None if judge is None else {
            "kind": judge.kind, "key": judge.key, "file": str(judge.path) if judge.path else None,
            "settings": judge.settings.to_dict(), "report": judge.report,
            "input_size": JUDGE_SIZE, "upsampling": "none" if run.config.model.image_size == JUDGE_SIZE else "nearest",
        },
        "metrics": dict(metrics),
    }


_REFERENCES = {True: "labels: the test set's true classes and positions",
               False: "label-free: the judge's readings of the real test frames"}


def format_report(report: dict) -> str:
    """A plain-text table of a report: one line per metric, mean ± std over seeds."""
    lines = [f"{report['run']} (step {report['step']}): {report['protocol']} protocol on "
             f"{report['n_sequences']} test sequences x {report['frames_per_sequence']} frames, "
             f"{report['seeds']} seed(s); image size {report['image_size']}"]
    if report["judge"]:
        size, judged = report["image_size"], report["judge"].get("input_size", JUDGE_SIZE)
        how = ("as drawn, no resizing" if size == judged
               else f"the model's {size}x{size} frames upsampled by nearest neighbour")
        lines.append(f"judged at {judged}x{judged} ({how})")
        if report.get("references"):
            lines.append(f"compared with {report['references']}")
        acc = report["judge"]["report"].get("test_accuracy", {}).get(str(report["image_size"]))
        if acc:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in acc.items())
            lines.append(f"judge {report['judge']['key']} held-out accuracy at {report['image_size']}px: {shown}")
    width = max(len(f"{s}.{m}") for s, ms in report["metrics"].items() for m in ms)
    lines.append(f"{'metric':<{width}}  {'mean':>10}  {'std':>9}")
    for section, metrics in report["metrics"].items():
        for metric, value in metrics.items():
            lines.append(f"{section + '.' + metric:<{width}}  {value['mean']:>10.4f}  {value['std']:>9.4f}")
    return "\n".join(lines)
