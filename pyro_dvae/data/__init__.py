"""Data sources, all served as :class:`FrameSets` (unordered frame sets).

``load_frame_sets(source, split, ...)`` is the single entry point used by training, inspection and
evaluation. ``source`` is a built-in name (see ``SOURCES``) or a path to the user's own data.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserInputError
from ._options import open_with_options
from .base import FrameSets

# Built-in sources: name -> one-line description (shown by `pyro-dvae data --help` and
# `pyro-dvae data sources`).
SOURCES = {
    "sprites": "LPC Sprites: 1296 identities x 178 poses, rendered on the device (64x64 RGB)",
    "squares": "coloured squares: colour is static, position dynamic (16x16 RGB; smoke tests)",
    "moving-mnist": (
        "Moving MNIST: 2 bundled MNIST digits bouncing in 64x64 frames, 20 per sequence, "
        "generated on the device; 10000 train / 1000 test sequences from disjoint digit images "
        "(options: digits=1|2, num_sequences, train_sequences, sequence_length, seed)"
    ),
    "moving-mnist-1": "Moving MNIST with one digit per sequence (moving-mnist with digits=1)",
}

# Paths to the user's own data: form -> one-line description (same displays as SOURCES).
PATH_SOURCES = {
    "VIDEO_FOLDER/": (
        "a folder of videos (mp4, avi, mov, webm, mkv, gif; or one video file): one set per "
        "video, decoded once into VIDEO_FOLDER/.pyro-dvae-cache/ (options: crop=center|faces, "
        "channels=1|3, min_frames, cache_dir, test_fraction)"
    ),
    "IMAGE_FOLDER/": (
        "a folder of sub-folders of images (png, jpg, ...): one unordered set per sub-folder, "
        "cached and with the options of VIDEO_FOLDER/"
    ),
    "ARRAY.npy|.npz": (
        "an array (n, T, H, W) or (n, T, H, W, C), uint8 or float in [0, 1]: n sets of T frames "
        "(.npy memory-mapped; option test_fraction)"
    ),
    "mnist_test_seq.npy": (
        "the public Moving MNIST file, recognised by this name: (20, n, 64, 64) uint8, "
        "memory-mapped"
    ),
}


def load_frame_sets(
    source: str | Path,
    split: str = "train",
    image_size: int | None = None,
    device: str | torch.device = "cpu",
    ordered: bool = False,
    **options,
) -> FrameSets:
    """Open a data source as frame sets.

    Parameters
    ----------
    source : built-in name (``SOURCES``) or path to the user's data (``PATH_SOURCES``; see
        :mod:`.files` for how a path is read and cached).
    split : ``train`` or ``test`` (built-in sources have a fixed split; paths hold out the last
        10% of the sets, in name order, for ``test``, at least one when there are two or more;
        a single set serves both).
    image_size : side of the square frames the model sees (resampled if needed).
    device : where frames are produced; the training device, so the GPU never waits for data.
    ordered : the view of the source whose sets are sequences in temporal order, for families
        that train on ordered windows (DSA). Only Sprites differs: its unordered view is one set
        of 178 poses per identity, its ordered view the 9 action sequences of 8 frames per
        identity (the standard protocol's). Other sources store their frames in order already.
    options : source-specific settings, e.g. ``limit_identities`` for Sprites, ``digits``,
        ``num_sequences``, ``sequence_length``, ``seed`` for Moving MNIST, ``crop``,
        ``channels``, ``min_frames``, ``test_fraction``, ``cache_dir`` for folders; an unknown
        name is an error that lists the known ones.
    """
    if split not in ("train", "test"):
        raise UserInputError(f"unknown split {split!r}; use 'train' or 'test'")
    name = str(source)
    if name == "sprites":
        from .sprites import Sprites, SpritesActions

        return open_with_options(
            SpritesActions if ordered else Sprites, name, split=split, image_size=image_size, device=device,
            **options
        )
    if name == "squares":
        from .synthetic import ColouredSquares

        return open_with_options(
            ColouredSquares, name, split=split, image_size=image_size, device=device, **options
        )
    if name in ("moving-mnist", "moving-mnist-1"):
        from .moving_mnist import MovingMNIST

        if name == "moving-mnist-1":
            if options.get("digits", 1) != 1:
                raise UserInputError("moving-mnist-1 has one digit; use moving-mnist for two")
            options["digits"] = 1
        return open_with_options(
            MovingMNIST, name, split=split, image_size=image_size, device=device, **options
        )
    path = Path(source).expanduser()
    if path.exists():
        from .files import open_path

        return open_path(path, split, image_size, device, **options)
    raise UserInputError(
        f"unknown data source {name!r}: neither a built-in name ({', '.join(SOURCES)}) "
        "nor an existing path; see `pyro-dvae data sources`"
    )

__all__ = ["FrameSets", "PATH_SOURCES", "SOURCES", "load_frame_sets"]
