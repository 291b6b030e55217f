"""Evaluation protocols of a trained run: what is generated, what is judged, what is reported.

The protocol follows the run's data source:

* ``sprites``: the Li & Mandt (2018) protocol on the 2664 labelled test sequences of 8 frames
  (reconstruction, dynamics kept with f resampled, f kept with dynamics resampled, swaps,
  f consistency), judged by the Sprites judge.
* ``moving-mnist-1`` (or ``moving-mnist`` with ``digits=1``): reconstruction and swaps judged by
  a digit classifier (the digit must follow f's source) and by the digit's centre of mass
  against the generator's true positions (the position must follow z's source).
* anything else: the label-free metrics only (ELBO, MSE, PSNR, f consistency).

Every stochastic step (which N-frame subsets infer f, prior draws, swap partners) is repeated
for each of K seeds; each metric is reported as mean, std and per-seed values. See
``docs/metrics.md`` for the definitions and the JSON layout.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import posterior
from ..models.base import SequenceModel
from ..runs import Run
from .judges import Judge, default_settings, get_judge, resample, to_judge_size
from .metrics import (
    centre_of_mass,
    conditional_entropy,
    inception_score,
    marginal_entropy,
    mse_per_frame,
    psnr,
    summarize,
)

PROTOCOLS = ("sprites", "moving-mnist-1", "generic")
#: Frames per evaluated set for sources without a fixed protocol length.
GENERIC_FRAMES = 8
#: N-frame subsets averaged to infer f from a longer set (posterior.infer_static).
STATIC_SUBSETS = 8


def protocol_for(run: Run) -> str:
    """The protocol a run is evaluated with, from its data source and options."""
    source, options = str(run.config.data.source), run.config.data.options
    if source == "sprites":
        return "sprites"
    if source == "moving-mnist-1" or (source == "moving-mnist" and options.get("digits") == 1):
        return "moving-mnist-1"
    return "generic"


def judge_kind(protocol: str) -> str | None:
    """The judge a protocol needs (None: label-free)."""
    return {"sprites": "sprites", "moving-mnist-1": "digits"}.get(protocol)


# --------------------------------------------------------------------------------------------
# Batches of labelled test sequences, at the model's image size
# --------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """Test sequences x (B, T, C, S, S) with whatever labels the protocol uses."""

    x: Tensor
    labels: dict[str, Tensor]


def _sprites_batches(run: Run, limit: int | None, batch_size: int) -> tuple[int, int, Iterator[Batch]]:
    from ..data.sprites import EVAL_CLASSES, SEQUENCE_LENGTH, split_identities, sprites_eval_sequences

    # Whole identities cover the limit; extra rows are cut below.
    n_ids = None if limit is None else min(len(split_identities("test")), math.ceil(limit / len(EVAL_CLASSES)))
    seqs = sprites_eval_sequences("test", run.device, n_ids)
    n = len(seqs) if limit is None else min(limit, len(seqs))
    size = run.config.model.image_size

    def batches() -> Iterator[Batch]:
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            yield Batch(resample(seqs.frames(rows), size), {"attrs": seqs.attrs[rows], "action": seqs.action[rows]})

    return n, SEQUENCE_LENGTH, batches()


def _frame_set_batches(run: Run, limit: int | None, batch_size: int) -> tuple[int, int, Iterator[Batch]]:
    data = run.data("test")
    n = len(data) if limit is None else min(limit, len(data))
    n_frames = min(GENERIC_FRAMES, int(data.set_sizes[:n].min()))
    # Fixed frames per set (the same for every seed): random distinct ones, so that sets of
    # consecutive video frames are not judged on near-duplicates.
    with_digits = protocol_for(run) == "moving-mnist-1"
    frames = data.sample_frame_indices(torch.arange(n, device=data.device), n_frames,
                                       torch.Generator(data.device).manual_seed(0))

    def batches() -> Iterator[Batch]:
        for start in range(0, n, batch_size):
            sets = torch.arange(start, min(start + batch_size, n), device=data.device)
            idx = frames[sets]
            labels = {}
            if with_digits:
                labels = {"digit": data.labels[sets, 0], "position": data.positions[sets[:, None], idx, 0],
                          "image": data.digit_indices[sets, 0]}
            yield Batch(data.frames(sets[:, None], idx), labels)

    return n, n_frames, batches()


# --------------------------------------------------------------------------------------------
# Per-batch measurements (one seed); each returns {metric: (sum, count)}
# --------------------------------------------------------------------------------------------

Sums = dict[str, tuple[float, int]]


def _mean_of(name: str, values: Tensor) -> Sums:
    return {name: (float(values.float().sum()), values.numel())}


def _correct(name: str, probs: Tensor, labels: Tensor) -> Sums:
    return _mean_of(name, probs.argmax(-1) == labels)


def resampling(model: SequenceModel) -> dict[str, str]:
    """Where "resampled" codes come from for this family: its priors, or (a family without them,
    such as DrNet) the codes of a random other test sequence of the batch."""
    other = "the codes of a random other test sequence"
    return {"static": "the prior p(f)" if model.can("sample_static") else other,
            "dynamics": "the dynamics prior given f" if model.can("sample_dynamics") else other}


def _random_others(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """For each of n rows, the index of a uniformly drawn other row (n >= 2)."""
    return (torch.arange(n, device=device) + torch.randint(1, max(n, 2), (n,), generator=generator,
                                                         device=device)) % n


def resampled_static(model: SequenceModel, f: Tensor, generator: torch.Generator) -> Tensor:
    """Static codes drawn afresh: from p(f), or the codes of random other sequences."""
    if model.can("sample_static"):
        return model.sample_static(len(f))
    return f[_random_others(len(f), generator, f.device)]


def resampled_dynamics(model: SequenceModel, f: Tensor, z: Tensor, generator: torch.Generator) -> Tensor:
    """Dynamic codes drawn afresh given f: from the family's prior, or random other sequences' codes."""
    if model.can("sample_dynamics"):
        return model.sample_dynamics(f, z.shape[1])
    return z[_random_others(len(z), generator, z.device)]


def label_free(model: SequenceModel, x: Tensor, codes: posterior.Codes, generator: torch.Generator) -> Sums:
    """ELBO per frame (where the family has one, on the frames it trains on: random N-frame subsets
    for the DVAE, the whole ordered sequence for DSA), MSE and PSNR of reconstructions, f consistency."""
    out: Sums = {}
    if model.can("elbo_loss"):
        frames = model.elbo_frames(x, generator)
        with torch.no_grad():
            elbo = -float(model.elbo_loss(frames))
        out["reconstruction.elbo_per_frame"] = (elbo, frames.shape[0] * frames.shape[1])
    err = mse_per_frame(posterior.decode(model, *codes), x)
    ratio = posterior.static_consistency(model, x, STATIC_SUBSETS, generator)
    return {**out, **_mean_of("reconstruction.mse", err), **_mean_of("reconstruction.psnr", psnr(err)),
            # Weighted by batch size: each batch estimates the ratio from its own sets.
            "consistency.f_within_between_ratio": (ratio * x.shape[0], x.shape[0])}


def sprites_terms(model: SequenceModel, judge: Judge, batch: Batch, codes: posterior.Codes,
                  generator: torch.Generator) -> tuple[Sums, Tensor]:
    """Judge accuracies of the Sprites protocol; also the action probabilities of the
    dynamics-kept sequences (for IS and the entropies, which need the whole test set)."""
    from ..data.sprites import ATTRIBUTES

    x, attrs, action = batch.x, batch.labels["attrs"], batch.labels["action"]
    f, z = codes
    out: Sums = {}

    def attributes(prefix: str, probs: Tensor, labels: Tensor) -> None:
        for i, name in enumerate(ATTRIBUTES):
            out.update(_correct(f"{prefix}{name}", probs[:, i], labels[:, i]))

    for tag, frames in (("real", x), ("reconstructed", posterior.decode(model, f, z))):
        attr_p, action_p = judge.sprites(frames)
        attributes(f"reconstruction.{tag}_", attr_p, attrs)
        out.update(_correct(f"reconstruction.{tag}_action", action_p, action))

    _, dyn_action = judge.sprites(posterior.decode(model, resampled_static(model, f, generator), z))
    out.update(_correct("dynamics_kept.action_accuracy", dyn_action, action))

    static_attr, _ = judge.sprites(posterior.decode(model, f, resampled_dynamics(model, f, z, generator)))
    attributes("static_kept.", static_attr, attrs)

    partner = torch.randperm(len(x), generator=generator, device=x.device)
    swap_attr, swap_action = judge.sprites(posterior.decode(model, f, z[partner]))
    attributes("swap.", swap_attr, attrs)
    out.update(_correct("swap.action", swap_action, action[partner]))
    return out, dyn_action


def _digit_offsets(images: Tensor) -> Tensor:
    """Centre of mass (row, col) of each bundled digit image within its 28x28 box: (n, 2)."""
    from ..data.moving_mnist import load_digits

    pixels = torch.from_numpy(load_digits()[0]).to(images.device)[images].float()
    return centre_of_mass(pixels[:, None])


def mnist_terms(model: SequenceModel, judge: Judge, batch: Batch, codes: posterior.Codes,
                generator: torch.Generator) -> Sums:
    """Digit accuracy on real, reconstructed and swapped frames; position error of swaps.

    A swap keeps sequence A's f and takes sequence B's z's: the digit should be A's and sit where
    B's digit was. The expected centre of mass is B's true top-left corner plus the centre of mass
    of A's digit image in its box; the error is the distance to the swapped frame's centre (in
    pixels of the 64x64 frame). The same distance to A's own trajectory is reported for scale.
    """
    x, digit = batch.x, batch.labels["digit"]
    f, z = codes
    per_frame = digit[:, None].expand(-1, x.shape[1])
    out: Sums = {}
    for tag, frames in (("real", x), ("reconstructed", posterior.decode(model, f, z))):
        out.update(_correct(f"reconstruction.{tag}_digit", judge.digits(frames), per_frame))
    partner = torch.randperm(len(x), generator=generator, device=x.device)
    swapped = posterior.decode(model, f, z[partner])
    out.update(_correct("swap.digit", judge.digits(swapped), per_frame))
    centre = centre_of_mass(to_judge_size(swapped))
    offset = _digit_offsets(batch.labels["image"])[:, None, :]
    position = batch.labels["position"].to(x.dtype)
    out.update(_mean_of("swap.position_error_px", (centre - position[partner] - offset).norm(dim=-1)))
    out.update(_mean_of("swap.position_error_static_source_px", (centre - position - offset).norm(dim=-1)))
    return out


# --------------------------------------------------------------------------------------------
# The run over seeds
# --------------------------------------------------------------------------------------------


def _one_seed(run: Run, protocol: str, judge: Judge | None, batches: Iterator[Batch], seed: int,
              progress: Callable[[int], None]) -> dict[str, float]:
    model = run.model.eval()
    generator = torch.Generator(run.device).manual_seed(seed)
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    dyn_probs = []
    with torch.random.fork_rng(devices=[run.device] if run.device.type == "cuda" else []):
        torch.manual_seed(seed)  # prior draws and the ELBO's posterior samples
        for batch in batches:
            codes = posterior.encode(model, batch.x, generator)
            terms = label_free(model, batch.x, codes, generator)
            if protocol == "sprites":
                more, probs = sprites_terms(model, judge, batch, codes, generator)
                dyn_probs.append(probs)
                terms.update(more)
            elif protocol == "moving-mnist-1":
                terms.update(mnist_terms(model, judge, batch, codes, generator))
            for name, (total, count) in terms.items():
                sums[name][0] += total
                sums[name][1] += count
            progress(len(batch.x))
    values = {name: total / count for name, (total, count) in sums.items()}
    if dyn_probs:
        probs = torch.cat(dyn_probs)
        values.update({"dynamics_kept.is": inception_score(probs),
                       "dynamics_kept.h_y_given_x": conditional_entropy(probs),
                       "dynamics_kept.h_y": marginal_entropy(probs)})
    return values


def evaluate_run(run: Run, *, seeds: int = 3, judge: Judge | None = None, limit: int | None = None,
                 batch_size: int = 128, progress: bool = True) -> dict:
    """Evaluate a trained run on its test data; returns the report written as JSON.

    Parameters
    ----------
    run : the trained run (``load_run``).
    seeds : K repetitions of every stochastic step (seeds 0..K-1); metrics are summarised over them.
    judge : the judge to use; by default the cached judge of the protocol (trained on first use).
    limit : evaluate only the first ``limit`` test sequences (quick checks); None for all.
    batch_size : sequences per forward pass.
    progress : show a tqdm bar.
    """
    from tqdm.auto import tqdm

    from ..errors import UserInputError

    if seeds < 1:
        raise UserInputError(f"--seeds must be >= 1, got {seeds}")
    protocol = protocol_for(run)
    kind = judge_kind(protocol)
    if kind is not None and judge is None:
        judge = get_judge(default_settings(kind), run.device, progress)
    if kind is not None:
        if judge.kind != kind:
            raise UserInputError(f"the {protocol} protocol needs a {kind} judge, got a {judge.kind} judge")
        judge.to(run.device)
    make_batches = _sprites_batches if protocol == "sprites" else _frame_set_batches
    n, n_frames, _ = make_batches(run, limit, batch_size)
    if n_frames < run.model.min_frames:
        raise UserInputError(f"the test sequences have {n_frames} frames but the model compares "
                             f"N={run.model.min_frames}; evaluate a model trained with --frames {n_frames} or fewer")
    per_seed = []
    with tqdm(total=n * seeds, desc="evaluate", unit="seq", disable=not progress, dynamic_ncols=True) as bar:
        for seed in range(seeds):
            _, _, batches = make_batches(run, limit, batch_size)
            per_seed.append(_one_seed(run, protocol, judge if kind else None, batches, seed, bar.update))
    metrics: dict[str, dict] = defaultdict(dict)
    for name in per_seed[0]:
        section, metric = name.split(".", 1)
        metrics[section][metric] = summarize([values[name] for values in per_seed])
    return {
        "run": str(run.path), "step": run.step, "model": run.config.model.family,
        "data": str(run.config.data.source), "protocol": protocol, "resampled_from": resampling(run.model),
        "seeds": seeds, "n_sequences": n, "frames_per_sequence": n_frames,
        "image_size": run.config.model.image_size,
        "judge": None if judge is None else {
            "kind": judge.kind, "key": judge.key, "file": str(judge.path) if judge.path else None,
            "settings": judge.settings.to_dict(), "report": judge.report,
            "input_size": 64, "upsampling": "nearest",
        },
        "metrics": dict(metrics),
    }


def format_report(report: dict) -> str:
    """A plain-text table of a report: one line per metric, mean ± std over seeds."""
    lines = [f"{report['run']} (step {report['step']}): {report['protocol']} protocol on "
             f"{report['n_sequences']} test sequences x {report['frames_per_sequence']} frames, "
             f"{report['seeds']} seed(s); image size {report['image_size']}"]
    if report["judge"]:
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
