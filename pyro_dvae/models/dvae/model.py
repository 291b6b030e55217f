"""The generative model of Helminger et al. (2018) and its pairwise guide, side by side.

Generative story, for each of B sets (plate "sequences") and each of its N frames (plate "frames"):

    f        ~ p(f)                       static code: identity, appearance
    z_t | f  ~ p(z | f)                   dynamic code: pose; i.i.d. over frames given f
    x_t      ~ p(x | f, z_t)              pixels (Bernoulli logits from the Emitter)

Guide: q(f | x_S) compares every pair of the N frames through one shared conv (so only what the
frames have in common reaches f); q(z_i | f, x_i) reads f and the features of frame i.
Order is never used: the N frames are a set.

Reference: L. Helminger, A. Djelouah, M. Gross, R. M. Weber. Disentangled Dynamic Representations
from Unordered Data. Symposium on Advances in Approximate Bayesian Inference, 2018.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import Tensor, nn

from ...nets import Emitter, FrameFeatures
from ...priors import make_f_prior, make_z_prior
from ..base import (
    FRAMES_DIM,
    PLATE_FRAMES,
    PLATE_SETS,
    SETS_DIM,
    SITE_F,
    SITE_X,
    SITE_Z,
    PyroSequenceModel,
    random_subsets,
)
from .config import DVAEConfig
from .nets import DynamicEncoder, StaticEncoder

__all__ = ["DVAE", "FRAMES_DIM", "PLATE_FRAMES", "PLATE_SETS", "SETS_DIM", "SITE_F", "SITE_X", "SITE_Z"]


class DVAE(PyroSequenceModel):
    """Model p(f) p(z|f) p(x|f,z) and guide q(f|x_S) q(z|f,x) with shared networks.

    ``model`` and ``guide`` take ``x`` of shape (B, N, C, S, S) with values in [0, 1].
    ``kl_scale`` multiplies the latent sites' log densities in both (KL warm-up).
    """

    family = "dvae"
    ordered = False
    dynamics_label = "z_t ~ p(z | f) i.i.d."

    def __init__(self, cfg: DVAEConfig, z_prior: nn.Module | None = None,
                 f_prior: nn.Module | None = None):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.frame_features = FrameFeatures(cfg)
        self.static_encoder = StaticEncoder(cfg)
        self.dynamic_encoder = DynamicEncoder(cfg)
        self.emitter = Emitter(cfg)
        self.z_prior = z_prior if z_prior is not None else make_z_prior(cfg)
        self.f_prior = f_prior if f_prior is not None else make_f_prior(cfg)
        self._init_likelihood()

    # -- distributions -------------------------------------------------------------------
    def static_posterior(self, x: Tensor) -> dist.Distribution:
        """q(f | x_S) for x of shape (B, N, C, S, S): batch (B, 1), event (f_dim,)."""
        loc, scale = self.static_encoder(self.frame_features(x))
        return dist.Normal(loc.unsqueeze(-2), scale.unsqueeze(-2)).to_event(1)

    def dynamic_posterior(self, f: Tensor, h: Tensor) -> dist.Distribution:
        """q(z | f, x) from f (..., 1, f_dim) and frame features h (..., N, W, 4, 4)."""
        loc, scale = self.dynamic_encoder(f, h)
        return dist.Normal(loc, scale).to_event(1)

    # -- Pyro model and guide --------------------------------------------------------------
    def model(self, x: Tensor | None = None, *, shape: tuple[int, int] | None = None,
              kl_scale: float | Tensor = 1.0) -> Tensor:
        """The generative story; with ``x=None`` it samples sets of ``shape`` = (B, N)."""
        n_sets, n_frames = x.shape[:2] if x is not None else shape
        with pyro.plate(PLATE_SETS, n_sets, dim=SETS_DIM):
            with poutine.scale(scale=kl_scale):
                f = pyro.sample(SITE_F, self.f_prior((n_sets, 1)))
            with pyro.plate(PLATE_FRAMES, n_frames, dim=FRAMES_DIM):
                with poutine.scale(scale=kl_scale):
                    z = pyro.sample(SITE_Z, self.z_prior(f))
                return pyro.sample(SITE_X, self.observation_dist(f, z), obs=x)

    def guide(self, x: Tensor, *, shape: tuple[int, int] | None = None,
              kl_scale: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
        """q(f | x_S) from pairwise comparisons, then q(z_i | f, x_i) for every frame."""
        h = self.frame_features(x)
        loc, scale = self.static_encoder(h)
        with pyro.plate(PLATE_SETS, x.shape[0], dim=SETS_DIM):
            with poutine.scale(scale=kl_scale):
                f = pyro.sample(SITE_F, dist.Normal(loc.unsqueeze(-2), scale.unsqueeze(-2))
                                .to_event(1))
            with pyro.plate(PLATE_FRAMES, x.shape[1], dim=FRAMES_DIM):
                with poutine.scale(scale=kl_scale):
                    z = pyro.sample(SITE_Z, self.dynamic_posterior(f, h))
        return f, z

    # -- the family's queries (pyro_dvae.models.base.SequenceModel) ------------------------
    @property
    def min_frames(self) -> int:
        return self.cfg.frames

    @property
    def subset_frames(self) -> int:
        return self.cfg.frames

    def encode_static(self, x: Tensor, generator: torch.Generator | None = None,
                      n_subsets: int = 8) -> tuple[Tensor, Tensor]:
        """Mean and scale of q(f | x_S); for T > N averaged over ``n_subsets`` random N-frame subsets."""
        if x.shape[1] == self.cfg.frames:
            posterior = self.static_posterior(x)
            return posterior.mean.squeeze(-2), posterior.stddev.squeeze(-2)
        loc, scale = self.static_subsets(x, self.cfg.frames, n_subsets, generator)
        return loc.mean(0), scale.mean(0)

    def static_subsets(self, x: Tensor, n_frames: int, n_subsets: int,
                       generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """q(f | x_S) for random N-frame subsets S: each frame's features are computed once and
        shared by every subset that holds it (the pairwise encoder reads features, not pixels)."""
        if n_frames != self.cfg.frames:
            return super().static_subsets(x, n_frames, n_subsets, generator)
        h = random_subsets(self.frame_features(x), n_frames, n_subsets, generator)
        loc, scale = self.static_encoder(h.flatten(0, 1))
        shape = (n_subsets, x.shape[0], -1)
        return loc.reshape(shape), scale.reshape(shape)

    def encode_dynamic(self, x: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
        posterior = self.dynamic_posterior(f.unsqueeze(-2), self.frame_features(x))
        return posterior.mean, posterior.stddev

    def sample_dynamics(self, f: Tensor, n_frames: int) -> Tensor:
        """z_t ~ p(z | f), i.i.d. over t."""
        return self.z_prior(f.unsqueeze(-2)).sample((n_frames,)).squeeze(-2).transpose(0, 1)

    def dynamics_prior(self, f: Tensor, z: Tensor) -> dist.Distribution:
        """p(z | f) for every frame: the same at each t, whatever z_<t is."""
        return self.z_prior(f.unsqueeze(-2)).expand(z.shape[:-1])

    def elbo_frames(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A random N-frame subset of each sequence (the guide compares exactly N frames)."""
        if x.shape[1] == self.cfg.frames:
            return x
        return random_subsets(x, self.cfg.frames, 1, generator)[0]
