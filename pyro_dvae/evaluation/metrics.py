"""Pure metric functions on tensors: accuracy, entropies, Inception Score, MSE, PSNR, summaries.

Class probabilities are (n, C) tensors whose rows sum to 1 (a judge's softmax output). Entropies
are in nats. Nothing here knows about models or data; see :mod:`.protocols` for how they are used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

# Probabilities are clamped here before taking logs, so that exact zeros (one-hot predictions)
# contribute 0 * log 0 = 0 rather than NaN.
_TINY = 1e-12


def accuracy(predicted: Tensor, labels: Tensor) -> float:
    """Fraction of ``predicted`` class indices equal to ``labels`` (same shape)."""
    if predicted.shape != labels.shape:
        raise ValueError(f"predictions {tuple(predicted.shape)} and labels {tuple(labels.shape)} differ in shape")
    return float((predicted == labels).float().mean())


def entropy(probs: Tensor) -> Tensor:
    """Entropy of each categorical distribution in the last dimension: shape ``probs.shape[:-1]``."""
    return -(probs * probs.clamp_min(_TINY).log()).sum(-1)


def conditional_entropy(probs: Tensor) -> float:
    """H(y|x): the mean entropy of the judge's prediction p(y|x) over samples x (low: confident)."""
    return float(entropy(probs).mean())


def marginal_entropy(probs: Tensor) -> float:
    """H(y): the entropy of the average prediction p(y) = E_x p(y|x) (high: diverse classes)."""
    return float(entropy(probs.mean(0)))


def inception_score(probs: Tensor) -> float:
    """IS = exp E_x KL(p(y|x) || p(y)), with p(y) the average of the rows of ``probs``.

    Equals exp(H(y) - H(y|x)); 1 when every prediction is the same, C when predictions are
    one-hot and spread evenly over C classes.
    """
    marginal = probs.mean(0, keepdim=True)
    kl = (probs * (probs.clamp_min(_TINY).log() - marginal.clamp_min(_TINY).log())).sum(-1)
    return math.exp(float(kl.mean()))


def mse_per_frame(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error of each frame of x and y (..., C, H, W): shape ``x.shape[:-3]``."""
    return ((x - y) ** 2).mean((-1, -2, -3))


def psnr(mse: Tensor, peak: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB from mean squared errors of images in [0, peak]."""
    return 10 * torch.log10(peak**2 / mse.clamp_min(1e-10))


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity (Wang et al. 2004) of each frame of x and y (..., C, H, W) in [0, 1].

    The standard form: Gaussian-weighted local means, variances and covariance over an 11x11
    window (sigma 1.5; shrunk to the image for smaller frames), valid positions only, C1 = 0.01^2,
    C2 = 0.03^2; averaged over positions and channels. 1 for identical frames. Shape ``x.shape[:-3]``.
    """
    import torch.nn.functional as F

    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    size = min(window, h, w)
    coords = torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = (g[:, None] * g[None, :] / g.sum() ** 2).expand(c, 1, size, size)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, groups=c)

    x, y = x.reshape(-1, c, h, w), y.reshape(-1, c, h, w)
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return value.mean((-1, -2, -3)).reshape(lead)


def centre_of_mass(x: Tensor) -> Tensor:
    """Intensity centre (row, col) in pixels of frames (..., C, H, W): (..., 2)."""
    mass = x.sum(-3)
    coords = torch.arange(mass.shape[-1], dtype=x.dtype, device=x.device)
    total = mass.sum((-1, -2)).clamp_min(1e-6)
    rows = (mass.sum(-1) * coords).sum(-1) / total
    cols = (mass.sum(-2) * coords).sum(-1) / total
    return torch.stack([rows, cols], -1)


def summarize(values: Sequence[float]) -> dict[str, float | list[float]]:
    """Mean, standard deviation (over seeds; 0 for one value) and the values themselves."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    std = float(t.std()) if len(t) > 1 else 0.0
    return {"mean": float(t.mean()), "std": std, "per_seed": [float(v) for v in values]}
