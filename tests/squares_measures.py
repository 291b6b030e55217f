"""What the squares learning tests measure in generated frames: the colour and the position."""

from __future__ import annotations

import torch


def colour(x):
    """Mean colour of the bright pixels of each frame: (..., 3)."""
    bright = (x.amax(-3, keepdim=True) > 0.5).float()
    return (x * bright).sum((-1, -2)) / bright.sum((-1, -2)).clamp(min=1)


def centre(x):
    """Centre of mass (row, col) of each frame's intensity: (..., 2)."""
    mass = x.sum(-3)
    coords = torch.arange(mass.shape[-1], dtype=x.dtype)
    total = mass.sum((-1, -2)).clamp(min=1e-6)
    return torch.stack([(mass.sum(-1) * coords).sum(-1), (mass.sum(-2) * coords).sum(-1)], -1) / total[..., None]
