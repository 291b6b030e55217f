"""Data sources, all served as :class:`FrameSets` (unordered frame sets).

``load_frame_sets(source, split, ...)`` is the single entry point used by training, inspection and
evaluation. ``source`` is the name of a registered data set (a :class:`DataSet` record found
through the ``pyro_dvae.datasets`` entry points, the built-ins' among them) or a path to the
user's own data.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserInputError
from ..registry import DATASETS
from .base import FrameSets
from .records import DataSet

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
        "memory-mapped; evaluated label-free with the two-digit protocol (write one with "
        "`pyro-dvae data export moving-mnist`)"
    ),
}


def load_frame_sets(
    source: str | Path,
    split: str = "train",
    image_size: int | None = None,
    device: str | torch.device = "cpu",
    ordered: bool = False,
    progress: bool = True,
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
    progress : show a bar while a folder's videos or images are decoded into its cache.
    options : source-specific settings, e.g. ``limit_identities`` for Sprites, ``digits``,
        ``num_sequences``, ``sequence_length``, ``seed`` for Moving MNIST, ``crop``,
        ``channels``, ``min_frames``, ``test_fraction``, ``cache_dir`` for folders; an unknown
        name is an error that lists the known ones.
    """
    if split not in ("train", "test"):
        raise UserInputError(f"unknown split {split!r}; use 'train' or 'test'")
    name = str(source)
    if name in DATASETS:
        return DATASETS.get(name).open(split, image_size, device, ordered, **options)
    path = Path(source).expanduser()
    if path.exists():
        from .files import open_path

        return open_path(path, split, image_size, device, progress, **options)
    raise UserInputError(
        f"unknown data source {name!r}: neither a registered name ({', '.join(DATASETS.names())}) "
        "nor an existing path; see `pyro-dvae data sources`"
    )


def protocol_of(source: str | Path, options: dict) -> str | None:
    """``"module:NAME"`` of the evaluation protocol of runs on ``source`` with ``options``: a
    registered data set's own, the label-free two-digit protocol for the public Moving MNIST file
    (recognised by its name), else None (label-free metrics only)."""
    from .arrays import OFFICIAL_PROTOCOL, is_public_file

    name = str(source)
    if name in DATASETS:
        return DATASETS.get(name).protocol_name(options)
    return OFFICIAL_PROTOCOL if is_public_file(name) else None


def kind_of(source: str | Path) -> str:
    """The registered data set whose kind of frames ``source`` holds, for choosing presets: a
    registered name itself, ``moving-mnist`` for the public Moving MNIST file (recognised by its
    name), else ``source`` unchanged."""
    from .arrays import is_public_file

    name = str(source)
    return "moving-mnist" if name not in DATASETS and is_public_file(name) else name


def source_descriptions() -> dict[str, str]:
    """Registered data sets: name -> one-line description (``pyro-dvae data sources``)."""
    return {name: record.description for name, record in DATASETS.items()}

__all__ = ["DataSet", "FrameSets", "PATH_SOURCES", "kind_of", "load_frame_sets", "protocol_of",
           "source_descriptions"]
