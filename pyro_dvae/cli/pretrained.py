"""`pyro-dvae pretrained`: the models shipped with the package (list, model card, copy)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("pretrained", invoke_without_command=True)
@click.option("--show", "show", metavar="NAME", help="Print the model card of NAME (checked against its sha256).")
@click.pass_context
def pretrained_group(ctx: click.Context, show: str | None) -> None:
    """List the models shipped with the package; every command takes them as pretrained:NAME."""
    from .. import pretrained

    if ctx.invoked_subcommand is not None:
        return
    if show:
        click.echo(pretrained.card(show))
        return
    for name, entry in sorted(pretrained.manifest().items()):
        click.echo(f"{pretrained.PREFIX}{name}  {entry['description']}")
    click.echo("(`pyro-dvae pretrained --show NAME`: how each was trained and evaluated)")


@pretrained_group.command("copy")
@click.argument("name")
@click.argument("destination", type=click.Path(path_type=Path))
def copy_command(name: str, destination: Path) -> None:
    """Copy shipped model NAME into DESTINATION: a run directory of your own (resumable, writable)."""
    from .. import pretrained

    click.echo(f"copied {pretrained.PREFIX}{name.removeprefix(pretrained.PREFIX)} to "
               f"{pretrained.copy(name, destination)}")
