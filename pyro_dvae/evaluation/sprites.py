"""The Sprites protocol of Li & Mandt (2018) on the 2664 labelled test sequences of 8 frames.

Reconstruction, dynamics kept with f resampled, f kept with dynamics resampled, swaps and f
consistency, judged by the Sprites judge; predictions (3 -> 5 frames) judged for the action of
the whole sequence and the attributes of every predicted frame. docs/metrics.md defines them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from .. import posterior
from ..data.sprites import ATTRIBUTES, EVAL_CLASSES, SEQUENCE_LENGTH, split_identities, sprites_eval_sequences
from ..errors import UserInputError
from ..models.base import SequenceModel
from ..runs import Run
from .judges import Judge, resample
from .judges.sprites import JUDGE
from .metrics import conditional_entropy, inception_score, marginal_entropy
from .protocol import Batch, Protocol, Sums, correct, resampled_dynamics, resampled_static


def _batches(run: Run, limit: int | None, batch_size: int):
    # Whole identities cover the limit; extra rows are cut below.
    n_ids = None if limit is None else min(len(split_identities("test")), math.ceil(limit / len(EVAL_CLASSES)))
    seqs = sprites_eval_sequences("test", run.device, n_ids)
    n = len(seqs) if limit is None else min(limit, len(seqs))
    size = run.config.model.image_size

    def batches() -> Iterator[Batch]:
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            yield Batch(resample(seqs.frames(rows), size), {"attrs": seqs.attrs[rows], "action": seqs.action[rows]})

    return n, SEQUENCE_LENGTH, batches


def _terms(model: SequenceModel, judge: Judge, batch: Batch, codes: posterior.Codes,
           generator: torch.Generator) -> tuple[Sums, Tensor]:
    """Judge accuracies; also the action probabilities of the dynamics-kept sequences (for IS and
    the entropies, which need the whole test set)."""
    x, attrs, action = batch.x, batch.labels["attrs"], batch.labels["action"]
    f, z = codes
    out: Sums = {}

    def attributes(prefix: str, probs: Tensor, labels: Tensor) -> None:
        for i, name in enumerate(ATTRIBUTES):
            out.update(correct(f"{prefix}{name}", probs[:, i], labels[:, i]))

    for tag, frames in (("real", x), ("reconstructed", posterior.decode(model, f, z))):
        attr_p, action_p = judge.sprites(frames)
        attributes(f"reconstruction.{tag}_", attr_p, attrs)
        out.update(correct(f"reconstruction.{tag}_action", action_p, action))

    _, dyn_action = judge.sprites(posterior.decode(model, resampled_static(model, f, generator), z))
    out.update(correct("dynamics_kept.action_accuracy", dyn_action, action))

    static_attr, _ = judge.sprites(posterior.decode(model, f, resampled_dynamics(model, f, z, generator)))
    attributes("static_kept.", static_attr, attrs)

    partner = torch.randperm(len(x), generator=generator, device=x.device)
    swap_attr, swap_action = judge.sprites(posterior.decode(model, f, z[partner]))
    attributes("swap.", swap_attr, attrs)
    out.update(correct("swap.action", swap_action, action[partner]))
    return out, dyn_action


def _totals(dynamics_kept_actions: list[Tensor]) -> dict[str, float]:
    probs = torch.cat(dynamics_kept_actions)
    return {"dynamics_kept.is": inception_score(probs), "dynamics_kept.h_y_given_x": conditional_entropy(probs),
            "dynamics_kept.h_y": marginal_entropy(probs)}


def _sequences(run: Run, length: int, limit: int | None) -> tuple[Tensor, dict]:
    seqs = sprites_eval_sequences("test", run.device)
    n = len(seqs) if limit is None else min(limit, len(seqs))
    if length > seqs.cells.shape[1]:
        raise UserInputError(f"Sprites test sequences have {seqs.cells.shape[1]} frames; context + horizon is {length}")
    x = resample(seqs.frames(slice(0, n))[:, :length], run.config.model.image_size)
    return x, {"action": seqs.action[:n], "attrs": seqs.attrs[:n]}


def _judge_predictions(judge: Judge, context: Tensor, predicted: Tensor, labels: dict) -> dict:
    """The action of [reconstructed context, predicted frames], the attributes of every predicted frame."""
    _, action = judge.sprites(torch.cat([context, predicted], dim=1))
    hit = judge.sprites_frames(predicted).argmax(-1) == labels["attrs"][:, None]  # (B, H, 4)
    return {"action_accuracy": float((action.argmax(-1) == labels["action"]).float().mean()),
            "attributes_per_step": {name: hit[..., i].float().mean(0).tolist() for i, name in enumerate(ATTRIBUTES)}}


PROTOCOL = Protocol(name="sprites", judge=JUDGE, batches=_batches, terms=_terms, totals=_totals, prediction=(3, 5),
                    sequences=_sequences, judge_predictions=_judge_predictions)
