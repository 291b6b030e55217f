"""Reports on a trained run: folders of PNG figures with an ``index.md`` and a ``results.json``.

:func:`sample_report` (``pyro-dvae sample``) shows what the prior generates; :func:`inspect_report`
(``pyro-dvae inspect``) explores the posterior on real sets: the paper's latent manifold (Fig. 3)
and dynamics trace (Fig. 4b), reconstructions, swaps, the consistency of f across frame subsets,
interpolation of f, and an ArviZ export of posterior draws. The queries live in
:mod:`pyro_dvae.posterior` and the figures in :mod:`pyro_dvae.plotting`; this module chooses the
sets, seeds every random choice, and writes the files.

Same seed, same run, same data: byte-identical PNG files and identical arrays.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from . import plotting, posterior
from .data import FrameSets
from .errors import UserInputError
from .model import SITE_Z
from .runs import Run

INDEX_FILE = "index.md"
RESULTS_FILE = "results.json"
# A set is read up to this many frames: enough for f and a dynamics trace, bounded for long videos.
MAX_SET_FRAMES = 256
# Sets used for the within/between variance ratio of f (more sets: a steadier between-set variance).
CONSISTENCY_SETS = 64
CONSISTENCY_SUBSETS = 8
MANIFOLD_STEPS = 9
INTERPOLATION_STEPS = 8
CHAINS = 2

Log = Callable[[str], None]


def _silent(_: str) -> None:
    pass


# -- the output folder and its index ---------------------------------------------------------------
def output_folder(out: str | Path) -> Path:
    """Create ``out`` if needed; an existing file or an uncreatable path is a user error."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file; pass a folder (created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserInputError(f"cannot create output folder {out} ({err.strerror}); pass a writable --out") from None
    return out


