"""`pyro-dvae data ...`: export, preview and list the data sources."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserInputError
from .train import SEED


def _write_sources(formatter: click.HelpFormatter) -> None:
    # Built from the registry, so the help never lags behind the sources that exist.
    from ..data import PATH_SOURCES, source_descriptions

    with formatter.section("Registered data sets (--data NAME)"):
        formatter.write_dl(list(source_descriptions().items()))
    with formatter.section("Your own data (--data PATH)"):
        formatter.write_dl(list(PATH_SOURCES.items()))


class _DataGroup(click.Group):
    """The `data` group, whose help lists every data source."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        _write_sources(formatter)


@click.group("data", cls=_DataGroup)
def data_group() -> None:
    """Export, preview and list data sources (sprites, moving-mnist, your own files)."""


@data_group.command("sources")
def sources_command() -> None:
    """List every data source usable as --data, with its description."""
    formatter = click.HelpFormatter()
    _write_sources(formatter)
    click.echo(formatter.getvalue(), nl=False)


@data_group.group("export")
def export_group() -> None:
    """Write a built-in data set to .npy files."""


@data_group.group("preview")
def preview_group() -> None:
    """Draw a labelled picture of a built-in data set."""


@export_group.command("sprites")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory for sprites_{train,test}_{X,A,D,id}.npy (created if missing).",
)
@click.option(
    "--split",
    type=click.Choice(["train", "test", "both"]),
    default="both",
    show_default=True,
    help="Which split(s) to write.",
)
@click.option(
    "--limit-identities",
    type=click.IntRange(min=1),
    default=None,
    help="Only the first K identities of each split (9K sequences), for quick checks.",
)
@click.option("--device", default="cpu", show_default=True, help="Where frames are rendered (cpu, cuda).")
def export_sprites_cmd(out_dir: Path, split: str, limit_identities: int | None, device: str):
    """Write the standard Sprites evaluation sequences (9 per identity, 8 frames each).

    Per split S: sprites_S_X.npy uint8 (n, 8, 64, 64, 3), sprites_S_A.npy int64 (n, 4) attributes
    (skin, pants, top, hair), sprites_S_D.npy int64 (n,) action class (walk-front, walk-left,
    walk-right, spellcast-front, ..., slash-right), sprites_S_id.npy int64 (n,) identity.
    """
    from ..data.sprites import export_sprites

    splits = ("train", "test") if split == "both" else (split,)
    written = export_sprites(out_dir, splits, limit_identities=limit_identities, device=device)
    click.echo(f"wrote {len(written)} files to {out_dir}")


@export_group.command("moving-mnist")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory for mnist_test_seq.npy (created if missing).")
@click.option("--sequences", type=click.IntRange(min=1), default=10000, show_default=True,
              help="Number of sequences (the public file has 10000).")
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True,
              help="Which split's digit images to draw.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the generated sequences.")
def export_moving_mnist_cmd(out_dir: Path, sequences: int, split: str, seed: int):
    """Write two-digit sequences in the public file's layout: mnist_test_seq.npy, (20, n, 64, 64) uint8.

    Read back with `--data OUT/mnist_test_seq.npy` exactly as the public file is (no labels: runs on
    it are evaluated label-free), so the paper's data format can be tried where it cannot be downloaded.
    """
    from ..data.arrays import OFFICIAL_NAME
    from ..data.moving_mnist import export_public_layout

    try:
        path = export_public_layout(out_dir / OFFICIAL_NAME, split, sequences, seed)
    except OSError as err:
        raise UserInputError(f"cannot write {out_dir / OFFICIAL_NAME} ({err.strerror}); "
                             "choose a writable --out") from None
    click.echo(f"wrote {path}: {sequences} sequences of 20 frames, 64x64")


@preview_group.command("sprites")
@click.option(
    "--out",
    "out_file",
    required=True,
    type=click.Path(path_type=Path),
    help="Image file to write, e.g. sprites.png.",
)
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
              help="Identities of this split.")
@click.option(
    "--identities",
    "n_identities",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Number of identities (rows).",
)
@click.option(
    "--frame",
    type=click.IntRange(0, 7),
    default=3,
    show_default=True,
    help="Which of the 8 frames of each sequence to show.",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for the identities.")
def preview_sprites_cmd(out_file: Path, split: str, n_identities: int, frame: int, seed: int):
    """Draw random identities (rows) in the 9 evaluation actions (columns)."""
    from ..data.sprites import preview_sprites

    preview_sprites(out_file, split=split, n_identities=n_identities, frame=frame, seed=seed)
    click.echo(f"wrote {out_file}")
