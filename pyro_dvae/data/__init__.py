"""Data sources, all served as :class:`FrameSets` (unordered frame sets).

``load_frame_sets(source, split, ...)`` is the single entry point used by training, inspection and
evaluation. ``source`` is a built-in name (see ``SOURCES``) or a path to the user's own data.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserInputError
from .base import FrameSets

# Built-in sources: name -> one-line description (shown by `pyro-dvae data --help`).
SOURCES = {
    "sprites": "LPC Sprites: 1296 identities x 178 poses, rendered on the device (64x64 RGB)",
    "squares": "coloured squares: colour is static, position dynamic (16x16 RGB; smoke tests)",
}


def load_frame_sets(
    source: str | Path,
    split: str = "train",
    image_size: int | None = None,
    device: str | torch.device = "cpu",
    **options,
) -> FrameSets:
    """Open a data source as frame sets.

    Parameters
    ----------
    source : built-in name (``sprites``, ...) or path to the user's data.
    split : ``train`` or ``test`` (built-in sources have a fixed split; paths hold out a
        deterministic fraction of the sets for ``test``).
    image_size : side of the square frames the model sees (resampled if needed).
    device : where frames are produced; the training device, so the GPU never waits for data.
    options : source-specific settings (e.g. ``limit_identities`` for Sprites).
    """
    if split not in ("train", "test"):
        raise UserInputError(f"unknown split {split!r}; use 'train' or 'test'")
    name = str(source)
    if name == "sprites":
        from .sprites import Sprites

        return Sprites(split=split, image_size=image_size, device=device, **options)
    if name == "squares":
        from .synthetic import ColouredSquares

        return ColouredSquares(split=split, image_size=image_size, device=device, **options)
    raise UserInputError(
        f"unknown data source {name!r}; use one of {', '.join(SOURCES)} or a path to your data"
    )


__all__ = ["FrameSets", "SOURCES", "load_frame_sets"]
