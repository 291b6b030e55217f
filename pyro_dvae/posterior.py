"""Posterior and prior queries on a trained model: encode, reconstruct, swap, sample, manifold.

All functions take a model of any family (a :class:`~pyro_dvae.models.base.SequenceModel`) and
tensors on its device, run without gradients, and return tensors; figures are made from them in
:mod:`pyro_dvae.plotting`. Frames are (B, T, C, S, S). A query the model's family cannot answer
(sampling a prior it does not have) raises :class:`~pyro_dvae.models.base.CapabilityError`.
For the DVAE and T > N the static code is inferred from random N-frame subsets (see
:func:`infer_static`), since its guide compares exactly N frames.
"""

from __future__ import annotations

import math

import torch
from pyro import poutine
from torch import Tensor

from .models.base import SITE_F, SITE_Z, Codes, SequenceModel, random_subsets

__all__ = [
    "Codes", "decode", "dynamics_draws", "encode", "figure_directions", "infer_dynamic", "infer_static",
    "interpolate_dynamic", "interpolate_static", "latent_manifold", "posterior_draws", "principal_directions",
    "prior_grid", "random_subsets", "reconstruct", "sample_prior", "static_consistency", "subset_static", "swap",
    "swap_grid",
]


@torch.no_grad()
def subset_static(model: SequenceModel, x: Tensor, n_subsets: int = 8,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mean and scale of the static posterior for ``n_subsets`` random subsets of each set.

    Subsets have ``model.subset_frames`` frames (N for the DVAE), kept in order for families that
    read order, and at most half of the set (at least 2): a family trained on long windows (DrNet's
    20 frames) is still compared on subsets that differ between draws. Returns loc, scale of shape
    (n_subsets, B, f_dim).
    """
    return model.static_subsets(x, subset_size(model, x.shape[1]), n_subsets, generator)


def subset_size(model: SequenceModel, set_frames: int) -> int:
    """Frames per subset in :func:`subset_static` for sets of ``set_frames`` frames.

    Never fewer than the family encodes (the DVAE's N: with N = 5, sets of 8 frames are compared on
    5-frame subsets, not 4); subsets of a set that long are that set in other orders.
    """
    return max(model.min_frames, min(model.subset_frames, max(2, set_frames // 2)))


@torch.no_grad()
def infer_static(model: SequenceModel, x: Tensor, n_subsets: int = 8,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mean and scale of the static posterior of each set: (B, f_dim) each.

    For the DVAE, q(f | x_S) averaged over ``n_subsets`` random N-frame subsets when T > N
    (with T == N the set itself is the one subset); other families read the whole sequence.
    """
    return model.encode_static(x, generator, n_subsets)


@torch.no_grad()
def static_consistency(model: SequenceModel, x: Tensor, n_subsets: int = 8,
                       generator: torch.Generator | None = None) -> float:
    """Within-set over between-set variance of f's posterior mean (lower: f is more static).

    Within: variance across random subsets of one set, averaged over sets. Between: variance
    across sets of each set's average f. Both summed over f's dimensions.
    """
    codes, _ = subset_static(model, x, n_subsets, generator)
    within = codes.var(0).sum(-1).mean()
    between = codes.mean(0).var(0).sum()
    return float(within / between)


@torch.no_grad()
def infer_dynamic(model: SequenceModel, x: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and scale of every frame's dynamic posterior given f (B, f_dim): (B, T, z_dim) each."""
    return model.encode_dynamic(x, f)


@torch.no_grad()
def encode(model: SequenceModel, x: Tensor, generator: torch.Generator | None = None) -> Codes:
    """Posterior means: f (B, f_dim) and z (B, T, z_dim), each z_t inferred under its set's own f."""
    return model.encode(x, generator)


@torch.no_grad()
def decode(model: SequenceModel, f: Tensor, z: Tensor) -> Tensor:
    """Expected frames for f (B, f_dim) and z (B, T, z_dim): (B, T, C, S, S)."""
    return model.decode(f, z)


@torch.no_grad()
def reconstruct(model: SequenceModel, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Decode the posterior means of x: same shape as x."""
    return decode(model, *encode(model, x, generator))


@torch.no_grad()
def swap(model: SequenceModel, x_static: Tensor, x_dynamic: Tensor,
         generator: torch.Generator | None = None) -> Tensor:
    """Frames with the f of ``x_static`` and the z's of ``x_dynamic`` (pairwise by batch row)."""
    f_a = encode(model, x_static, generator).f
    return decode(model, *encode(model, x_dynamic, generator).with_static(f_a))


@torch.no_grad()
def swap_grid(model: SequenceModel, f: Tensor, z: Tensor) -> Tensor:
    """Decode every static code f (A, f_dim) with every dynamic code z (B, z_dim): (A, B, C, S, S)."""
    return decode(model, f, z.expand(f.shape[0], *z.shape))


@torch.no_grad()
def interpolate_static(model: SequenceModel, f_start: Tensor, f_end: Tensor, z: Tensor, steps: int = 8) -> Tensor:
    """Frames along the straight line from f_start to f_end (f_dim,) with z (T, z_dim) fixed.

    Returns (steps, T, C, S, S); the first and last steps decode f_start and f_end exactly.
    """
    weight = torch.linspace(0, 1, steps, device=f_start.device)[:, None]
    f = (1 - weight) * f_start + weight * f_end
    return decode(model, f, z.expand(steps, *z.shape))


@torch.no_grad()
def interpolate_dynamic(model: SequenceModel, f: Tensor, z_start: Tensor, z_end: Tensor, steps: int = 8) -> Tensor:
    """Frames along the straight line from z_start to z_end (z_dim,) for each static code f (K, f_dim).

    Returns (K, steps, C, S, S): row k decodes f[k] with every point of the line, so the rows
    should move alike while each keeps its identity.
    """
    weight = torch.linspace(0, 1, steps, device=z_start.device)[:, None]
    z = (1 - weight) * z_start + weight * z_end
    return decode(model, f, z.expand(f.shape[0], *z.shape))


def _guide_value(guide, site: str, x: Tensor) -> Tensor:
    return poutine.trace(guide).get_trace(x).nodes[site]["value"]


@torch.no_grad()
def posterior_draws(model: SequenceModel, x: Tensor, n_draws: int, generator: torch.Generator | None = None,
                    frames_per_pass: int = 4096) -> tuple[Tensor, Tensor]:
    """Independent draws from the guide: f ~ q(f | x), then z ~ q(z | f, x) for every frame.

    For the DVAE and T > N each draw compares a fresh random N-frame subset S of each set (subsets
    from ``generator``), so the spread of f includes its dependence on which frames were compared;
    for T == N the set itself is S, as in :func:`infer_static`; other families read the whole
    sequence. Values are the guide's own sample sites (``poutine.trace``), z drawn with f
    conditioned on the draw. Pyro samples from torch's global RNG.

    Returns f (n_draws, B, f_dim) and z (n_draws, B, T, z_dim).
    """
    model.require("guide")
    n_sets, n_frames = x.shape[:2]
    # Several draws per guide pass, bounded so that memory stays flat for long sequences.
    chunk = max(1, frames_per_pass // (n_sets * n_frames))
    f_draws, z_draws = [], []
    for start in range(0, n_draws, chunk):
        d = min(chunk, n_draws - start)
        repeated = x.expand(d, *x.shape)
        subsets = not model.ordered and n_frames != model.cfg.frames
        compared = random_subsets(x, model.cfg.frames, d, generator) if subsets else repeated
        f = _guide_value(model.guide, SITE_F, compared.flatten(0, 1))
        z = _guide_value(poutine.condition(model.guide, data={SITE_F: f}), SITE_Z, repeated.flatten(0, 1))
        f_draws.append(f.reshape(d, n_sets, -1))
        z_draws.append(z.reshape(d, n_sets, n_frames, -1))
    return torch.cat(f_draws), torch.cat(z_draws)


@torch.no_grad()
def sample_prior(model: SequenceModel, n_sets: int, n_frames: int) -> tuple[Tensor, Tensor, Tensor]:
    """f ~ p(f), then the dynamics of n_frames from the family's prior given f.

    Returns f (B, f_dim), z (B, T, z_dim), frames (B, T, C, S, S).
    """
    f = model.sample_static(n_sets)
    z = model.sample_dynamics(f, n_frames)
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


def figure_directions(z: Tensor) -> tuple[Tensor | None, tuple[str, ...]]:
    """Where figures look at codes z (..., z_dim): z's own axes (None) up to two dimensions, beyond
    that its two leading :func:`principal_directions`; with the names of the axes shown."""
    if z.shape[-1] > 2:
        return principal_directions(z), ("PC1 of z", "PC2 of z")
    return None, tuple(f"z{i + 1}" for i in range(z.shape[-1]))


def dynamics_draws(model: SequenceModel, f: Tensor, n_draws: int) -> Tensor:
    """``n_draws`` codes z_t from the family's prior given one f (f_dim,): (n_draws, z_dim).

    i.i.d. draws for the DVAE; for sequential priors, the frames of training-length sequences.
    """
    length = model.cfg.frames if model.ordered else n_draws
    z = model.sample_dynamics(f[None].expand(math.ceil(n_draws / length), -1), length)
    return z.reshape(-1, z.shape[-1])[:n_draws]


@torch.no_grad()
def prior_grid(model: SequenceModel, f: Tensor, steps: int = 9, coverage: float = 0.9,
               n_draws: int = 2000, directions: Tensor | None = None) -> Tensor:
    """A regular (steps x steps, z_dim) grid over p(z | f) along two directions in z space.

    The grid is centred at the per-dimension median of draws from p(z | f) (from
    :func:`dynamics_draws`, so any family's prior works) and spans the central
    ``coverage`` quantiles of the draws' coordinates along each direction, so it works for any
    prior, not only Gaussian ones; it varies along the directions only. ``directions`` (2, z_dim),
    orthonormal rows, default to the two leading z axes (one for z_dim == 1); for z_dim > 2 pass
    e.g. :func:`principal_directions` of posterior z's. Row index moves along the first direction,
    column index along the second. f: (f_dim,).
    """
    draws = dynamics_draws(model, f, n_draws)
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
def latent_manifold(model: SequenceModel, f: Tensor, steps: int = 9, directions: Tensor | None = None) -> Tensor:
    """Decode a grid over p(z | f) for each f (K, f_dim): (K, steps, steps, C, S, S) (paper Fig. 3).

    ``directions``: see :func:`prior_grid` (shared by all panels, so they are comparable).
    """
    panels = []
    for f_k in f:
        grid = prior_grid(model, f_k, steps, directions=directions)
        frames = decode(model, f_k[None], grid[None])[0]
        panels.append(frames.reshape(steps, steps, *frames.shape[1:]))
    return torch.stack(panels)
