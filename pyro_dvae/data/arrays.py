"""Frame sets stored as numpy arrays (memory-mapped files or the decode cache), and array files.

Array files
-----------
``.npy`` or ``.npz`` of shape (n, T, H, W) or (n, T, H, W, C), C in {1, 3}, dtype uint8 (0-255) or
float in [0, 1]: n sets of T frames. ``.npy`` files are memory-mapped; an ``.npz`` is read into
memory and must hold one array (or one named ``frames``). Non-square frames are centre-cropped.

The public Moving MNIST file is recognised by its name: a file called ``mnist_test_seq.npy`` must
have the published layout (20, n, 64, 64) uint8 (time first) and is memory-mapped as n sets of 20
frames; any other name is read as (n, T, H, W[, C]).

Splits of user data
-------------------
The last ``test_fraction`` (default 10%) of the sets, in index order (sorted file names for
folders), form ``test`` and the rest ``train``; with two or more sets at least one is held out. A
single set, or ``test_fraction=0``, serves both splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserInputError
from .base import FrameSets

OFFICIAL_NAME = "mnist_test_seq.npy"
# How runs on the public file are evaluated: the two-digit protocol without labels (the file has none).
OFFICIAL_PROTOCOL = "pyro_dvae.evaluation.pairs:LABEL_FREE"
# Bytes per chunk when scanning a float array for its range, to bound memory on large files.
_SCAN_BYTES = 64 * 2**20


def check_test_fraction(test_fraction: float) -> None:
    """A held-out share must lie in [0, 1)."""
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 <= test_fraction < 1:
        raise UserInputError(f"test_fraction={test_fraction} is outside [0, 1); use e.g. 0.1")


def split_indices(n_sets: int, split: str, test_fraction: float = 0.1) -> np.ndarray:
    """Indices of the sets in ``split``: the last ``test_fraction`` of them are ``test``.

    At least one set is held out when there are two or more; a single set, or
    ``test_fraction=0``, gives every set to both splits.
    """
    check_test_fraction(test_fraction)
    if n_sets < 2 or test_fraction == 0:
        return np.arange(n_sets)
    n_test = min(max(1, round(test_fraction * n_sets)), n_sets - 1)
    return np.arange(n_sets - n_test, n_sets) if split == "test" else np.arange(n_sets - n_test)


class ArraySets(FrameSets):
    """Frame sets held as one numpy array (T_i, S, S, C) per set, uint8 or float in [0, 1].

    The arrays may be memory-mapped: only the requested frames are read, so data larger than
    memory can be used. ``set_names`` label the sets in error messages.
    """

    def __init__(
        self,
        arrays: Sequence[np.ndarray],
        *,
        name: str,
        set_names: Sequence[str] | None = None,
        image_size: int | None = None,
        device: str | torch.device = "cpu",
    ):
        super().__init__(image_size=image_size, device=device)
        if not arrays:
            raise UserInputError(f"{name!r} holds no frame sets; check the data path")
        shapes = {a.shape[1:] for a in arrays}
        if len(shapes) != 1:
            raise UserInputError(f"frame sets of {name!r} differ in frame shape: {sorted(shapes)}")
        size, width, channels = shapes.pop()
        if size != width:
            raise UserInputError(f"frames of {name!r} are not square ({size}x{width})")
        self.name = name
        self.native_size = size
        self.channels = channels
        self.set_names = list(set_names) if set_names is not None else [str(i) for i in range(len(arrays))]
        self._arrays = list(arrays)
        self._dtype = arrays[0].dtype
        self.set_sizes = torch.tensor([len(a) for a in arrays], dtype=torch.long, device=self.device)

    @property
    def memory_mapped(self) -> bool:
        """Whether frames are read from the file as they are needed (``.npy``), not held in memory."""
        return all(isinstance(a, np.memmap) for a in self._arrays)

    def _gather(self, set_idx: Tensor, frame_idx: Tensor) -> Tensor:
        # One read per distinct set in the request (at most the batch size), not per frame.
        sets = set_idx.reshape(-1).cpu().numpy()
        frames = frame_idx.reshape(-1).cpu().numpy()
        out = np.empty((len(sets), self.native_size, self.native_size, self.channels), self._dtype)
        for s in np.unique(sets):
            chosen = sets == s
            out[chosen] = self._arrays[s][frames[chosen]]
        x = torch.from_numpy(out).to(self.device)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        return x.permute(0, 3, 1, 2).reshape(*set_idx.shape, self.channels, *out.shape[1:3])

    def check_frames_per_set(self, n_frames: int) -> None:
        """Like :meth:`FrameSets.check_frames_per_set`, naming the short sets."""
        try:
            super().check_frames_per_set(n_frames)
        except UserInputError as err:
            short = (self.set_sizes < n_frames).nonzero().flatten().tolist()
            listed = ", ".join(f"{self.set_names[i]} ({int(self.set_sizes[i])})" for i in short[:5]) + (
                ", ..." if len(short) > 5 else ""
            )
            # Folders can skip short sets at load time; say how.
            raise UserInputError(
                f"{err} (short sets: {listed}; for folders, --data-option min_frames={n_frames} skips them)"
            ) from None


def centre_crop_view(array: np.ndarray) -> np.ndarray:
    """View of (..., H, W, C) cropped to the central square (no copy, memory maps stay mapped)."""
    height, width = array.shape[-3:-1]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return array[..., top : top + side, left : left + side, :]


def read_array_file(path: Path) -> np.ndarray:
    """The array in an .npy (memory-mapped) or .npz file, with read errors made user errors."""
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            if "frames" in keys:
                return archive["frames"]
            if len(keys) != 1:
                raise UserInputError(f"{path} holds arrays {keys}; store one array, or name the frames 'frames'")
            return archive[keys[0]]
    except UserInputError:
        raise
    except Exception as err:  # numpy raises several types for truncated or foreign files
        if "Object arrays" in str(err) or "Python objects" in str(err):  # not numpy's advice to unpickle
            raise UserInputError(f"{path} holds Python objects (an object array), which are never loaded because "
                                 "they can run code; save the frames as a numeric array (uint8 or float)") from None
        raise UserInputError(
            f"cannot read {path} as a numpy array (damaged, truncated, or not written by numpy.save / "
            "numpy.savez); save it with numpy.save or numpy.savez"
        ) from None


def official_layout(array: np.ndarray, path: Path) -> np.ndarray:
    """(n, 20, 64, 64, 1) view of the public Moving MNIST array (20, n, 64, 64) uint8."""
    if (
        array.dtype != np.uint8
        or array.ndim != 4
        or array.shape[0] != 20
        or array.shape[2:]
        != (
            64,
            64,
        )
    ):
        raise UserInputError(
            f"{path} has shape {array.shape} and dtype {array.dtype}, but a file named "
            f"{OFFICIAL_NAME} must be the public Moving MNIST array (20, n, 64, 64) uint8; "
            "rename it if it is your own (n, T, H, W) array"
        )
    return array.transpose(1, 0, 2, 3)[..., None]


def validate_sets_array(array: np.ndarray, path: Path) -> np.ndarray:
    """Check an (n, T, H, W[, C]) array and return it as (n, T, H, W, C)."""
    fix = "save an array of shape (n, T, H, W) or (n, T, H, W, C) with C = 1 or 3"
    if array.ndim == 4:
        array = array[..., None]
    if array.ndim != 5 or array.shape[-1] not in (1, 3):
        raise UserInputError(f"{path} has shape {array.shape}; {fix}")
    if 0 in array.shape:
        raise UserInputError(f"{path} has shape {array.shape} with an empty axis; {fix}")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise UserInputError(f"{path} has dtype {array.dtype}; convert to uint8 (0-255) or float in [0, 1]")
    low, high = _value_range(array)
    if not (0 <= low and high <= 1):
        raise UserInputError(
            f"{path} holds values in [{low:g}, {high:g}]; float frames must lie in [0, 1] (divide 0-255 data by 255)"
        )
    return array


def _value_range(array: np.ndarray) -> tuple[float, float]:
    # Chunked so that a memory-mapped file larger than memory is scanned, never loaded.
    step = max(1, _SCAN_BYTES // max(1, array[0].nbytes))
    low, high = np.inf, -np.inf
    for start in range(0, len(array), step):
        chunk = np.asarray(array[start : start + step])
        if np.isnan(chunk).any():
            return float("nan"), float("nan")
        low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    return low, high


def is_public_file(path: str | Path) -> bool:
    """Whether ``path`` names the public Moving MNIST file (recognised by its name, as it is
    distributed): it gets that file's layout, two-digit presets and label-free protocol."""
    return Path(path).name == OFFICIAL_NAME


def open_array_file(
    path: Path,
    split: str = "train",
    image_size: int | None = None,
    device: str | torch.device = "cpu",
    *,
    test_fraction: float = 0.1,
) -> ArraySets:
    """Frame sets from an array file (see the module docstring for layouts and splits)."""
    array = read_array_file(path)
    if is_public_file(path):
        array = official_layout(array, path)
    else:
        array = centre_crop_view(validate_sets_array(array, path))
    chosen = split_indices(len(array), split, test_fraction)
    return ArraySets(
        [array[i] for i in chosen],
        name=path.name,
        set_names=[f"{path.name}[{i}]" for i in chosen],
        image_size=image_size,
        device=device,
    )
