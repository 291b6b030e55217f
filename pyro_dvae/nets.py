"""Plain torch networks shared by the model families, each named after the distribution it
parameterises (as in Pyro's dmm.py): the frame feature convs and the decoder. A family's own
networks live in its sub-package (e.g. the pairwise q(f | x_S) in ``models/dvae/nets.py``).

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


class Emitter(nn.Module):
    """Parameterises p(x | f, z): [f, z] -> per-pixel logits (..., C, S, S).

    ``decoder = "concat"`` (the paper's): [f, z] is projected to a 4x4 map and upsampled by
    deconvolutions. ``"film"``: in addition, f sets a per-channel scale and shift of every hidden
    deconvolution's output (FiLM), so identity reaches every resolution of the image directly.
    ``"mlp"``: [f, z] passes a hidden dense layer (width ``hidden``) before the projection, so the
    4x4 map can depend on f and z jointly (a digit's shape drawn where z puts it), not only on a
    sum of the two.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.width = cfg.conv_width
        decoder = getattr(cfg, "decoder", "concat")
        widths = [cfg.f_dim + cfg.z_dim, *([cfg.hidden] if decoder == "mlp" else []),
                  cfg.conv_width * FEATURE_SIDE**2]
        projection: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            projection += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.project = nn.Sequential(*projection)
        layers: list[nn.Module] = []
        n = _n_halvings(cfg.image_size)
        for i in range(n):
            last = i == n - 1
            out = cfg.channels if last else cfg.conv_width
            layers.append(nn.ConvTranspose2d(cfg.conv_width, out, 4, 2, 1))
            if not last:
                layers.append(nn.LeakyReLU(0.2))
        self.deconv = nn.Sequential(*layers)
        self.n_modulated = n - 1  # every deconvolution but the one that outputs pixels
        if decoder == "film" and self.n_modulated:
            self.film = nn.Linear(cfg.f_dim, 2 * self.n_modulated * cfg.conv_width)
            nn.init.zeros_(self.film.weight)  # starts as the concat decoder: scale 1, shift 0
            nn.init.zeros_(self.film.bias)
        else:
            self.film = None

    def forward(self, f: Tensor, z: Tensor) -> Tensor:
        f = f.expand(*z.shape[:-1], f.shape[-1])
        lead = z.shape[:-1]
        f_flat = f.reshape(-1, f.shape[-1])
        h = self.project(torch.cat([f_flat, z.reshape(-1, z.shape[-1])], dim=-1))
        h = h.reshape(-1, self.width, FEATURE_SIDE, FEATURE_SIDE)
        if self.film is None:
            logits = self.deconv(h)
        else:
            scales_shifts = self.film(f_flat)[..., None, None].chunk(2 * self.n_modulated, dim=1)
            layer = 0
            for module in self.deconv:
                h = module(h)
                if isinstance(module, nn.ConvTranspose2d) and layer < self.n_modulated:
                    h = h * (1 + scales_shifts[2 * layer]) + scales_shifts[2 * layer + 1]
                    layer += 1
            logits = h
        return logits.reshape(*lead, *logits.shape[1:])


def __getattr__(name: str):
    # The DVAE's own encoders moved to its family package; old imports keep working.
    if name in ("StaticEncoder", "DynamicEncoder"):
        from .models.dvae import nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
