"""Posterior and prior queries on a trained model: encode, reconstruct, swap, sample, manifold.

All functions take a :class:`~pyro_dvae.model.DVAE` and tensors on the model's device, run without
gradients, and return tensors; figures are made from them in :mod:`pyro_dvae.plotting`.
Frames are (B, T, C, S, S). For T > N the static code is inferred from random N-frame subsets
(see :func:`infer_static`), since the guide compares exactly N frames.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from pyro import poutine
from torch import Tensor

from .model import DVAE, SITE_F, SITE_Z


class Codes(NamedTuple):
    """Posterior means of a batch of sets: static ``f`` (B, f_dim) and dynamic ``z`` (B, T, z_dim).

    A tuple, so ``f, z = encode(...)`` and ``decode(model, *codes)`` work.
    """

    f: Tensor
    z: Tensor

    def with_static(self, f: Tensor) -> Codes:
        """The same dynamics under another static code: a swap of identity, z unchanged."""
        return Codes(f, self.z)


def random_subsets(x: Tensor, n: int, n_subsets: int,
                   generator: torch.Generator | None = None) -> Tensor:
    """``n_subsets`` random n-frame subsets of each set of x (B, T, ...): (K, B, n, ...)."""
    if x.shape[1] < n:
        raise ValueError(f"sets have {x.shape[1]} frames; the model compares N={n}")
    idx = torch.rand(n_subsets, *x.shape[:2], generator=generator, device=x.device).argsort(-1)[..., :n]
    idx = idx.reshape(*idx.shape, *([1] * (x.dim() - 2))).expand(-1, -1, -1, *x.shape[2:])
    return torch.gather(x.expand(n_subsets, *x.shape), 2, idx)


@torch.no_grad()
def subset_static(model: DVAE, x: Tensor, n_subsets: int = 8,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mean and scale of q(f | x_S) for each of ``n_subsets`` random N-frame subsets S of each set.

    Returns loc, scale of shape (n_subsets, B, f_dim).
    """
    subsets = random_subsets(x, model.cfg.frames, n_subsets, generator)
    posterior = model.static_posterior(subsets.flatten(0, 1))
    shape = (n_subsets, x.shape[0], -1)
    return posterior.mean.reshape(shape), posterior.stddev.reshape(shape)


