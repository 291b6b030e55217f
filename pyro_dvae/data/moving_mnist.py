"""Moving MNIST generated on the device from the MNIST digits shipped with the package.

Follows Srivastava et al. (2015): 64x64 frames, 20 frames per sequence, 28x28 digits moving at a
constant speed in a random direction and bouncing off the borders; two digits by default
(``digits=1`` or the source name ``moving-mnist-1`` for one), overlapping digits combined by
pixel-wise max. Only (digit index, trajectory) is stored per sequence; frames are rendered on
demand by one gather, so a data set of any size costs a few MB.

Splits use disjoint digit images: the bundled file is sorted by class, so the last 10% of the
images of each class form the test pool and the rest the training pool.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserInputError
from .base import FrameSets
from .records import DataSet

DIGITS_FILE = Path(__file__).parent / "assets" / "mnist" / "mnist_10k.npz"
FRAME_SIZE = 64
DIGIT_SIZE = 28
# Free range of the digit's top-left corner: positions lie in [0, 36].
MAX_POSITION = FRAME_SIZE - DIGIT_SIZE
# Distance per frame as a fraction of the free range, as in the public generator (3.6 px).
STEP = 0.1
TEST_FRACTION = 0.1


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled MNIST digits: images (10000, 28, 28) uint8 and labels (10000,) uint8."""
    with np.load(DIGITS_FILE) as archive:
        return archive["images"], archive["labels"]


