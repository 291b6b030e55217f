"""Checkpoints: config, weights, optimiser and RNG state, and step, in one file.

Written atomically (a temporary file in the same folder, then ``os.replace``) so that an
interruption never leaves a half-written checkpoint. Read with ``torch.load(weights_only=True)``,
which unpickles only tensors and plain containers: a crafted file cannot execute code.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write
from .errors import UserInputError

FORMAT = "pyro-dvae-checkpoint"
#: A run directory's checkpoint file name (here, the lowest layer, so that every layer names it alike).
CHECKPOINT_FILE = "checkpoint.pt"
#: The key of the weights training continues from, present when the run averages its weights
#: (``model`` then holds the averaged ones: pyro_dvae/training/averaging.py).
TRAINING_WEIGHTS = "model_training"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (tensors, numbers, strings, lists, dicts) to ``path``."""
    atomic_write(path, lambda fh: torch.save({"format": FORMAT, "version": VERSION, **payload}, fh))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; never executes code from the file."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"checkpoint {path} not found; pass a run directory made by `pyro-dvae train`")
    try:
        with warnings.catch_warnings():  # torch's pickle warnings on a crafted file are not for people
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError):
        # The library's own text (cut-off pickle details, advice to allow pickling) is not for people.
        raise UserInputError(
            f"{path} is not a safe pyro-dvae checkpoint (damaged, truncated, or not written by pyro-dvae); "
            "use a checkpoint written by `pyro-dvae train`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserInputError(
            f"{path} is not a pyro-dvae checkpoint; use a checkpoint written by `pyro-dvae train`"
        )
    if payload.get("version", 0) > VERSION:
        raise UserInputError(
            f"{path} was written by a newer pyro-dvae (format {payload['version']}); upgrade pyro-dvae"
        )
    return payload
