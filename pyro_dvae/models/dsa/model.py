"""The Disentangled Sequential Autoencoder of Li & Mandt (2018) and its guide, side by side.

Generative story, for each of B sequences (plate "sequences") of T ordered frames:

    f            ~ p(f) = N(0, I)                      static code: identity, appearance
    z_1:T        ~ prod_t p(z_t | z_<t)                dynamic codes from an LSTM prior
    x_t          ~ p(x | f, z_t)   (plate "frames")    pixels, the DVAE's decoder and likelihoods

Guide ("factorised q", the default): q(f | x_1:T) from a bidirectional LSTM over the frames,
q(z_t | x_t) per frame. "full q" (``posterior = "full"``): q(z_1:T | f, x_1:T) from a
bidirectional LSTM over [x_t, f] and a forward RNN over its outputs.

What DSA adds to the DVAE is the learned sequential prior over dynamics, and with it the use of
temporal order: it trains on ordered windows, and its prior generates whole trajectories.
z_1:T is one sample site with event shape (T, z_dim) (see :class:`~.nets.SequentialPrior`), so
the sites "f", "z", "x" and plates "sequences", "frames" read as the DVAE's do.

Reference: Y. Li, S. Mandt. Disentangled Sequential Autoencoder. ICML 2018.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import Tensor

from ...nets import Emitter
from ...priors import make_f_prior
from ..base import (
    FRAMES_DIM,
    PLATE_FRAMES,
    PLATE_SETS,
    SETS_DIM,
    SITE_F,
    SITE_X,
    SITE_Z,
    Codes,
    PyroSequenceModel,
)
from .config import DSAConfig
from .nets import (
    DynamicsPrior,
    FactorisedDynamicEncoder,
    FrameEmbedding,
    FullDynamicEncoder,
    SequentialPrior,
    StaticEncoder,
)


class DSA(PyroSequenceModel):
    """Model p(f) p(z_1:T) p(x_1:T | f, z_1:T) and guide q(f | x_1:T) q(z | ...) with shared networks.

    ``model`` and ``guide`` take ``x`` of shape (B, T, C, S, S) in [0, 1], frames in temporal order.
    ``kl_scale`` multiplies the latent sites' log densities in both (KL warm-up).
    """

    family = "dsa"
    ordered = True
    dynamics_label = "z_1:T ~ p(z_t | z_<t) (LSTM prior)"

    def __init__(self, cfg: DSAConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.frame_embedding = FrameEmbedding(cfg)
        self.static_encoder = StaticEncoder(cfg)
        encoder = FullDynamicEncoder if cfg.posterior == "full" else FactorisedDynamicEncoder
        self.dynamic_encoder = encoder(cfg)
        self.dynamics = DynamicsPrior(cfg)
        self.emitter = Emitter(cfg)
        self.f_prior = make_f_prior(cfg)
        self._init_likelihood()

    # -- distributions -------------------------------------------------------------------
    def dynamics_dist(self, n_sequences: int, length: int) -> dist.Distribution:
        """p(z_1:T): batch (n_sequences, 1), event (T, z_dim)."""
        return SequentialPrior(self.dynamics, length, self.cfg.z_dim, (n_sequences, 1))

    # -- Pyro model and guide --------------------------------------------------------------
    def model(self, x: Tensor | None = None, *, shape: tuple[int, int] | None = None,
              kl_scale: float | Tensor = 1.0) -> Tensor:
        """The generative story; with ``x=None`` it samples sequences of ``shape`` = (B, T)."""
        n_seqs, length = x.shape[:2] if x is not None else shape
        with pyro.plate(PLATE_SETS, n_seqs, dim=SETS_DIM):
            with poutine.scale(scale=kl_scale):
                f = pyro.sample(SITE_F, self.f_prior((n_seqs, 1)))
                z = pyro.sample(SITE_Z, self.dynamics_dist(n_seqs, length))
            with pyro.plate(PLATE_FRAMES, length, dim=FRAMES_DIM):
                return pyro.sample(SITE_X, self.observation_dist(f, z.squeeze(-3)), obs=x)

    def guide(self, x: Tensor, *, shape: tuple[int, int] | None = None,
              kl_scale: float | Tensor = 1.0) -> tuple[Tensor, Tensor]:
        """q(f | x_1:T) from the bidirectional LSTM, then q(z_t | ...) for every frame."""
        e = self.frame_embedding(x)
        loc, scale = self.static_encoder(e)
        with pyro.plate(PLATE_SETS, x.shape[0], dim=SETS_DIM):
            with poutine.scale(scale=kl_scale):
                f = pyro.sample(SITE_F, dist.Normal(loc.unsqueeze(-2), scale.unsqueeze(-2)).to_event(1))
                z_loc, z_scale = self.dynamic_encoder(e, f.squeeze(-2))
                z = pyro.sample(SITE_Z, dist.Normal(z_loc.unsqueeze(-3), z_scale.unsqueeze(-3)).to_event(2))
        return f, z

    # -- the family's queries (pyro_dvae.models.base.SequenceModel) ------------------------
    @property
    def subset_frames(self) -> int:
        return max(2, self.cfg.frames // 2)

    def encode_static(self, x: Tensor, generator: torch.Generator | None = None,
                      n_subsets: int = 8) -> tuple[Tensor, Tensor]:
        """Mean and scale of q(f | x_1:T); the LSTM reads sequences of any length whole."""
        return self.static_encoder(self.frame_embedding(x))

    def encode_dynamic(self, x: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
        return self.dynamic_encoder(self.frame_embedding(x), f)

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Codes:
        e = self.frame_embedding(x)  # embedded once for both encoders
        f, _ = self.static_encoder(e)
        return Codes(f, self.dynamic_encoder(e, f)[0])

    def sample_dynamics(self, f: Tensor, n_frames: int) -> Tensor:
        """z_1:T unrolled from the LSTM prior (it does not read f: p(z) is independent of f)."""
        return self.dynamics.rollout(f.shape[0], n_frames)

    def predict_dynamics(self, z_context: Tensor, f: Tensor, horizon: int) -> Tensor:
        """The LSTM prior continued from the context's codes: a draw of z_K+1..z_K+H."""
        return self.dynamics.rollout(z_context.shape[0], horizon, prefix=z_context)

    def dynamics_prior(self, f: Tensor, z: Tensor) -> dist.Distribution:
        """p(z_t | z_<t) for every t, from the LSTM run over z: it changes when z_<t does."""
        loc, scale = self.dynamics.conditionals(z)
        return dist.Normal(loc, scale).to_event(1)
