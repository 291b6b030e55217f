"""Plain torch networks, each named after the distribution it parameterises (as in Pyro's dmm.py).

Shapes: frames are (..., C, S, S) with S = image_size; every frame is reduced to a 4x4 feature map
by log2(S/4) stride-2 convolutions (4 for 64x64 inputs, as in the paper's appendix C).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig

FEATURE_SIDE = 4  # spatial side of the frame feature map h_i


def _n_halvings(image_size: int) -> int:
    return int(math.log2(image_size // FEATURE_SIDE))


def gaussian_params(out: Tensor) -> tuple[Tensor, Tensor]:
    """Split a (..., 2D) output into a mean and a positive scale (softplus keeps gradients alive)."""
    loc, raw_scale = out.chunk(2, dim=-1)
    return loc, F.softplus(raw_scale) + 1e-4


def mlp(sizes: list[int]) -> nn.Sequential:
    """Dense layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class FrameFeatures(nn.Module):
    """x_i -> h_i: the shared per-frame conv stack used by both q(f|x_S) and q(z|f,x)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        layers: list[nn.Module] = []
        channels = cfg.channels
        for _ in range(_n_halvings(cfg.image_size)):
            layers += [nn.Conv2d(channels, cfg.conv_width, 4, 2, 1), nn.LeakyReLU(0.2)]
            channels = cfg.conv_width
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-3]
        h = self.net(x.reshape(-1, *x.shape[-3:]))
        return h.reshape(*lead, *h.shape[1:])


class StaticEncoder(nn.Module):
    """Parameterises q(f | x_S) from pairwise comparisons of the N frame features.

    Every pair (i < j) goes through one shared conv (Conv_C), so only what two frames have in
    common is cheap to pass on; the pair maps are concatenated and mapped (Conv_F + dense) to the
    mean and scale of f.
    """

    def __init__(self, cfg: ModelConfig):
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

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = mlp([cfg.f_dim + cfg.conv_width * FEATURE_SIDE**2, cfg.hidden, cfg.hidden,
                        2 * cfg.z_dim])

    def forward(self, f: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """f: (..., f_dim) broadcastable to h's leading dims; h: (..., W, 4, 4)."""
        h = h.flatten(-3)
        f = f.expand(*h.shape[:-1], f.shape[-1])
        return gaussian_params(self.net(torch.cat([f, h], dim=-1)))


class Emitter(nn.Module):
    """Parameterises p(x | f, z): [f, z] -> per-pixel logits (..., C, S, S)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.width = cfg.conv_width
        self.project = nn.Sequential(
            nn.Linear(cfg.f_dim + cfg.z_dim, cfg.conv_width * FEATURE_SIDE**2), nn.LeakyReLU(0.2)
        )
        layers: list[nn.Module] = []
        n = _n_halvings(cfg.image_size)
        for i in range(n):
            last = i == n - 1
            out = cfg.channels if last else cfg.conv_width
            layers.append(nn.ConvTranspose2d(cfg.conv_width, out, 4, 2, 1))
            if not last:
                layers.append(nn.LeakyReLU(0.2))
        self.deconv = nn.Sequential(*layers)

    def forward(self, f: Tensor, z: Tensor) -> Tensor:
        f = f.expand(*z.shape[:-1], f.shape[-1])
        lead = z.shape[:-1]
        h = self.project(torch.cat([f, z], dim=-1).reshape(-1, f.shape[-1] + z.shape[-1]))
        logits = self.deconv(h.reshape(-1, self.width, FEATURE_SIDE, FEATURE_SIDE))
        return logits.reshape(*lead, *logits.shape[1:])
