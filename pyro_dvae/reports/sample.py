"""``pyro-dvae sample``: sequences generated from a family's priors, as figures."""

from __future__ import annotations

from pathlib import Path

from .. import plotting, posterior
from ..runs import Run
from .core import Log, Report, _silent, output_folder, seeded


def sample_report(run: Run, out: str | Path, sequences: int = 6, frames: int = 8, seed: int = 0,
                  log: Log = _silent) -> Path:
    """Sequences generated from the family's priors, as grids; returns the path of ``index.md``.

    ``prior_sequences.png``: f ~ p(f) fixed per row, the dynamics of the row drawn from the prior
    (i.i.d. z_t ~ p(z | f) for the DVAE; a whole trajectory z_1:T from DSA's LSTM prior).
    ``prior_shared_dynamics.png``: one trajectory for every row, f ~ p(f) varying down the rows.
    ``prior_swaps.png``: z fixed per column (from the prior of an f' ~ p(f) of its own),
    f ~ p(f) varying down the column.
    A family without priors (DrNet) is a one-line error, before anything is written.
    """
    model = run.model
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
__all__ = ["sample_report"]