def _format(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table (floats to 4 significant digits)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_format(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def dataframe_table(frame) -> str:
    """A pandas DataFrame (e.g. ``az.summary``) as a markdown table, index first."""
    return markdown_table(["", *map(str, frame.columns)],
                          [[index, *row] for index, *row in frame.itertuples()])


@dataclass
class Report:
    """Figures, numbers and tables written to ``out``, listed in ``index.md`` and ``results.json``."""

    out: Path
    title: str
    context: dict[str, object]
    figures: list[tuple[str, str]] = field(default_factory=list)
    numbers: dict[str, tuple[object, str]] = field(default_factory=dict)
    tables: list[tuple[str, str]] = field(default_factory=list)

    def figure(self, name: str, fig: Figure, caption: str) -> Path:
        path = plotting.save_figure(fig, self.out / f"{name}.png")
        self.figures.append((path.name, caption))
        return path

    def number(self, key: str, value: object, meaning: str) -> None:
        self.numbers[key] = (value, meaning)

    def table(self, heading: str, markdown: str) -> None:
        self.tables.append((heading, markdown))

    def write(self) -> Path:
        """Write ``index.md`` and ``results.json``; returns the index's path."""
        results = {**self.context, **{key: value for key, (value, _) in self.numbers.items()}}
        (self.out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
        lines = [f"# {self.title}", ""]
        lines += [f"- {key}: {_format(value)}" for key, value in self.context.items()]
        lines += ["", "## Figures", ""]
        for name, caption in self.figures:
            lines += [f"### {name}", "", caption, "", f"![{caption}]({name})", ""]
        if self.numbers:
            lines += ["## Numbers", f"(also in {RESULTS_FILE})", "",
                      markdown_table(["quantity", "value", "meaning"],
                                     [[k, v, m] for k, (v, m) in self.numbers.items()]), ""]
        for heading, markdown in self.tables:
            lines += [f"## {heading}", "", markdown, ""]
        index = self.out / INDEX_FILE
        index.write_text("\n".join(lines))
        return index


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[torch.Generator]:
    """Seed torch's RNG (Pyro samples from it) for the block and give a generator on ``device``.

    The caller's RNG state is restored afterwards.
    """
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield torch.Generator(device).manual_seed(seed)


# -- pyro-dvae sample ------------------------------------------------------------------------------
def sample_report(run: Run, out: str | Path, sequences: int = 6, frames: int = 8, seed: int = 0,
                  log: Log = _silent) -> Path:
    """Sequences generated from the prior, as two grids; returns the path of ``index.md``.

    ``prior_sequences.png``: f ~ p(f) fixed per row, z_t ~ p(z | f) varying along the row.
    ``prior_swaps.png``: z fixed per column (drawn from p(z | f') for an f' ~ p(f) of its own),
    f ~ p(f) varying down the column.
    """
    out = output_folder(out)
    report = Report(out, f"Prior samples of {run.path} (step {run.step})",
                    {"run": str(run.path), "step": run.step, "seed": seed})
    model = run.model
    with seeded(seed, run.device):
        log(f"sampling {sequences} sequences of {frames} frames from the prior")
        f, _, generated = posterior.sample_prior(model, sequences, frames)
        report.figure("prior_sequences", plotting.frames_grid(
            generated, "f ~ p(f) per row, z_t ~ p(z | f) along the row",
            row_labels=[f"f{i}" for i in range(sequences)]),
            "Sequences generated from the prior: one f per row, the z's of its frames drawn from p(z | f).")
        _, z, _ = posterior.sample_prior(model, frames, 1)
        report.figure("prior_swaps", plotting.frames_grid(
            posterior.swap_grid(model, f, z[:, 0]), "f ~ p(f) per row, one z per column",
            row_labels=[f"f{i}" for i in range(sequences)], col_labels=[f"z{j}" for j in range(frames)]),
            "The same f's down the rows, each column one z (from p(z | f') of an independent f'): "
            "columns should share the dynamics (pose, position), rows the identity.")
    index = report.write()
    log(f"wrote {len(report.figures)} figures and {index}")
    return index


# -- pyro-dvae inspect -----------------------------------------------------------------------------
def _check_data(run: Run, data: FrameSets) -> None:
    if data.channels != run.config.model.channels:
        raise UserInputError(
            f"data {data.name!r} has {data.channels} channel(s) but the run's model reads "
            f"{run.config.model.channels}; inspect with data like the run's own (omit --data)"
        )
    if len(data) < 2:
        raise UserInputError(f"data {data.name!r} has {len(data)} set(s); inspection compares sets, give it 2 or more")
    data.check_frames_per_set(run.config.model.frames)


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
    directions = posterior.principal_directions(s.codes.z) if z_dim > 2 else None
    axis_names = ("PC1 of z", "PC2 of z") if z_dim > 2 else ("z1", "z2" if z_dim == 2 else "nothing (z is 1-D)")
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
                    f"{CONSISTENCY_SUBSETS} random {s.model.cfg.frames}-frame subsets of each of {n_sets} "
                    f"sequences (lower: f more static; 1: f no more tied to a sequence than chance)")
    f_subsets, _ = posterior.subset_static(s.model, s.x[:1], CONSISTENCY_SUBSETS, s.generator)
    z = s.codes.z[0, :s.shown]
    frames = posterior.decode(s.model, f_subsets[:, 0], z.expand(CONSISTENCY_SUBSETS, *z.shape))
    s.report.figure("static_consistency", plotting.frames_grid(
        frames, f"sequence {s.ids[0]}: f from {CONSISTENCY_SUBSETS} random subsets (rows), same z's",
        row_labels=[f"subset {k}" for k in range(CONSISTENCY_SUBSETS)]),
        f"Static consistency: f inferred from {CONSISTENCY_SUBSETS} random {s.model.cfg.frames}-frame "
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


def _arviz(s: _Inspection, draws: int, attrs: dict) -> None:
    from . import arviz_export  # ArviZ is slow to import; only this section needs it

    # At least N frames, so that every draw of f compares a subset of what is exported.
    exported = min(s.x.shape[1], max(s.shown, s.model.cfg.frames))
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
    if sequences > len(data):
        log(f"only {len(data)} sets in the data: inspecting all of them")
    k = min(sequences, len(data))
    with seeded(seed, run.device) as generator:
        ids = torch.randperm(len(data), generator=generator, device=run.device)[:k]
        x = _read_sets(data, ids, MAX_SET_FRAMES)
        context = {"run": str(run.path), "step": run.step, "data": data.name, "seed": seed,
                   "sequences": ids.tolist()}
        report = Report(out, f"Inspection of {run.path} (step {run.step})", context)
        attrs = {key: str(value) for key, value in context.items()}  # NetCDF attributes: plain strings
        s = _Inspection(run, data, report, generator, ids.tolist(), x,
                        posterior.encode(run.model, x, generator), min(frames, x.shape[1]), log)
        sections: list[tuple[str, Callable[[_Inspection], None]]] = [
            ("latent manifold", _manifold), ("dynamics trace", _dynamics),
            ("reconstructions", _reconstructions), ("swaps", _swaps),
            ("static consistency", _consistency), ("interpolation of f", _interpolation),
            ("ArviZ export", lambda s: _arviz(s, draws, attrs)),
        ]
        for step, (name, section) in enumerate(sections, 1):
            log(f"[{step}/{len(sections)}] {name}")
            section(s)
    index = report.write()
    log(f"wrote {len(report.figures)} figures and {index}")
    return index


__all__ = ["Report", "inspect_report", "output_folder", "sample_report", "seeded"]
