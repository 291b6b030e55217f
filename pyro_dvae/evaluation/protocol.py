"""The record of a labelled data set's evaluation, and what every protocol shares.

A :class:`Protocol` says which judge reads a run's outputs, which test batches it reads (with
their labels), which judged terms each batch adds to the label-free ones, and how predictions
are set up and judged. A data set names its protocol (:class:`pyro_dvae.data.DataSet`'s
``protocol``); :func:`protocol_for` finds a run's, and a source without one gets
:data:`GENERIC`: the label-free metrics only (ELBO, MSE, PSNR, f consistency).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import posterior
from ..data import protocol_of
from ..errors import UserInputError
from ..models.base import SequenceModel
from ..registry import DATASETS, resolve
from ..runs import Run
from .judges import Judge, JudgeKind
from .metrics import mse_per_frame, psnr

#: Frames per evaluated set for sources without a fixed protocol length.
GENERIC_FRAMES = 8
#: N-frame subsets averaged to infer f from a longer set (posterior.infer_static).
STATIC_SUBSETS = 8

#: Per-batch measurements: metric -> (sum, count).
Sums = dict[str, tuple[float, int]]


@dataclass
class Batch:
    """Test sequences x (B, T, C, S, S) with whatever labels the protocol uses."""

    x: Tensor
    labels: dict[str, Tensor]


#: ``batches(run, limit, batch_size) -> (n, frames_per_sequence, make)``: ``make()`` yields the
#: test batches (again for every evaluation seed, the same sequences each time).
Batches = Callable[[Run, int | None, int], tuple[int, int, Callable[[], Iterator[Batch]]]]


@dataclass(frozen=True)
class Protocol:
    """How runs on a data set are evaluated.

    Attributes
    ----------
    name : shown in reports (``"protocol"``).
    judge : the judge kind that reads generated frames, or None (label-free).
    batches : the test batches (see :data:`Batches`).
    terms : ``terms(model, judge, batch, codes, generator) -> (Sums, extra)``: the judged
        measurements of one batch; ``extra`` (or None) is kept for ``totals``.
    totals : ``totals([extra, ...]) -> {metric: value}``: measurements of the whole test set
        (the Sprites protocol's inception score), or None.
    prediction : the field's (context, horizon) for ``pyro-dvae predict``.
    sequences : ``sequences(run, length, limit) -> (x, labels)``: the first ``length`` frames of
        every test sequence in temporal order, for prediction.
    judge_predictions : ``judge_predictions(judge, context, predicted, labels) -> dict``: judged
        accuracies of predicted frames (context (B, K, ...), predicted (B, H, ...)), or None.
    labelled : whether the references are the data's labels (False: the judge's readings of the
        real frames, for data without labels).
    label_free : the same protocol without labels, for data other than its own
        (``pyro-dvae evaluate --protocol``), or None.
    """

    name: str
    judge: JudgeKind | None = None
    batches: Batches | None = None
    terms: Callable[..., tuple[Sums, object]] | None = None
    totals: Callable[[list], dict[str, float]] | None = None
    prediction: tuple[int, int] = (5, 10)
    sequences: Callable[[Run, int, int | None], tuple[Tensor, dict]] | None = None
    judge_predictions: Callable[[Judge, Tensor, Tensor, dict], dict] | None = None
    labelled: bool = True
    label_free: Protocol | None = None

    def test_batches(self, run: Run, limit: int | None, batch_size: int):
        return (self.batches or frame_set_batches)(run, limit, batch_size)

    def test_sequences(self, run: Run, length: int, limit: int | None) -> tuple[Tensor, dict]:
        return (self.sequences or ordered_test_sequences)(run, length, limit)


def _resolved(reference: str) -> Protocol:
    protocol = resolve(reference)
    if not isinstance(protocol, Protocol):
        raise UserInputError(f"{reference} is not a pyro_dvae.evaluation.Protocol; fix the package that declares it")
    return protocol


def protocol_for(run: Run, name: str | None = None) -> Protocol:
    """The protocol of a run: its data's (for the options it trained with), else :data:`GENERIC`.

    ``name`` (a registered data set) asks for that data set's protocol instead: its own on a run
    of that data set, its label-free variant on any other run.
    """
    source, options = str(run.config.data.source), run.config.data.options
    reference = protocol_of(source, options)
    own = GENERIC if reference is None else _resolved(reference)
    if name is None:
        return own
    if name not in DATASETS:
        raise UserInputError(f"unknown protocol {name!r}; use the name of a data set: {', '.join(DATASETS.names())}")
    wanted_reference = DATASETS.get(name).protocol_name({})
    if wanted_reference is None:
        raise UserInputError(f"{name} has no judged protocol; leave out --protocol")
    wanted = _resolved(wanted_reference)
    if own is wanted or own is wanted.label_free:
        return own
    if wanted.label_free is None:
        raise UserInputError(f"the {wanted.name} protocol needs its own labelled test set; "
                             f"evaluate a run trained on {name} with it")
    return wanted.label_free


# --------------------------------------------------------------------------------------------
# What every protocol measures, and the pieces the labelled ones share
# --------------------------------------------------------------------------------------------


def mean_of(name: str, values: Tensor) -> Sums:
    return {name: (float(values.float().sum()), values.numel())}


def correct(name: str, probs: Tensor, labels: Tensor) -> Sums:
    return mean_of(name, probs.argmax(-1) == labels)


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
    return {**out, **mean_of("reconstruction.mse", err), **mean_of("reconstruction.psnr", psnr(err)),
            # Weighted by batch size: each batch estimates the ratio from its own sets.
            "consistency.f_within_between_ratio": (ratio * x.shape[0], x.shape[0])}


def frame_set_batches(run: Run, limit: int | None, batch_size: int,
                      labels: Callable[[object, Tensor, Tensor], dict] | None = None):
    """Batches of the run's own test split: up to ``GENERIC_FRAMES`` random distinct frames per set
    (the same for every seed, so sets of consecutive video frames are not judged on
    near-duplicates); ``labels(data, sets, frames)`` adds a labelled protocol's labels."""
    data = run.data("test")
    n = len(data) if limit is None else min(limit, len(data))
    n_frames = min(GENERIC_FRAMES, int(data.set_sizes[:n].min()))
    frames = data.sample_frame_indices(torch.arange(n, device=data.device), n_frames,
                                       torch.Generator(data.device).manual_seed(0))

    def batches() -> Iterator[Batch]:
        for start in range(0, n, batch_size):
            sets = torch.arange(start, min(start + batch_size, n), device=data.device)
            idx = frames[sets]
            yield Batch(data.frames(sets[:, None], idx), labels(data, sets, idx) if labels else {})

    return n, n_frames, batches


def ordered_test_sequences(run: Run, length: int, limit: int | None, labels: Callable | None = None):
    """The first ``length`` frames of each test sequence in order; ``labels(data, n)`` adds labels."""
    data = run.data("test", ordered=True)
    n = len(data) if limit is None else min(limit, len(data))
    data.check_frames_per_set(length)
    x = data.frames(torch.arange(n, device=data.device)[:, None], torch.arange(length, device=data.device))
    return x, labels(data, n) if labels else {}


GENERIC = Protocol(name="generic")

__all__ = ["GENERIC", "Batch", "Protocol", "Sums", "correct", "frame_set_batches", "label_free", "mean_of",
           "ordered_test_sequences", "protocol_for", "resampled_dynamics", "resampled_static", "resampling"]
