"""`pyro-dvae data ...`: export, preview and list the data sources."""

from __future__ import annotations

import click


@click.group("data")
def data_group() -> None:
    """Export, preview and list data sources (sprites, moving-mnist, your own files)."""
