"""Coloured squares: a tiny synthetic source with a known static and a known dynamic factor.

Each set has one colour (static: from a palette of six) and frames showing a square of that
colour at random positions (dynamic). It trains in seconds, so the tests can check that the model
puts colour in f and position in z; users can use it (``--data squares``) as a smoke test.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import FrameSets

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
    """

    name = "squares"
    channels = 3

    def __init__(self, split: str = "train", image_size: int | None = None,
                 device: str | torch.device = "cpu", num_sets: int = 256,
                 frames_per_set: int = 16, size: int = 16, seed: int = 0):
        super().__init__(image_size, device)
        self.native_size = size
        self.side = size // 4
        # Different seeds for the two splits: held-out sets are new colour/position draws.
        g = torch.Generator().manual_seed(seed * 2 + (split == "test"))
        self.colours = torch.randint(len(PALETTE), (num_sets,), generator=g).to(self.device)
        self.positions = torch.randint(size - self.side + 1, (num_sets, frames_per_set, 2),
                                       generator=g).to(self.device)
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