@torch.no_grad()
def infer_static(model: DVAE, x: Tensor, n_subsets: int = 8,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mean and scale of q(f | x_S), averaged over random N-frame subsets of each set.

    Returns loc, scale of shape (B, f_dim). With T == N the set itself is the one subset.
    """
    if x.shape[1] == model.cfg.frames:
        posterior = model.static_posterior(x)
        return posterior.mean.squeeze(-2), posterior.stddev.squeeze(-2)
    loc, scale = subset_static(model, x, n_subsets, generator)
    return loc.mean(0), scale.mean(0)


@torch.no_grad()
def static_consistency(model: DVAE, x: Tensor, n_subsets: int = 8,
                       generator: torch.Generator | None = None) -> float:
    """Within-set over between-set variance of f's posterior mean (lower: f is more static).

    Within: variance across random N-frame subsets of one set, averaged over sets. Between:
    variance across sets of each set's average f. Both summed over f's dimensions.
    """
    codes, _ = subset_static(model, x, n_subsets, generator)
    within = codes.var(0).sum(-1).mean()
    between = codes.mean(0).var(0).sum()
    return float(within / between)


@torch.no_grad()
def infer_dynamic(model: DVAE, x: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and scale of q(z_t | f, x_t) for every frame: (B, T, z_dim) each; f is (B, f_dim)."""
    posterior = model.dynamic_posterior(f.unsqueeze(-2), model.frame_features(x))
    return posterior.mean, posterior.stddev


@torch.no_grad()
def encode(model: DVAE, x: Tensor, generator: torch.Generator | None = None) -> Codes:
    """Posterior means: f (B, f_dim) and z (B, T, z_dim), each z_t inferred under its set's own f."""
    f, _ = infer_static(model, x, generator=generator)
    z, _ = infer_dynamic(model, x, f)
    return Codes(f, z)


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
    f_a = encode(model, x_static, generator).f
    return decode(model, *encode(model, x_dynamic, generator).with_static(f_a))


@torch.no_grad()
def swap_grid(model: DVAE, f: Tensor, z: Tensor) -> Tensor:
    """Decode every static code f (A, f_dim) with every dynamic code z (B, z_dim): (A, B, C, S, S)."""
    return decode(model, f, z.expand(f.shape[0], *z.shape))


@torch.no_grad()
def interpolate_static(model: DVAE, f_start: Tensor, f_end: Tensor, z: Tensor, steps: int = 8) -> Tensor:
    """Frames along the straight line from f_start to f_end (f_dim,) with z (T, z_dim) fixed.

    Returns (steps, T, C, S, S); the first and last steps decode f_start and f_end exactly.
    """
    weight = torch.linspace(0, 1, steps, device=f_start.device)[:, None]
    f = (1 - weight) * f_start + weight * f_end
    return decode(model, f, z.expand(steps, *z.shape))


def _guide_value(guide, site: str, x: Tensor) -> Tensor:
    return poutine.trace(guide).get_trace(x).nodes[site]["value"]


@torch.no_grad()
def posterior_draws(model: DVAE, x: Tensor, n_draws: int, generator: torch.Generator | None = None,
                    frames_per_pass: int = 4096) -> tuple[Tensor, Tensor]:
    """Independent draws from the guide: f ~ q(f | x_S), then z_t ~ q(z_t | f, x_t) for every frame.

    For T > N each draw compares a fresh random N-frame subset S of each set (subsets from
    ``generator``), so the spread of f includes its dependence on which frames were compared; for
    T == N the set itself is S, as in :func:`infer_static`. Values are the guide's own sample sites
    (``poutine.trace``), z drawn with f conditioned on the draw. Pyro samples from torch's global RNG.

    Returns f (n_draws, B, f_dim) and z (n_draws, B, T, z_dim).
    """
    n_sets, n_frames = x.shape[:2]
    # Several draws per guide pass, bounded so that memory stays flat for long sequences.
    chunk = max(1, frames_per_pass // (n_sets * n_frames))
    f_draws, z_draws = [], []
    for start in range(0, n_draws, chunk):
        d = min(chunk, n_draws - start)
        repeated = x.expand(d, *x.shape)
        compared = repeated if n_frames == model.cfg.frames else random_subsets(x, model.cfg.frames, d, generator)
        f = _guide_value(model.guide, SITE_F, compared.flatten(0, 1))
        z = _guide_value(poutine.condition(model.guide, data={SITE_F: f}), SITE_Z, repeated.flatten(0, 1))
        f_draws.append(f.reshape(d, n_sets, -1))
        z_draws.append(z.reshape(d, n_sets, n_frames, -1))
    return torch.cat(f_draws), torch.cat(z_draws)


@torch.no_grad()
def sample_prior(model: DVAE, n_sets: int, n_frames: int) -> tuple[Tensor, Tensor, Tensor]:
    """f ~ p(f), z_t ~ p(z | f); returns f (B, f_dim), z (B, T, z_dim), frames (B, T, C, S, S)."""
    device = next(model.parameters()).device
    f = model.f_prior((n_sets,)).sample().to(device)
    z = model.z_prior(f.unsqueeze(-2)).sample((n_frames,)).squeeze(-2).transpose(0, 1)
    return f, z, decode(model, f, z)


def principal_directions(z: Tensor, k: int = 2) -> Tensor:
    """The k leading principal directions of codes z (..., z_dim): orthonormal rows (k, z_dim).

    Each row's sign is fixed (largest-magnitude entry positive) so that figures are reproducible.
    """
    flat = z.reshape(-1, z.shape[-1])
    if not 1 <= k <= flat.shape[1]:
        raise ValueError(f"cannot take {k} principal directions of {flat.shape[1]}-dimensional codes")
    _, _, vh = torch.linalg.svd(flat - flat.mean(0), full_matrices=False)
    directions = vh[:k]
    sign = directions.gather(1, directions.abs().argmax(1, keepdim=True)).sign()
    return directions * torch.where(sign == 0, 1.0, sign)


@torch.no_grad()
def prior_grid(model: DVAE, f: Tensor, steps: int = 9, coverage: float = 0.9,
               n_draws: int = 2000, directions: Tensor | None = None) -> Tensor:
    """A regular (steps x steps, z_dim) grid over p(z | f) along two directions in z space.

    The grid is centred at the per-dimension median of draws from p(z | f) and spans the central
    ``coverage`` quantiles of the draws' coordinates along each direction, so it works for any
    prior, not only Gaussian ones; it varies along the directions only. ``directions`` (2, z_dim),
    orthonormal rows, default to the two leading z axes (one for z_dim == 1); for z_dim > 2 pass
    e.g. :func:`principal_directions` of posterior z's. Row index moves along the first direction,
    column index along the second. f: (f_dim,).
    """
    draws = model.z_prior(f[None]).sample((n_draws,)).reshape(n_draws, -1)
    if directions is None:
        directions = torch.eye(draws.shape[1], device=draws.device)[:2]
    centre = torch.quantile(draws, 0.5, dim=0)
    along = (draws - centre) @ directions.T  # coordinates of the draws along each direction
    lo, hi = (1 - coverage) / 2, (1 + coverage) / 2
    q = torch.quantile(along, torch.tensor([lo, hi], device=draws.device), dim=0)
    axes = [torch.linspace(float(q[0, d]), float(q[1, d]), steps, device=draws.device)
            for d in range(len(directions))]
    rows, cols = torch.meshgrid(axes[0], axes[-1], indexing="ij")
    weights = torch.stack([rows.flatten(), cols.flatten()], -1)[:, :len(directions)]
    return centre + weights @ directions


@torch.no_grad()
def latent_manifold(model: DVAE, f: Tensor, steps: int = 9, directions: Tensor | None = None) -> Tensor:
    """Decode a grid over p(z | f) for each f (K, f_dim): (K, steps, steps, C, S, S) (paper Fig. 3).

    ``directions``: see :func:`prior_grid` (shared by all panels, so they are comparable).
    """
    panels = []
    for f_k in f:
        grid = prior_grid(model, f_k, steps, directions=directions)
        frames = decode(model, f_k[None], grid[None])[0]
        panels.append(frames.reshape(steps, steps, *frames.shape[1:]))
    return torch.stack(panels)
