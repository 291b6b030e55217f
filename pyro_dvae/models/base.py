"""What every model family answers: the seam between a method and the rest of the package.

Posterior queries, inspection, sampling, evaluation and the ArviZ export talk to a model only
through :class:`SequenceModel`. Frames are ``(B, T, C, S, S)`` in [0, 1]; codes are a static
``f`` ``(B, f_dim)`` per sequence and a dynamic ``z`` ``(B, T, z_dim)`` per frame. Queries a
family cannot answer (DrNet has no prior to sample from) raise :class:`CapabilityError`, a
one-line message the CLI prints as it is; :meth:`SequenceModel.can` asks beforehand.

Pyro families (:class:`PyroSequenceModel`) also have ``model`` and ``guide`` with the sample sites
and plates named here, so that traces, ``Predictive`` and the ELBO read the same way for each.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import pyro.distributions as dist
import torch
from torch import Tensor, nn

from ..elbo import elbo_loss
from ..errors import PyroDVAEError
from ..priors import TwoStagePrior

# Sample-site and plate names shared by the Pyro families: inspection, evaluation, the ArviZ
# export and tests refer to these.
SITE_F, SITE_Z, SITE_X = "f", "z", "x"
PLATE_SETS, PLATE_FRAMES = "sequences", "frames"
SETS_DIM, FRAMES_DIM = -2, -1  # f has batch shape (B, 1); x has (B, T)

#: Queries a family may leave out (:meth:`SequenceModel.can` answers for these names), and what
#: a family without one cannot do.
OPTIONAL = {
    "sample_static": "draw static codes from a prior",
    "sample_dynamics": "draw dynamics from a prior",
    "dynamics_prior": "give a prior over its dynamic codes",
    "elbo_loss": "compute an ELBO",
    "guide": "draw from a posterior guide",
    "predict_dynamics": "predict future dynamics by itself (train a latent predictor: `pyro-dvae train-predictor RUN`)",
}


class CapabilityError(PyroDVAEError):
    """A model family was asked for something it cannot do (one line: what, and why)."""


class Codes(NamedTuple):
    """Posterior means of a batch of sequences: static ``f`` (B, f_dim) and dynamic ``z`` (B, T, z_dim).

    A tuple, so ``f, z = encode(...)`` and ``decode(model, *codes)`` work.
    """

    f: Tensor
    z: Tensor

    def with_static(self, f: Tensor) -> Codes:
        """The same dynamics under another static code: a swap of identity, z unchanged."""
        return Codes(f, self.z)


class SequenceModel(nn.Module):
    """The queries every family answers (required) or may answer (:data:`OPTIONAL`).

    Subclasses set ``family`` (the registered name), ``ordered`` (whether frame order is read)
    and ``cfg``; they implement :meth:`encode_static`, :meth:`encode_dynamic` and :meth:`decode`,
    and override whichever optional queries they support.
    """

    family: ClassVar[str] = "?"
    ordered: ClassVar[bool] = False
    #: Why the optional queries a family leaves out are missing (shown in the one-line error).
    missing_reason: ClassVar[str] = ""
    #: How the family's prior draws the dynamic codes of a sequence (figure captions).
    dynamics_label: ClassVar[str] = "z_t from the prior"
    cfg: object

    # -- required -----------------------------------------------------------------------------
    def encode_static(self, x: Tensor, generator: torch.Generator | None = None,
                      n_subsets: int = 8) -> tuple[Tensor, Tensor]:
        """Posterior mean and scale of the static code of each sequence: (B, f_dim) each.

        ``n_subsets``: families whose static encoder reads a fixed number of frames average over
        this many random subsets of a longer sequence (drawn with ``generator``).
        """
        raise NotImplementedError

    def encode_dynamic(self, x: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and scale of every frame's dynamic code given f (B, f_dim): (B, T, z_dim)."""
        raise NotImplementedError

    def decode(self, f: Tensor, z: Tensor) -> Tensor:
        """Expected frames for f (B, f_dim) and z (B, T, z_dim): (B, T, C, S, S) in [0, 1]."""
        raise NotImplementedError

    @property
    def min_frames(self) -> int:
        """The fewest frames a sequence must have for :meth:`encode`."""
        return 1

    @property
    def subset_frames(self) -> int:
        """Frames per random subset when measuring how much f depends on which frames are seen."""
        return max(2, self.cfg.frames // 2)

    # -- derived ------------------------------------------------------------------------------
    def static_subsets(self, x: Tensor, n_frames: int, n_subsets: int,
                       generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Static posterior mean and scale for ``n_subsets`` random ``n_frames``-frame subsets of each
        sequence (kept in order for families that read order): (n_subsets, B, f_dim) each."""
        subsets = random_subsets(x, n_frames, n_subsets, generator, ordered=self.ordered)
        loc, scale = self.encode_static(subsets.flatten(0, 1), generator)
        shape = (n_subsets, x.shape[0], -1)
        return loc.reshape(shape), scale.reshape(shape)

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Codes:
        """Posterior means: f (B, f_dim) and z (B, T, z_dim), each z_t inferred under its sequence's f."""
        f, _ = self.encode_static(x, generator)
        z, _ = self.encode_dynamic(x, f)
        return Codes(f, z)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- optional -----------------------------------------------------------------------------
    def sample_static(self, n: int) -> Tensor:
        """f ~ p(f): (n, f_dim) on the model's device."""
        raise self._cannot("sample_static")

    def sample_dynamics(self, f: Tensor, n_frames: int) -> Tensor:
        """Dynamic codes of ``n_frames`` frames from the prior given f (B, f_dim): (B, T, z_dim)."""
        raise self._cannot("sample_dynamics")

    def predict_dynamics(self, z_context: Tensor, f: Tensor, horizon: int) -> Tensor:
        """Dynamic codes of the ``horizon`` frames after a context's codes z_context (B, K, z_dim):
        (B, horizon, z_dim), one draw (families whose prior models time: DSA)."""
        raise self._cannot("predict_dynamics")

    def dynamics_prior(self, f: Tensor, z: Tensor) -> dist.Distribution:
        """p(z_t | f, z_<t) for every t of z (B, T, z_dim): batch (B, T), event (z_dim,)."""
        raise self._cannot("dynamics_prior")

    def elbo_loss(self, x: Tensor, kl_scale: float | Tensor = 1.0, analytic_kl: bool = False,
                  f_kl_weight: float = 1.0, z_kl_weight: float = 1.0) -> Tensor:
        """Negative ELBO of sequences x, summed over the batch (a one-sample estimate).

        ``kl_scale`` weighs every latent's KL term (warm-up), ``f_kl_weight`` the static code's and
        ``z_kl_weight`` the dynamic codes' on top of it (beta_f, beta_z; 1, the default, is the ELBO).
        """
        raise self._cannot("elbo_loss")

    def guide(self, x: Tensor, **kwargs):
        """The Pyro guide q(f, z | x) (Pyro families): sample sites "f" and "z"."""
        raise self._cannot("guide")

    def elbo_frames(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The frames of x that the ELBO reads: what the family trains on (default: all of x)."""
        return x

    def fit_after_training(self, data, n_frames: int, seed: int, batch_size: int) -> list[str]:
        """Fit what is fitted to the trained model (two-stage priors) from training frame sets
        ``data``, drawn ``n_frames`` at a time; the trainer calls this once when training ends.
        Returns one line per fit for the log (default: nothing is fitted)."""
        return []

    def can(self, query: str) -> bool:
        """Whether this family answers the optional ``query`` (a name in :data:`OPTIONAL`)."""
        if query not in OPTIONAL:
            raise ValueError(f"{query!r} is not an optional query; use one of {', '.join(OPTIONAL)}")
        return getattr(type(self), query) is not getattr(SequenceModel, query)

    def require(self, *queries: str) -> None:
        """Raise the one-line :class:`CapabilityError` for the first query this family cannot answer."""
        for query in queries:
            if not self.can(query):
                raise self._cannot(query)

    def _cannot(self, query: str) -> CapabilityError:
        reason = f" ({self.missing_reason})" if self.missing_reason else ""
        return CapabilityError(f"a {self.family} model cannot {OPTIONAL[query]}{reason}; "
                               f"use a run of a family that can (e.g. --model dvae)")


class PyroSequenceModel(SequenceModel):
    """A family written as a Pyro ``model`` and ``guide`` over the shared sites and plates.

    Provides the pixel likelihood p(x | f, z_t) named by ``cfg.likelihood`` on top of the
    subclass's ``emitter`` (logits), the ELBO, and prior sampling from ``f_prior``.
    """

    emitter: nn.Module
    f_prior: nn.Module
    #: The priors that may be two-stage, with the offset of their fit's seed from the run's seed.
    fitted_prior_seeds: ClassVar[tuple[tuple[str, int], ...]] = (("f_prior", 4), ("z_prior", 5))

    def fit_after_training(self, data, n_frames: int, seed: int, batch_size: int) -> list[str]:
        lines = []
        for name, offset in self.fitted_prior_seeds:
            prior = getattr(self, name, None)  # a family may model z_t | z_<t with a network of its own
            if isinstance(prior, TwoStagePrior):
                lines.append(prior.fit_after_training(self, data, n_frames, seed + offset, batch_size))
        return lines

    def _init_likelihood(self) -> None:
        if self.cfg.likelihood in ("gaussian", "gaussian-linear") and not self.cfg.pixel_scale:
            # One learned pixel noise scale (log), shared by all pixels.
            self.log_pixel_scale = nn.Parameter(torch.tensor(-2.0))

    def observation_dist(self, f: Tensor, z: Tensor) -> dist.Distribution:
        """p(x | f, z) with event shape (C, S, S); f broadcasts against z's leading dims."""
        logits = self.emitter(f, z)
        kind = self.cfg.likelihood
        if kind == "bernoulli":
            # Targets are grey levels in [0, 1], outside Bernoulli's support {0, 1}; the paper's
            # cross-entropy likelihood needs support validation off here (as in Pyro's VAE example).
            d = dist.Bernoulli(logits=logits, validate_args=False)
        elif kind == "continuous-bernoulli":
            d = dist.ContinuousBernoulli(logits=logits)
        else:
            scale = self.cfg.pixel_scale or self.log_pixel_scale.exp()
            d = dist.Normal(self._gaussian_mean(logits), scale)
        return d.to_event(3)

    def _gaussian_mean(self, out: Tensor) -> Tensor:
        # "gaussian": a sigmoid keeps the mean in [0, 1], but its gradient vanishes where it
        # saturates (an all-black start can stay black); "gaussian-linear": the output itself,
        # shifted to start grey, whose gradient never vanishes (reconstructions are clipped).
        return out + 0.5 if self.cfg.likelihood == "gaussian-linear" else torch.sigmoid(out)

    def pixel_mean(self, f: Tensor, z: Tensor) -> Tensor:
        """Expected image E[x | f, z] in [0, 1]: what reconstructions and samples show."""
        if self.cfg.likelihood == "continuous-bernoulli":
            return self.observation_dist(f, z).mean
        if self.cfg.likelihood == "gaussian-linear":
            return self._gaussian_mean(self.emitter(f, z)).clamp(0, 1)
        return torch.sigmoid(self.emitter(f, z))

    def decode(self, f: Tensor, z: Tensor) -> Tensor:
        return self.pixel_mean(f.unsqueeze(-2), z)

    def sample_static(self, n: int) -> Tensor:
        return self.f_prior((n,)).sample().to(self.device)

    def elbo_loss(self, x: Tensor, kl_scale: float | Tensor = 1.0, analytic_kl: bool = False,
                  f_kl_weight: float = 1.0, z_kl_weight: float = 1.0) -> Tensor:
        weights = {site: w for site, w in ((SITE_F, f_kl_weight), (SITE_Z, z_kl_weight)) if w != 1} or None
        return elbo_loss(self.model, self.guide, x, analytic_kl=analytic_kl, site_weights=weights,
                         kl_scale=kl_scale)

    def model(self, x: Tensor | None = None, **kwargs):  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def guide(self, x: Tensor, **kwargs):  # pragma: no cover - subclasses define it
        raise NotImplementedError


def random_subsets(x: Tensor, n: int, n_subsets: int, generator: torch.Generator | None = None,
                   ordered: bool = False) -> Tensor:
    """``n_subsets`` random n-frame subsets of each sequence of x (B, T, ...): (K, B, n, ...).

    Frames of a subset are distinct; ``ordered`` keeps them in their order in x (for families
    that read order), otherwise their order is random too.
    """
    if x.shape[1] < n:
        raise ValueError(f"sets have {x.shape[1]} frames; the model compares N={n}")
    idx = torch.rand(n_subsets, *x.shape[:2], generator=generator, device=x.device).argsort(-1)[..., :n]
    if ordered:
        idx = idx.sort(-1).values
    idx = idx.reshape(*idx.shape, *([1] * (x.dim() - 2))).expand(-1, -1, -1, *x.shape[2:])
    return torch.gather(x.expand(n_subsets, *x.shape), 2, idx)
