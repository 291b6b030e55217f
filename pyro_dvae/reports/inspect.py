"""``pyro-dvae inspect``: explore a trained run's posterior on real sequences (figures, numbers, ArviZ)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .. import plotting, posterior
from ..data import FrameSets
from ..errors import UserInputError
from ..models.base import OPTIONAL, SITE_Z
from ..runs import Run
from .core import Log, Report, _silent, dataframe_table, output_folder, seeded

# A set is read up to this many frames: enough for f and a dynamics trace, bounded for long videos.
MAX_SET_FRAMES = 256
# Sets used for the within/between variance ratio of f (more sets: a steadier between-set variance).
CONSISTENCY_SETS = 64
CONSISTENCY_SUBSETS = 8
MANIFOLD_STEPS = 9
INTERPOLATION_STEPS = 8
CHAINS = 2


# -- pyro-dvae inspect -----------------------------------------------------------------------------
def _check_data(run: Run, data: FrameSets) -> None:
    if data.channels != run.config.model.channels:
        raise UserInputError(
            f"data {data.name!r} has {data.channels} channel(s) but the run's model reads "
            f"{run.config.model.channels}; inspect with data like the run's own (omit --data)"
        )
    if len(data) < 2:
        raise UserInputError(f"data {data.name!r} has {len(data)} set(s); inspection compares sets, give it 2 or more")
    data.check_frames_per_set(run.model.min_frames)


def _read_sets(data: FrameSets, ids: Tensor, max_frames: int) -> Tensor:
    """The first frames of each set in ``ids``, as many as all of them have (at most max_frames)."""
    n_frames = min(int(data.set_sizes[ids].min()), max_frames)
    return data.frames(ids[:, None], torch.arange(n_frames, device=data.device))


def _farthest_pair(f: Tensor) -> tuple[int, int]:
    # The two most different identities make the interpolation most informative.
    distances = torch.cdist(f, f)
    i, j = divmod(int(distances.argmax()), len(f))
    return (i, j) if i < j else (j, i)


@dataclass
class _Inspection:
    """What the sections share: the model, the chosen sets, their codes, the report, the RNG."""

    run: Run
    data: FrameSets
    report: Report
    generator: torch.Generator
    ids: list[int]
    x: Tensor  # (K, T, C, S, S): the chosen sets, first T frames in stored order
    codes: posterior.Codes  # posterior means of x
    shown: int  # frames per sequence in the figures
    log: Log

    @property
    def model(self):
        return self.run.model

    def labels(self, prefix: str = "seq ") -> list[str]:
        return [f"{prefix}{i}" for i in self.ids]


def _reconstructions(s: _Inspection) -> None:
    recon = posterior.decode(s.model, *s.codes)
    s.report.figure("reconstructions", plotting.reconstruction_figure(
        s.x[:, :s.shown], recon[:, :s.shown], s.labels(), "held-out sequences: data above reconstruction"),
        "Reconstructions of held-out sequences (posterior means of f and z), each original above "
        "its reconstruction.")
    s.report.number("reconstruction_mse", float(((recon - s.x) ** 2).mean()),
                    f"mean squared pixel error of the reconstructions of all {s.x.shape[1]} frames read per "
                    "sequence")


def _manifold(s: _Inspection) -> None:
    z_dim = s.codes.z.shape[-1]
    # Beyond two dimensions the grid follows the posterior z's two main directions of variation.
    directions, names = posterior.figure_directions(s.codes.z)
    axis_names = (names + ("nothing (z is 1-D)",))[:2]
    panels = posterior.latent_manifold(s.model, s.codes.f, MANIFOLD_STEPS, directions)
    grid = f"along the two leading principal directions of the posterior z's (z is {z_dim}-D)" if z_dim > 2 \
        else "along z's axes"
    s.report.figure("latent_manifold", plotting.manifold_figure(panels, s.labels("f of seq "), axis_names),
                    f"Latent manifold (paper Fig. 3): f fixed per panel (inferred from a real sequence), "
                    f"z on a regular {MANIFOLD_STEPS}x{MANIFOLD_STEPS} grid spanning the central 90% of "
                    f"p(z | f) {grid}.")


def _dynamics(s: _Inspection) -> None:
    loc, scale = posterior.infer_dynamic(s.model, s.x[:1], s.codes.f[:1])
    s.report.figure("dynamics_trace", plotting.dynamics_figure(
        loc[0], scale[0], s.x[0], f"sequence {s.ids[0]}: q(z_t | f, x_t) over its frames"),
        f"Dynamics trace (paper Fig. 4b) of sequence {s.ids[0]} in its stored order: each z dimension's "
        f"posterior mean and +-2 sd band against the frame index, with the frames at its extremes.")


def _trajectories(s: _Inspection) -> None:
    z_post = s.codes.z[:, :s.shown]
    z_prior = s.model.sample_dynamics(s.codes.f, z_post.shape[1])
    # Beyond two dimensions both are shown along the posterior z's two main directions of variation.
    directions, names = posterior.figure_directions(z_post)
    project = (lambda z: z @ directions.T) if directions is not None else (lambda z: z)
    s.report.figure("trajectories", plotting.trajectories_figure(
        project(z_post), project(z_prior), names, s.labels(),
        f"dynamic codes over frames: posterior (solid) and {s.model.dynamics_label} (dashed)"),
        f"Trajectories of the dynamic code over the frames of each inspected sequence: the posterior "
        f"means (solid, one colour per sequence) next to draws from the prior given the same f "
        f"({s.model.dynamics_label}; dashed). A sequential prior (DSA) draws smooth paths like the "
        f"posterior's; the DVAE's i.i.d. prior draws every frame afresh.")


def _swaps(s: _Inspection) -> None:
    k, t = s.x.shape[:2]
    # Column j takes a frame from a different place in its set: sets stored in the same order
    # (Sprites' sheet order) would otherwise show one pose in every column.
    rows, frames = torch.arange(k, device=s.x.device), torch.arange(k, device=s.x.device) * (t // k)
    cells = posterior.swap_grid(s.model, s.codes.f, s.codes.z[rows, frames])
    s.report.figure("swaps", plotting.swap_figure(s.x[:, 0], s.x[rows, frames], cells, s.labels(), s.labels(),
                                                  "f of the row's sequence, z of the column's"),
                    "Swaps: cell (A, B) decodes the f of sequence A (first column) with the z of one frame "
                    "of sequence B (first row); frame j*T/K of the j-th column's sequence, so poses differ.")


def _consistency(s: _Inspection) -> None:
    n_sets = min(len(s.data), CONSISTENCY_SETS)
    sets = _read_sets(s.data, torch.arange(n_sets, device=s.data.device), MAX_SET_FRAMES)
    ratio = posterior.static_consistency(s.model, sets, CONSISTENCY_SUBSETS, s.generator)
    s.report.number("static_consistency_ratio", ratio,
                    f"within-sequence / between-sequence variance of f's posterior mean, over "
                    f"{CONSISTENCY_SUBSETS} random {posterior.subset_size(s.model, sets.shape[1])}-frame subsets "
                    f"of each of {n_sets} "
                    f"sequences (lower: f more static; 1: f no more tied to a sequence than chance)")
    f_subsets, _ = posterior.subset_static(s.model, s.x[:1], CONSISTENCY_SUBSETS, s.generator)
    z = s.codes.z[0, :s.shown]
    frames = posterior.decode(s.model, f_subsets[:, 0], z.expand(CONSISTENCY_SUBSETS, *z.shape))
    s.report.figure("static_consistency", plotting.frames_grid(
        frames, f"sequence {s.ids[0]}: f from {CONSISTENCY_SUBSETS} random subsets (rows), same z's",
        row_labels=[f"subset {k}" for k in range(CONSISTENCY_SUBSETS)]),
        f"Static consistency: f inferred from {CONSISTENCY_SUBSETS} random "
        f"{posterior.subset_size(s.model, s.x.shape[1])}-frame "
        f"subsets of sequence {s.ids[0]} (one per row), decoded with the same z's; rows should look "
        f"alike. Ratio {ratio:.4g} (see Numbers).")


def _interpolation(s: _Inspection) -> None:
    a, b = _farthest_pair(s.codes.f)
    z = s.codes.z[a, :min(s.shown, 4)]
    frames = posterior.interpolate_static(s.model, s.codes.f[a], s.codes.f[b], z, INTERPOLATION_STEPS)
    weights = torch.linspace(0, 1, INTERPOLATION_STEPS).tolist()
    s.report.figure("interpolation", plotting.frames_grid(
        frames.transpose(0, 1), f"f from seq {s.ids[a]} (left) to seq {s.ids[b]} (right), z fixed per row",
        row_labels=[f"z of frame {t}" for t in range(len(z))], col_labels=[f"{w:.2f}" for w in weights]),
        f"Interpolation of f on a straight line between sequences {s.ids[a]} and {s.ids[b]} (the two "
        f"shown whose f differ most), with the z's of frames of sequence {s.ids[a]} fixed per row.")


def _interpolation_dynamic(s: _Inspection) -> None:
    z = s.codes.z[0, :s.shown]
    i, j = _farthest_pair(z)  # the two most different frames of the first sequence
    frames = posterior.interpolate_dynamic(s.model, s.codes.f, z[i], z[j], INTERPOLATION_STEPS)
    weights = torch.linspace(0, 1, INTERPOLATION_STEPS).tolist()
    s.report.figure("interpolation_dynamic", plotting.frames_grid(
        frames, f"z from frame {i} (left) to frame {j} (right) of seq {s.ids[0]}, f fixed per row",
        row_labels=s.labels("f of seq "), col_labels=[f"{w:.2f}" for w in weights]),
        f"Interpolation of the dynamic code (pose) on a straight line between frames {i} and {j} of "
        f"sequence {s.ids[0]} (its two most different frames), decoded with the f of every inspected "
        f"sequence (one per row): rows should move alike and keep their identity.")


def _arviz(s: _Inspection, draws: int, attrs: dict) -> None:
    from .. import arviz_export  # ArviZ is slow to import; only this section needs it

    # At least N frames, so that every draw of f compares a subset of what is exported.
    exported = min(s.x.shape[1], max(s.shown, s.model.min_frames))
    s.log(f"  {CHAINS} x {draws} guide draws of f and z for {len(s.ids)} sequences x {exported} frames")
    idata = arviz_export.posterior_inference_data(s.model, s.x[:, :exported], s.ids, draws, CHAINS,
                                                  s.generator, attrs)
    netcdf = arviz_export.save_netcdf(idata, s.report.out / "posterior.nc")
    table = arviz_export.summary(idata)
    table.to_csv(s.report.out / "arviz_summary.csv")
    first = s.ids[0]
    s.report.figure("arviz_z_forest", arviz_export.z_forest_figure(idata, first),
                    f"ArviZ forest plot of q(z_t | f, x_t) for the {exported} exported frames of sequence {first} "
                    f"(f drawn from q(f | x_S) per draw).")
    s.report.number("max_r_hat", float(table["r_hat"].max()),
                    f"largest r_hat in the ArviZ summary ({CHAINS} chains of independent guide draws: ~1)")
    s.report.table(f"ArviZ summary of z, sequence {first}",
                   f"Draws of f {arviz_export.F_DIMS} and z {arviz_export.Z_DIMS} (after chain, draw) are in "
                   f"[{netcdf.name}]({netcdf.name}) (read with `az.from_netcdf`); the summary of every "
                   f"variable is in [arviz_summary.csv](arviz_summary.csv).\n\n"
                   + dataframe_table(arviz_export.summary(idata, first, [SITE_Z])))


def inspect_report(run: Run, data: FrameSets, out: str | Path, sequences: int = 4, frames: int = 8,
                   draws: int = 100, seed: int = 0, log: Log = _silent) -> Path:
    """Explore a trained run's posterior on ``data``; returns the path of ``index.md``.

    Parameters
    ----------
    run : the trained run (:func:`pyro_dvae.runs.load_run`).
    data : frame sets, usually ``run.data("test")``; ``sequences`` of them are chosen at random.
    out : output folder; its figures are overwritten.
    sequences : identities shown side by side (manifold, reconstructions, swaps) and exported.
    frames : frames per sequence shown in the figures and exported to ArviZ.
    draws : posterior draws per chain (two chains) in the ArviZ export.
    seed : seeds every random choice: the sets, the frame subsets and the draws.
    log : called with one line per section (progress).
    """
    _check_data(run, data)
    out = output_folder(out)
    log(f"inspecting {run.path} (step {run.step}, {run.config.model.family}) on {data.name} ({len(data)} sets)")
    if sequences > len(data):
        log(f"only {len(data)} sets in the data: inspecting all of them")
    k = min(sequences, len(data))
    with seeded(seed, run.device) as generator:
        ids = torch.randperm(len(data), generator=generator, device=run.device)[:k]
        x = _read_sets(data, ids, MAX_SET_FRAMES)
        context = {"run": str(run.path), "step": run.step, "model": run.config.model.family, "data": data.name,
                   "seed": seed,
                   "sequences": ids.tolist()}
        report = Report(out, f"Inspection of {run.path} (step {run.step})", context)
        attrs = {key: str(value) for key, value in context.items()}  # NetCDF attributes: plain strings
        s = _Inspection(run, data, report, generator, ids.tolist(), x,
                        posterior.encode(run.model, x, generator), min(frames, x.shape[1]), log)
        # (name, section, the optional queries it needs from the run's family)
        sections: list[tuple[str, Callable[[_Inspection], None], tuple[str, ...]]] = [
            ("latent manifold", _manifold, ("sample_dynamics",)), ("dynamics trace", _dynamics, ()),
            ("prior and posterior trajectories", _trajectories, ("sample_dynamics",)),
            ("reconstructions", _reconstructions, ()), ("swaps", _swaps, ()),
            ("static consistency", _consistency, ()), ("interpolation of f", _interpolation, ()),
            ("interpolation of z", _interpolation_dynamic, ()),
            ("ArviZ export", lambda s: _arviz(s, draws, attrs), ("guide",)),
        ]
        for step, (name, section, needs) in enumerate(sections, 1):
            missing = [query for query in needs if not run.model.can(query)]
            if missing:
                reason = f"a {run.config.model.family} model cannot {OPTIONAL[missing[0]]}"
                log(f"[{step}/{len(sections)}] {name}: left out ({reason})")
                report.leave_out(name, reason)
                continue
            log(f"[{step}/{len(sections)}] {name}")
            section(s)
    index = report.write()
    log(f"wrote {len(report.figures)} figures and {index}")
    return index

__all__ = ["inspect_report"]
