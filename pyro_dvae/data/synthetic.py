"""Coloured squares: a tiny synthetic source with a known static and a known dynamic factor.

Each set has one colour (static: from a palette of six) and frames showing a square of that
colour at changing positions (dynamic): random positions (``motion="random"``, a set with no
order) or a square moving at a constant velocity and bouncing off the edges (``motion="bounce"``,
a sequence whose order matters). It trains in seconds, so the tests can check that a model puts
colour in f and position in z; users can use it (``--data squares``) as a smoke test.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import UserInputError
from .base import FrameSets
from .records import DataSet

MOTIONS = ("random", "bounce")

PALETTE = torch.tensor([
    [1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0],
    [1.0, 1.0, 0.1], [0.1, 1.0, 1.0], [1.0, 0.1, 1.0],
])


class ColouredSquares(FrameSets):
    """``num_sets`` sets of ``frames_per_set`` frames (size x size RGB), labels kept.

    Attributes
    ----------
    colours : LongTensor (n_sets,), palette index of each set (the static factor).
    positions : LongTensor (n_sets, frames_per_set, 2), top-left (row, col) of the square.
    velocities : LongTensor (n_sets, 2), pixels per frame (``motion="bounce"`` only; else zeros).
    """

    name = "squares"
    channels = 3

    def __init__(self, split: str = "train", image_size: int | None = None,
                 device: str | torch.device = "cpu", num_sets: int = 256,
                 frames_per_set: int = 16, size: int = 16, seed: int = 0, motion: str = "random"):
        super().__init__(image_size, device)
        if motion not in MOTIONS:
            raise UserInputError(f"unknown motion {motion!r} for squares; use one of {', '.join(MOTIONS)}")
        self.native_size = size
        self.side = size // 4
        # Different seeds for the two splits: held-out sets are new colour/position draws.
        g = torch.Generator().manual_seed(seed * 2 + (split == "test"))
        self.colours = torch.randint(len(PALETTE), (num_sets,), generator=g).to(self.device)
        room = size - self.side  # the top-left corner stays in [0, room]
        if motion == "random":
            positions = torch.randint(room + 1, (num_sets, frames_per_set, 2), generator=g)
            velocities = torch.zeros(num_sets, 2, dtype=torch.long)
        else:
            start = torch.randint(room + 1, (num_sets, 2), generator=g)
            speed = torch.randint(1, 3, (num_sets, 2), generator=g)  # 1 or 2 pixels per frame
            velocities = speed * (torch.randint(2, (num_sets, 2), generator=g) * 2 - 1)
            unfolded = start[:, None] + velocities[:, None] * torch.arange(frames_per_set)[:, None]
            # Reflect at both walls: a triangle wave of period 2 * room.
            positions = room - (unfolded.remainder(2 * room) - room).abs()
        self.positions = positions.to(self.device)
        self.velocities = velocities.to(self.device)
        self.set_sizes = torch.full((num_sets,), frames_per_set, device=self.device)
        self._palette = PALETTE.to(self.device)
        self._coords = torch.arange(size, device=self.device)

    def _gather(self, set_idx: Tensor, frame_idx: Tensor) -> Tensor:
        pos = self.positions[set_idx, frame_idx]  # (..., 2)
        rows = (self._coords - pos[..., 0, None]).clamp(min=-1)
        cols = (self._coords - pos[..., 1, None]).clamp(min=-1)
        in_rows = (rows >= 0) & (rows < self.side)
        in_cols = (cols >= 0) & (cols < self.side)
        mask = (in_rows[..., :, None] & in_cols[..., None, :]).float()  # (..., S, S)
        colour = self._palette[self.colours[set_idx]]  # (..., 3)
        return mask[..., None, :, :] * colour[..., :, None, None]


DATASET = DataSet(name="squares", opener=ColouredSquares,
                  description="coloured squares: colour is static, position dynamic (16x16 RGB; smoke tests)")
