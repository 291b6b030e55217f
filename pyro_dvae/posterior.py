"""Posterior and prior queries on a trained model: encode, reconstruct, swap, sample, manifold.

All functions take a :class:`~pyro_dvae.model.DVAE` and tensors on the model's device, run without
gradients, and return tensors; figures are made from them in :mod:`pyro_dvae.plotting`.
Frames are (B, T, C, S, S). For T > N the static code is inferred from random N-frame subsets
(see :func:`infer_static`), since the guide compares exactly N frames.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .model import DVAE


def random_subsets(x: Tensor, n: int, n_subsets: int,
                   generator: torch.Generator | None = None) -> Tensor:
    """``n_subsets`` random n-frame subsets of each set of x (B, T, ...): (K, B, n, ...)."""
    if x.shape[1] < n:
        raise ValueError(f"sets have {x.shape[1]} frames; the model compares N={n}")
    idx = torch.rand(n_subsets, *x.shape[:2], generator=generator, device=x.device).argsort(-1)[..., :n]
    idx = idx.reshape(*idx.shape, *([1] * (x.dim() - 2))).expand(-1, -1, -1, *x.shape[2:])
    return torch.gather(x.expand(n_subsets, *x.shape), 2, idx)


@torch.no_grad()
def infer_static(model: DVAE, x: Tensor, n_subsets: int = 8,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mean and scale of q(f | x_S), averaged over random N-frame subsets of each set.

    Returns loc, scale of shape (B, f_dim). With T == N the set itself is the one subset.
    """
    if x.shape[1] == model.cfg.frames:
        posterior = model.static_posterior(x)
        return posterior.mean.squeeze(-2), posterior.stddev.squeeze(-2)
    subsets = random_subsets(x, model.cfg.frames, n_subsets, generator)
    posterior = model.static_posterior(subsets.flatten(0, 1))
    loc = posterior.mean.reshape(n_subsets, x.shape[0], -1)
    scale = posterior.stddev.reshape(n_subsets, x.shape[0], -1)
    return loc.mean(0), scale.mean(0)


@torch.no_grad()
def static_consistency(model: DVAE, x: Tensor, n_subsets: int = 8,
                       generator: torch.Generator | None = None) -> float:
    """Within-set over between-set variance of f's posterior mean (lower: f is more static).

    Within: variance across random N-frame subsets of one set, averaged over sets. Between:
    variance across sets of each set's average f. Both summed over f's dimensions.
    """
    subsets = random_subsets(x, model.cfg.frames, n_subsets, generator)
    codes = model.static_posterior(subsets.flatten(0, 1)).mean.reshape(n_subsets, x.shape[0], -1)
    within = codes.var(0).sum(-1).mean()
    between = codes.mean(0).var(0).sum()
    return float(within / between)


@torch.no_grad()
def infer_dynamic(model: DVAE, x: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and scale of q(z_t | f, x_t) for every frame: (B, T, z_dim) each; f is (B, f_dim)."""
    posterior = model.dynamic_posterior(f.unsqueeze(-2), model.frame_features(x))
    return posterior.mean, posterior.stddev


@torch.no_grad()
def encode(model: DVAE, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Posterior means: f (B, f_dim) and z (B, T, z_dim)."""
    f, _ = infer_static(model, x, generator=generator)
    z, _ = infer_dynamic(model, x, f)
    return f, z


@torch.no_grad()
def decode(model: DVAE, f: Tensor, z: Tensor) -> Tensor:
    """Expected frames for f (B, f_dim) and z (B, T, z_dim): (B, T, C, S, S)."""
    return model.pixel_mean(f.unsqueeze(-2), z)


@torch.no_grad()
def reconstruct(model: DVAE, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Decode the posterior means of x: same shape as x."""
    return decode(model, *encode(model, x, generator))


@torch.no_grad()
def swap(model: DVAE, x_static: Tensor, x_dynamic: Tensor,
         generator: torch.Generator | None = None) -> Tensor:
    """Frames with the f of ``x_static`` and the z's of ``x_dynamic`` (pairwise by batch row)."""
    f_a, _ = encode(model, x_static, generator)
    _, z_b = encode(model, x_dynamic, generator)
    return decode(model, f_a, z_b)


@torch.no_grad()
def sample_prior(model: DVAE, n_sets: int, n_frames: int) -> tuple[Tensor, Tensor, Tensor]:
    """f ~ p(f), z_t ~ p(z | f); returns f (B, f_dim), z (B, T, z_dim), frames (B, T, C, S, S)."""
    device = next(model.parameters()).device
    f = model.f_prior((n_sets,)).sample().to(device)
    z = model.z_prior(f.unsqueeze(-2)).sample((n_frames,)).squeeze(-2).transpose(0, 1)
    return f, z, decode(model, f, z)


@torch.no_grad()
def prior_grid(model: DVAE, f: Tensor, steps: int = 9, coverage: float = 0.9,
               n_draws: int = 2000) -> Tensor:
    """A regular (steps x steps, z_dim) grid over the two leading z dimensions of p(z | f).

    The grid spans the central ``coverage`` quantiles of draws from p(z | f), so it works for
    any prior, not only Gaussian ones; other dimensions sit at their median. f: (f_dim,).
    """
    draws = model.z_prior(f[None]).sample((n_draws,)).reshape(n_draws, -1)
    lo, hi = (1 - coverage) / 2, (1 + coverage) / 2
    q = torch.quantile(draws, torch.tensor([lo, 0.5, hi], device=draws.device), dim=0)
    axes = [torch.linspace(float(q[0, d]), float(q[2, d]), steps, device=f.device)
            for d in range(min(2, draws.shape[1]))]
    grid = q[1].repeat(steps * steps, 1)
    rows, cols = torch.meshgrid(axes[0], axes[-1], indexing="ij")
    grid[:, 0] = rows.flatten()
    if draws.shape[1] > 1:
        grid[:, 1] = cols.flatten()
    return grid


@torch.no_grad()
def latent_manifold(model: DVAE, f: Tensor, steps: int = 9) -> Tensor:
    """Decode a grid over p(z | f) for each f (K, f_dim): (K, steps, steps, C, S, S) (paper Fig. 3)."""
    panels = []
    for f_k in f:
        grid = prior_grid(model, f_k, steps)
        frames = decode(model, f_k[None], grid[None])[0]
        panels.append(frames.reshape(steps, steps, *frames.shape[1:]))
    return torch.stack(panels)
