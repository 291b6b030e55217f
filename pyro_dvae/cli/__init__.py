"""The `pyro-dvae` command line: thin wrappers that parse, call the library and report."""

from __future__ import annotations

import click

from .. import __version__
from ..errors import UserInputError


class _Group(click.Group):
    """Turns the library's UserInputError into a one-line error and exit code 1 (no traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserInputError as err:
            raise click.ClickException(str(err)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyro-dvae")
def main() -> None:
    """Learn disentangled static (f) and dynamic (z) codes from unordered frame sets."""


def _register() -> None:
    # Each command lives in its own module; this is the one place that lists them.
    from .data import data_group

    main.add_command(data_group)


_register()