def digit_pool(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of the digit images of ``split``: the last 10% of every class are test.

    Stratified so both pools hold every class although the file is sorted by class.
    """
    test = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        members = np.flatnonzero(labels == digit)
        test[members[len(members) - round(TEST_FRACTION * len(members)) :]] = True
    return np.flatnonzero(test if split == "test" else ~test)


def bounce(start: Tensor, velocity: Tensor, steps: int) -> Tensor:
    """Positions in [0, 1] after 0..steps-1 moves with elastic reflection at 0 and 1.

    Reflecting the unfolded straight line is a triangle wave, so every frame is computed at once.

    Parameters
    ----------
    start, velocity : (..., 2) tensors; start in [0, 1].
    steps : number of frames.

    Returns
    -------
    Tensor of shape (..., steps, 2) with ``...`` the leading shape of ``start``.
    """
    t = torch.arange(steps, dtype=start.dtype, device=start.device)
    unfolded = start[..., None, :] + velocity[..., None, :] * t[:, None]
    return 1 - (torch.remainder(unfolded, 2) - 1).abs()


class MovingMNIST(FrameSets):
    """Moving MNIST sequences as frame sets (one set = the frames of one sequence).

    Parameters
    ----------
    split : ``train`` or ``test``; the two draw from disjoint digit images.
    image_size : side of the frames the model sees (resampled from 64 if different).
    device : where the digits live and frames are rendered.
    digits : digits per sequence, 1 or 2.
    num_sequences : number of sequences of either split; by default ``train_sequences`` for train
        and 1000 for test.
    train_sequences : number of training sequences when ``num_sequences`` is not given (default
        10000, of which one digit image in three is never drawn: 100000 draw all 9000 training
        images); the test split keeps its 1000, so that evaluations compare.
    sequence_length : frames per sequence.
    seed : the data set is a deterministic function of (seed, split, options) on any device.

    Attributes
    ----------
    digit_indices : (n, digits) long, index of each digit's image in the bundled file.
    labels : (n, digits) long, digit classes.
    positions : (n, sequence_length, digits, 2) long, (row, column) of each digit's top-left
        corner per frame, within [0, 36].
    """

    channels = 1
    native_size = FRAME_SIZE

    def __init__(
        self,
        split: str = "train",
        image_size: int | None = None,
        device: str | torch.device = "cpu",
        *,
        digits: int = 2,
        num_sequences: int | None = None,
        train_sequences: int = 10000,
        sequence_length: int = 20,
        seed: int = 0,
    ):
        super().__init__(image_size=image_size, device=device)
        if digits not in (1, 2):
            raise UserInputError(f"digits={digits!r} is not supported; use digits=1 or digits=2")
        n = int((train_sequences if split == "train" else 1000) if num_sequences is None else num_sequences)
        steps = int(sequence_length)
        if n < 1 or steps < 1:
            raise UserInputError("num_sequences and sequence_length must be positive integers; raise them")
        self.name = "moving-mnist" if digits == 2 else "moving-mnist-1"
        images, labels = load_digits()
        # The generator runs on the CPU so that a seed gives the same data on every device.
        generator = torch.Generator().manual_seed(2 * int(seed) + (split == "test"))
        pool = torch.from_numpy(digit_pool(labels, split))
        choice = torch.randint(len(pool), (n, digits), generator=generator)
        start = torch.rand(n, digits, 2, generator=generator)
        angle = torch.rand(n, digits, generator=generator) * 2 * math.pi
        velocity = STEP * torch.stack([angle.sin(), angle.cos()], dim=-1)
        path = bounce(start, velocity, steps)  # (n, digits, T, 2)

        self.digit_indices = pool[choice].to(self.device)
        self.labels = torch.from_numpy(labels.astype(np.int64))[pool[choice]].to(self.device)
        self.positions = (path * MAX_POSITION).round().long().transpose(1, 2).to(self.device)
        self._images = torch.from_numpy(images).to(self.device)
        self.set_sizes = torch.full((n,), steps, dtype=torch.long, device=self.device)

    def _gather(self, set_idx: Tensor, frame_idx: Tensor) -> Tensor:
        shape = set_idx.shape
        sets, frames = set_idx.reshape(-1), frame_idx.reshape(-1)
        frame = render(self._images, self.digit_indices[sets], self.positions[sets, frames])
        return frame.reshape(*shape, 1, FRAME_SIZE, FRAME_SIZE)


def render(images: Tensor, digit_indices: Tensor, corners: Tensor) -> Tensor:
    """Frames (M, 1, 64, 64) in [0, 1] of the digit images ``digit_indices`` (M, digits) of
    ``images`` (n, 28, 28) uint8 with top-left corners ``corners`` (M, digits, 2) (row, column).

    Each output pixel looks up its source pixel in every digit: one gather for the whole batch;
    pixels outside a digit's 28x28 box are masked to 0, then digits combine by max.
    """
    device = images.device
    grid = torch.arange(FRAME_SIZE, device=device)
    rows = grid - corners[..., 0, None]  # (M, digits, 64)
    cols = grid - corners[..., 1, None]
    inside = ((rows >= 0) & (rows < DIGIT_SIZE))[..., :, None] & ((cols >= 0) & (cols < DIGIT_SIZE))[..., None, :]
    pixels = images[
        digit_indices[..., None, None],
        rows.clamp(0, DIGIT_SIZE - 1)[..., :, None],
        cols.clamp(0, DIGIT_SIZE - 1)[..., None, :],
    ]
    frame = torch.where(inside, pixels, torch.zeros((), dtype=pixels.dtype, device=device))
    return frame.amax(dim=1).float().div_(255)[:, None]


def box_centres(corners: Tensor) -> Tensor:
    """Centres (row, column) of the 28x28 digit boxes whose top-left corners are ``corners`` (..., 2),
    in pixels of the 64x64 frame (pixel i at coordinate i, as :func:`centre_of_mass` counts)."""
    return corners.float() + (DIGIT_SIZE - 1) / 2


def export_public_layout(path: Path, split: str = "test", num_sequences: int = 10000, seed: int = 0) -> Path:
    """Write generated two-digit sequences in the public file's layout, (20, n, 64, 64) uint8 (time first).

    The public ``mnist_test_seq.npy`` cannot be downloaded everywhere; a file written here under that
    name is read exactly as the public one (``--data DIR/mnist_test_seq.npy``), without labels.
    """
    from ..atomic import atomic_write

    data = MovingMNIST(split, digits=2, num_sequences=num_sequences, sequence_length=20, seed=seed)
    frames = torch.arange(20)
    chunks = [(data.frames(torch.arange(s, min(s + 500, len(data)))[:, None], frames) * 255).round().to(torch.uint8)
              for s in range(0, len(data), 500)]
    array = torch.cat(chunks)[:, :, 0].transpose(0, 1).contiguous().numpy()  # (20, n, 64, 64)
    return atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))


def _protocol(options) -> str:
    one = options.get("digits", 2) == 1
    return "pyro_dvae.evaluation.digits:PROTOCOL" if one else "pyro_dvae.evaluation.pairs:PROTOCOL"


DATASET = DataSet(
    name="moving-mnist",
    description=("Moving MNIST: 2 bundled MNIST digits bouncing in 64x64 frames, 20 per sequence, generated on "
                 "the device; 10000 train / 1000 test sequences from disjoint digit images (options: digits=1|2, "
                 "num_sequences, train_sequences, sequence_length, seed)"),
    opener=MovingMNIST,
    protocol=_protocol,
)
ONE_DIGIT_DATASET = DataSet(
    name="moving-mnist-1",
    description="Moving MNIST with one digit per sequence (moving-mnist with digits=1)",
    opener=MovingMNIST,
    fixed_options={"digits": 1},
    protocol=_protocol,
)
