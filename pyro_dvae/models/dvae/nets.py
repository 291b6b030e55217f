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
    """Parameterises q(z_i | f, x_i) from [f, h_i] (and, with ``locate``, where f's canvases lie in x_i)."""

    def __init__(self, cfg: DVAEConfig):
        super().__init__()
        located = 2 * cfg.canvases if cfg.locate else 0
        self.net = mlp([cfg.f_dim + cfg.conv_width * FEATURE_SIDE**2 + located, cfg.hidden, cfg.hidden,
                        2 * cfg.z_dim])

    def forward(self, f: Tensor, h: Tensor, located: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """f: (..., f_dim) broadcastable to h's leading dims; h: (..., W, 4, 4); located: (..., 2K)."""
        h = h.flatten(-3)
        f = f.expand(*h.shape[:-1], f.shape[-1])
        inputs = [f, h] if located is None else [f, h, located]
        return gaussian_params(self.net(torch.cat(inputs, dim=-1)))


#: Side at which canvases are matched against frames: coarse enough to be cheap, fine enough to
#: tell two digits apart (a digit is 14 px wide here).
LOCATE_SIDE = 32


def locate(frames: Tensor, canvases: Tensor, sharpness: float = 30.0) -> Tensor:
    """Where each canvas best matches each frame, by cross-correlation over every shift.

    frames (..., N, C, S, S) and canvases (..., 1, K, C, S, S) of ink in [0, 1] -> (..., N, 2K): the
    soft argmax (row, column) of each canvas's shift, as a fraction of the side. A statistic of
    x_i and f only (no gradient flows through it): it tells the dynamic encoder which digit is
    which canvas's, by shape.
    """
    side = min(frames.shape[-1], LOCATE_SIDE)

    def coarse(x: Tensor) -> Tensor:  # (..., C, S, S) -> summed ink (..., side, side), no gradient
        ink = x.detach().sum(-3)
        pooled = nn.functional.adaptive_avg_pool2d(ink.reshape(-1, 1, *ink.shape[-2:]), side)
        return pooled.reshape(*ink.shape[:-2], side, side)

    frame = coarse(frames).unsqueeze(-3)  # (..., N, 1, side, side)
    canvas = coarse(canvases)  # (..., 1, K, side, side)
    size = (2 * side, 2 * side)  # zero-padded: linear, not circular, correlation
    scores = torch.fft.irfft2(torch.fft.rfft2(frame, s=size) * torch.fft.rfft2(canvas, s=size).conj(), s=size)
    scores = torch.fft.fftshift(scores, dim=(-2, -1)).flatten(-2)  # index i <-> shift i - side
    scores = scores / scores.amax(-1, keepdim=True).clamp_min(1e-6)
    weights = (sharpness * scores).softmax(-1).reshape(*scores.shape[:-1], 2 * side, 2 * side)
    shifts = torch.arange(2 * side, device=frames.device, dtype=weights.dtype) - side
    where = torch.stack([(weights.sum(-1) * shifts).sum(-1), (weights.sum(-2) * shifts).sum(-1)], -1)
    return (where / side).flatten(-2)
