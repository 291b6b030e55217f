"""`pyro-dvae sample` and `pyro-dvae inspect`: figures, swaps and ArviZ export of a trained run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ..errors import UserInputError
from .train import SEED, parse_options


def _shared_options(default_out: str, default_sequences: int) -> Callable:
    """RUN and the options both commands take (the defaults differ)."""
    decorators = [
        click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path)),
        click.option("--out", type=click.Path(path_type=Path),
                     help=f"Output folder, created if missing; its figures are overwritten. "
                          f"[default: RUN/{default_out}]"),
        click.option("--sequences", type=click.IntRange(min=1), default=default_sequences, show_default=True,
                     help="Sequences (identities) to show."),
        click.option("--frames", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Frames per sequence in the figures."),
        click.option("--seed", type=SEED, default=0, show_default=True,
                     help="Seeds every random choice: same seed, same files."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    ]

    def decorate(command: Callable) -> Callable:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return decorate


# Frames in one figure: beyond this a grid is unreadable and its drawing needs gigabytes.
MAX_FIGURE_FRAMES = 10_000


def check_figure_size(sequences: int, frames: int, draws: int = 1) -> None:
    """Refuse figure sizes that would exhaust memory, with an estimate, before any work starts."""
    if sequences * frames > MAX_FIGURE_FRAMES:
        # About 120x120 RGBA pixels per drawn frame at the figures' dpi, plus the frames themselves.
        estimate = sequences * frames * (120 * 120 * 4 + 3 * 64 * 64 * 4) / 1e9
        raise UserInputError(f"--sequences {sequences} x --frames {frames} would draw {sequences * frames:,} frames "
                             f"in one figure (about {estimate:.1f} GB to draw, and unreadable); keep sequences x "
                             f"frames <= {MAX_FIGURE_FRAMES:,}")
    if draws > 100_000:
        raise UserInputError(f"--draws {draws:,} posterior draws per chain would need about {draws * 8e-5:.0f} MB "
                             "per latent dimension and sequence; use at most 100,000")


@click.command("sample")
@_shared_options("samples", 6)
@click.option("--from", "source", type=click.Choice(("auto", "prior", "data")), default="auto", show_default=True,
              help="prior: f ~ p(f) and dynamics from the family's prior; data: the static code of one held-out "
                   "sequence with the dynamics of others (DrNet, which has no prior); auto: prior if there is one.")
def sample_command(run_dir: Path, out: Path | None, sequences: int, frames: int, seed: int, device: str,
                   source: str) -> None:
    """Generate sequences from the prior (f ~ p(f), then the family's dynamics prior): PNG grids and index.md."""
    from ..reports import sample_report
    from ..runs import describe, load_run

    check_figure_size(sequences, frames)
    run = load_run(run_dir, device)
    sample_report(run, out or run.output_dir("samples"), sequences, frames, seed, log=click.echo, source=source)
    click.echo(f"read {describe(run)}")


@click.command("inspect")
@_shared_options("inspect", 4)
@click.option("--data", "source", help="Data to inspect on: a source name or path [default: the run's own].")
@click.option("--data-option", "data_options", multiple=True, metavar="KEY=VALUE",
              help="Source option, e.g. num_sets=64 (repeatable).")
@click.option("--split", type=click.Choice(("test", "train")), default="test", show_default=True,
              help="Which split of the data.")
@click.option("--draws", type=click.IntRange(min=2), default=100, show_default=True,
              help="Posterior draws per chain (2 chains) in the ArviZ export.")
def inspect_command(run_dir: Path, out: Path | None, sequences: int, frames: int, seed: int, device: str,
                    source: str | None, data_options: tuple[str, ...], split: str, draws: int) -> None:
    """Explore a run's posterior: manifold, dynamics, reconstructions, swaps, ArviZ (PNGs, index.md)."""
    from ..reports import inspect_report
    from ..runs import describe, load_run

    check_figure_size(sequences, frames, draws)
    run = load_run(run_dir, device)
    out = out or run.output_dir("inspect")
    data = run.data(split, source, **parse_options(data_options))
    inspect_report(run, data, out, sequences, frames, draws, seed, log=click.echo)
    click.echo(f"read {describe(run)}")
