"""Networks of the DVAE's pairwise guide: q(f | x_S) from frame pairs and q(z_i | f, x_i)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from ...nets import FEATURE_SIDE, gaussian_params, mlp
from .config import DVAEConfig


class StaticEncoder(nn.Module):
    """Parameterises q(f | x_S) from pairwise comparisons of the N frame features.

    Every pair (i < j) goes through one shared conv (Conv_C), so only what two frames have in
    common is cheap to pass on; the pair maps are concatenated and mapped (Conv_F + dense) to the
    mean and scale of f.
    """

    def __init__(self, cfg: DVAEConfig):
        super().__init__()
        self.pairs = list(itertools.combinations(range(cfg.frames), 2))
        self.conv_c = nn.Sequential(
            nn.Conv2d(2 * cfg.conv_width, cfg.pair_width, 3, 1, 1), nn.ReLU()
        )
        self.conv_f = nn.Sequential(
            nn.Conv2d(len(self.pairs) * cfg.pair_width, cfg.pair_width, 3, 1, 1), nn.ReLU()
        )
        self.dense = mlp([cfg.pair_width * FEATURE_SIDE**2, cfg.hidden, 2 * cfg.f_dim])
        self.register_buffer("left", torch.tensor([i for i, _ in self.pairs]), persistent=False)
        self.register_buffer("right", torch.tensor([j for _, j in self.pairs]), persistent=False)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """h: (B, N, W, 4, 4) frame features -> loc, scale of f, each (B, f_dim)."""
        b, n_pairs = h.shape[0], len(self.pairs)
        # All pairs in one batched conv: (B * P, 2W, 4, 4).
        pair_input = torch.cat([h[:, self.left], h[:, self.right]], dim=2)
        pair_maps = self.conv_c(pair_input.flatten(0, 1))
        pair_maps = pair_maps.reshape(b, n_pairs * pair_maps.shape[1], *pair_maps.shape[2:])
        return gaussian_params(self.dense(self.conv_f(pair_maps).flatten(1)))


class DynamicEncoder(nn.Module):
    """Parameterises q(z_i | f, x_i) from [f, h_i]."""

    def __init__(self, cfg: DVAEConfig):
        super().__init__()
        self.net = mlp([cfg.f_dim + cfg.conv_width * FEATURE_SIDE**2, cfg.hidden, cfg.hidden,
                        2 * cfg.z_dim])

    def forward(self, f: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """f: (..., f_dim) broadcastable to h's leading dims; h: (..., W, 4, 4)."""
        h = h.flatten(-3)
        f = f.expand(*h.shape[:-1], f.shape[-1])
        return gaussian_params(self.net(torch.cat([f, h], dim=-1)))
