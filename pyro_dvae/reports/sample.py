"""``pyro-dvae sample``: sequences generated from a family's priors, or (for a family without
priors, such as DrNet) from the codes of held-out sequences recombined, as figures."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import plotting, posterior
from ..errors import UserInputError
from ..runs import Run
from .core import Log, Report, _silent, output_folder, seeded

SOURCES = ("auto", "prior", "data")


def sample_report(run: Run, out: str | Path, sequences: int = 6, frames: int = 8, seed: int = 0,
                  log: Log = _silent, source: str = "auto") -> Path:
    """Generated sequences as grids; returns the path of ``index.md``.

    ``source``: ``prior`` draws from the family's priors (below); ``data`` recombines the codes of
    held-out sequences (:func:`transfer_report`: the only choice for a family without priors);
    ``auto`` picks ``prior`` when the family has one, else ``data``.

    ``prior_sequences.png``: f ~ p(f) fixed per row, the dynamics of the row drawn from the prior
    (i.i.d. z_t ~ p(z | f) for the DVAE; a whole trajectory z_1:T from DSA's LSTM prior).
    ``prior_shared_dynamics.png``: one trajectory for every row, f ~ p(f) varying down the rows.
    ``prior_swaps.png``: z fixed per column (from the prior of an f' ~ p(f) of its own),
    f ~ p(f) varying down the column.
    Asking a family without priors (DrNet) for ``prior`` is a one-line error, before anything is
    written.
    """
    if source not in SOURCES:
        raise UserInputError(f"unknown sample source {source!r}; use one of {', '.join(SOURCES)}")
    model = run.model
    has_prior = model.can("sample_static") and model.can("sample_dynamics")
    if source == "data" or (source == "auto" and not has_prior):
        return transfer_report(run, out, sequences, frames, seed, log)
    model.require("sample_static", "sample_dynamics")
    out = output_folder(out)
    report = Report(out, f"Prior samples of {run.path} (step {run.step})",
                    {"run": str(run.path), "step": run.step, "model": run.config.model.family, "seed": seed})
    rows = [f"f{i}" for i in range(sequences)]
    with seeded(seed, run.device):
        log(f"sampling {sequences} sequences of {frames} frames from the prior")
        f, z_rows, generated = posterior.sample_prior(model, sequences, frames)
        report.figure("prior_sequences", plotting.frames_grid(
            generated, f"f ~ p(f) per row, {model.dynamics_label} along the row", row_labels=rows),
            f"Sequences generated from the prior: one f per row, the dynamics of its frames drawn as "
            f"{model.dynamics_label}.")
        shared = posterior.decode(model, f, z_rows[:1].expand_as(z_rows))
        report.figure("prior_shared_dynamics", plotting.frames_grid(
            shared, "f ~ p(f) per row, the first row's dynamics in every row", row_labels=rows),
            "One trajectory of dynamic codes (the first row's of prior_sequences) decoded with each row's f: "
            "rows should move alike and differ in identity.")
        _, z, _ = posterior.sample_prior(model, frames, 1)
        report.figure("prior_swaps", plotting.frames_grid(
            posterior.swap_grid(model, f, z[:, 0]), "f ~ p(f) per row, one z per column",
            row_labels=[f"f{i}" for i in range(sequences)], col_labels=[f"z{j}" for j in range(frames)]),
            "The same f's down the rows, each column one z (from p(z | f') of an independent f'): "
            "columns should share the dynamics (pose, position), rows the identity.")
    index = report.write()
    log(f"wrote {len(report.figures)} figures and {index}")
    return index


def transfer_report(run: Run, out: str | Path, sequences: int = 6, frames: int = 8, seed: int = 0,
                    log: Log = _silent) -> Path:
    """Sequences made from the static code of one held-out sequence and the dynamics of others.

    ``transfers.png``: row i takes the static code (content) of held-out sequence i and, along the
    row, the dynamic codes (poses) of the frames of sequence i + 1; ``transfer_grid.png``: every
    static code (rows) with one frame's dynamic code of every sequence (columns). What a family
    without a prior can generate (DrNet); it works for every family.
    """
    model = run.model
    data = run.data("test")
    data.check_frames_per_set(frames)
    out = output_folder(out)
    report = Report(out, f"Transfers of {run.path} (step {run.step})",
                    {"run": str(run.path), "step": run.step, "model": run.config.model.family, "seed": seed,
                     "source": "held-out sequences"})
    with seeded(seed, run.device) as generator:
        k = min(sequences, len(data))
        ids = torch.randperm(len(data), generator=generator, device=data.device)[:k]
        x = data.frames(ids[:, None], torch.arange(frames, device=data.device))
        log(f"recombining the codes of {k} held-out sequences of {frames} frames")
        f, z = posterior.encode(model, x, generator)
        partner = torch.arange(k, device=x.device).roll(-1)
        shown = torch.cat([x[partner][:, None], posterior.decode(model, f, z[partner])[:, None]], 1).flatten(0, 1)
        labels = [label for i, j in zip(ids.tolist(), ids[partner].tolist(), strict=True)
                  for label in (f"seq {j}", f"{i} x {j}")]
        report.figure("transfers", plotting.frames_grid(
            shown, "B, then A's static code with B's dynamics", row_labels=labels),
            "Each pair of rows: a held-out sequence B, then the frames made from the static code of "
            "sequence A (the row label's first number) with the dynamic codes of B's frames.")
        report.figure("transfer_grid", plotting.frames_grid(
            posterior.swap_grid(model, f, z[:, 0]), "static code of the row, dynamics of the column",
            row_labels=[f"seq {i}" for i in ids.tolist()], col_labels=[f"seq {i}" for i in ids.tolist()]),
            "Cell (A, B): the static code of sequence A with the dynamic code of the first frame of B.")
    index = report.write()
    log(f"wrote {len(report.figures)} figures and {index}")
    return index


__all__ = ["SOURCES", "sample_report", "transfer_report"]
