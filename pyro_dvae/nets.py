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
SHARPEST_SHIFT = 0.7  # px: the narrowest shift kernel that shift_sharpening leads to


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
        block = cfg.space_to_depth
        channels = cfg.channels * block**2
        if block > 1:  # lossless and free: each block's pixels become channels of one position
            layers.append(nn.PixelUnshuffle(block))
        for _ in range(_n_halvings(cfg.image_size // block)):
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
    sum of the two. ``"translate"``: f alone draws a canvas (the concat decoder without z), and z
    only moves it: a small network maps z to a point, and the frame is the canvas convolved with a
    Gaussian of one learned width around that shift (a soft spatial transformer; translation-based
    decoders are common on Moving MNIST, e.g. DDPAE, Hsieh et al. 2018). An inductive bias for
    data whose dynamics are a translation: the deconvolutions draw a shape once per set, never per
    position, which also makes them 1/N of the concat decoder's cost. With ``canvases = K`` > 1, f
    draws K canvases and z K points, one per canvas; the moved canvases combine by a soft maximum
    of their logits (log-sum-exp less log K: the background stays the background, and where one
    canvas draws ink the frame shows it), so K objects move independently, as Moving MNIST's digits
    do (overlapping digits there combine by a pixel-wise maximum).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.width = cfg.conv_width
        decoder = cfg.decoder
        self.translate = decoder == "translate"
        self.canvases = cfg.canvases
        widths = [cfg.f_dim + (0 if self.translate else cfg.z_dim), *([cfg.hidden] if decoder == "mlp" else []),
                  cfg.conv_width * FEATURE_SIDE**2]
        projection: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            projection += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.project = nn.Sequential(*projection)
        layers: list[nn.Module] = []
        block = cfg.space_to_depth
        n = _n_halvings(cfg.image_size // block)
        for i in range(n):
            last = i == n - 1
            out = cfg.channels * self.canvases * block**2 if last else cfg.conv_width
            layers.append(nn.ConvTranspose2d(cfg.conv_width, out, 4, 2, 1))
            if not last:
                layers.append(nn.LeakyReLU(0.2))
        if block > 1:  # the last deconvolution draws each block's pixels as channels
            layers.append(nn.PixelShuffle(block))
        self.deconv = nn.Sequential(*layers)
        self.n_modulated = n - 1  # every deconvolution but the one that outputs pixels
        if decoder == "film" and self.n_modulated:
            self.film = nn.Linear(cfg.f_dim, 2 * self.n_modulated * cfg.conv_width)
            nn.init.zeros_(self.film.weight)  # starts as the concat decoder: scale 1, shift 0
            nn.init.zeros_(self.film.bias)
        else:
            self.film = None
        if self.translate:
            side = cfg.image_size
            # z -> where the canvas's centre goes, (x, y) in pixels from the frame's centre. The move
            # is a convolution with a Gaussian over the shifts -side/2 .. side/2 around that point,
            # of one learned width for every frame (z only moves the canvas, never blurs or splits
            # it): wide at the start, so that every shift gets a gradient from the whole image (a
            # point shift through bilinear sampling only sees the canvas's edges and stalled where
            # the canvas was still a blur of the trajectory), and as narrow as the data lets it become.
            self.shift = mlp([cfg.z_dim, cfg.hidden, 2 * self.canvases])
            nn.init.zeros_(self.shift[-1].weight)  # starts centred
            nn.init.zeros_(self.shift[-1].bias)
            self.log_shift_width = nn.Parameter(torch.tensor(math.log(side / 4)))
            self.register_buffer("offsets", torch.arange(side + 1.0) - side // 2, persistent=False)
            # tap[i, a]: the offset index that moves canvas row (column) a to row i; outside 0..side, none.
            rows = torch.arange(side)
            self.register_buffer("tap", rows[:, None] - rows[None, :] + side // 2, persistent=False)
            # Logit of what a shift uncovers outside the canvas (learned with the rest).
            self.background = nn.Parameter(torch.zeros(()))
            # shift_sharpening: while training, the width is at most side/4 halved every that many
            # steps, down to SHARPEST_SHIFT. Learned alone it stays wide, with a canvas pre-sharpened
            # for that blur (the two trade at no cost in likelihood, so nothing narrows it), which
            # draws a digit's details worse. The training forward passes taken (one per DVAE step)
            # are a buffer, so the schedule resumes with the checkpoint; runs without it keep their
            # state dict.
            self.sharpening = cfg.shift_sharpening
            if self.sharpening:
                self.register_buffer("trained_steps", torch.zeros(()))

    def forward(self, f: Tensor, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        if self.translate:
            logits = self._translate(f, z)
        else:
            f_flat = f.expand(*lead, f.shape[-1]).reshape(-1, f.shape[-1])
            logits = self._draw(self.project(torch.cat([f_flat, z.reshape(-1, z.shape[-1])], dim=-1)), f_flat)
        return logits.reshape(*lead, *logits.shape[1:])

    def _translate(self, f: Tensor, z: Tensor) -> Tensor:
        """One canvas per f (not per frame: f is usually (B, 1, f_dim) against z's (B, N, z_dim)),
        convolved with each frame's separable shift kernel; returns (frames, C, S, S) logits."""
        f_flat = f.reshape(-1, f.shape[-1])
        canvas = self._draw(self.project(f_flat), f_flat) - self.background
        k = self.canvases
        canvas = canvas.reshape(*f.shape[:-1], *([k] if k > 1 else []), -1, *canvas.shape[-2:])
        centre = self.shift(z).reshape(*z.shape[:-1], *([k] if k > 1 else []), 2, 1)  # x, y of each canvas
        if self.sharpening and self.training and torch.is_grad_enabled():
            self.trained_steps += 1
        taps = (-0.5 * ((self.offsets - centre) / self.shift_width()) ** 2).softmax(-1)  # (..., 2, side + 1)
        side = self.tap.shape[0]
        inside = (self.tap >= 0) & (self.tap <= side)
        move = torch.where(inside, taps[..., self.tap.clamp(0, side)], 0.0)  # (..., 2, S, S) Toeplitz
        move_x, move_y = move[..., None, 0, :, :], move[..., None, 1, :, :]  # a channel dim each
        moved = move_y @ canvas @ move_x.transpose(-1, -2)
        if k > 1:  # (..., K, C, S, S): the soft maximum over canvases, 0 where all show background
            moved = moved.logsumexp(-4) - math.log(k)
        return moved.reshape(-1, *moved.shape[-3:]) + self.background

    def shift_width(self) -> Tensor:
        """The shift kernel's width in pixels: learned, and capped by shift_sharpening's schedule."""
        width = self.log_shift_width.exp()
        if not self.sharpening:
            return width
        cap = self.tap.shape[0] / 4 * 0.5 ** (self.trained_steps / self.sharpening)
        return torch.minimum(width, cap.clamp(min=SHARPEST_SHIFT))

    def _draw(self, h: Tensor, f_flat: Tensor) -> Tensor:
        """The deconvolutions from the projected (rows, W * 16) map to (rows, C, S, S) logits."""
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
        return logits

