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

from .config import ModelConfig
from .nets import DynamicEncoder, Emitter, FrameFeatures, StaticEncoder
from .priors import make_f_prior, make_z_prior

# Sample-site and plate names, in one place: inspection, evaluation and tests refer to these.
SITE_F, SITE_Z, SITE_X = "f", "z", "x"
PLATE_SETS, PLATE_FRAMES = "sequences", "frames"
SETS_DIM, FRAMES_DIM = -2, -1  # f has batch shape (B, 1); z and x have (B, N)


class DVAE(nn.Module):
    """Model p(f) p(z|f) p(x|f,z) and guide q(f|x_S) q(z|f,x) with shared networks.

    ``model`` and ``guide`` take ``x`` of shape (B, N, C, S, S) with values in [0, 1].
    ``kl_scale`` multiplies the latent sites' log densities in both (KL warm-up).
    """

    def __init__(self, cfg: ModelConfig, z_prior: nn.Module | None = None,
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
        if cfg.likelihood == "gaussian":
            # One learned pixel noise scale (log), shared by all pixels.
            self.log_pixel_scale = nn.Parameter(torch.tensor(-2.0))

    # -- distributions -------------------------------------------------------------------
    def observation_dist(self, f: Tensor, z: Tensor) -> dist.Distribution:
        """p(x | f, z) with event shape (C, S, S)."""
        logits = self.emitter(f, z)
        kind = self.cfg.likelihood
        if kind == "bernoulli":
            # Targets are grey levels in [0, 1], outside Bernoulli's support {0, 1}; the paper's
            # cross-entropy likelihood needs support validation off here (as in Pyro's VAE example).
            d = dist.Bernoulli(logits=logits, validate_args=False)
        elif kind == "continuous-bernoulli":
            d = dist.ContinuousBernoulli(logits=logits)
        else:
            d = dist.Normal(torch.sigmoid(logits), self.log_pixel_scale.exp())
        return d.to_event(3)

    def pixel_mean(self, f: Tensor, z: Tensor) -> Tensor:
        """Expected image E[x | f, z] in [0, 1]: what reconstructions and samples show."""
        if self.cfg.likelihood == "continuous-bernoulli":
            return self.observation_dist(f, z).mean
        return torch.sigmoid(self.emitter(f, z))

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
