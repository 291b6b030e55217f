"""Priors p(z | f) and p(f): the extension point of the model.

A prior is a small ``nn.Module`` registered under a name; the model looks it up by the name in
its config (``z_prior`` / ``f_prior``), so a new prior needs no change to the guide, the
trainer or the CLI, and checkpoints that name it load wherever it is registered. The built-in
priors are found as a plugin's would be: through the ``pyro_dvae.z_priors`` and
``pyro_dvae.f_priors`` entry points that pyproject.toml declares (:mod:`pyro_dvae.registry`).

Interfaces
----------
z prior : ``forward(f) -> Distribution`` over z with ``event_dim == 1``, event shape ``(z_dim,)``
    and batch shape ``f.shape[:-1]`` (the model broadcasts it over the frames of a set).
f prior : ``forward(batch_shape) -> Distribution`` over f with event shape ``(f_dim,)`` and the
    given batch shape.

The scale of z is not anchored: the learned p(z | f) lets the codes drift to whatever range
suits the decoder (tens of units is common). Parameterise a new prior relative to quantities that
move with f (a centre and a spread computed from f), not at absolute positions, or it is left
behind during training.

Example
-------
>>> @register_z_prior("my-prior")
... class MyPrior(nn.Module):
...     def __init__(self, cfg):
...         super().__init__()
...         self.net = nn.Linear(cfg.f_dim, 2 * cfg.z_dim)
...     def forward(self, f):
...         loc, scale = gaussian_params(self.net(f))
...         return dist.Normal(loc, scale).to_event(1)
"""

from __future__ import annotations

from collections.abc import Callable

import pyro.distributions as dist
import torch
from torch import nn

from .config import ModelConfig
from .errors import UserInputError
from .nets import gaussian_params, mlp
from .registry import F_PRIORS, Z_PRIORS

PriorFactory = Callable[[ModelConfig], nn.Module]


def register_z_prior(name: str):
    """Decorator registering a p(z | f) factory ``cfg -> nn.Module`` under ``name``."""
    return Z_PRIORS.decorator(name)


def register_f_prior(name: str):
    """Decorator registering a p(f) factory ``cfg -> nn.Module`` under ``name``."""
    return F_PRIORS.decorator(name)


def make_z_prior(cfg: ModelConfig) -> nn.Module:
    return Z_PRIORS.get(cfg.z_prior)(cfg)


def make_f_prior(cfg: ModelConfig) -> nn.Module:
    return F_PRIORS.get(cfg.f_prior)(cfg)


def z_prior_names() -> list[str]:
    return Z_PRIORS.names()


def f_prior_names() -> list[str]:
    return F_PRIORS.names()


class TwoStagePrior(nn.Module):
    """A prior that trains as a simple one and is fitted to the trained model's posteriors after
    training (the model's :meth:`~pyro_dvae.models.base.SequenceModel.fit_after_training` calls
    :meth:`fit_after_training`). Each draws its posteriors with a generator of its own seeded with
    ``seed``, so the fit depends only on the final model: a resumed run fits as an uninterrupted one.
    """

    def fit_after_training(self, model, data, n_frames: int, seed: int, batch_size: int) -> str:
        """Fit to the posteriors of ``model`` on training frame sets ``data`` (drawn ``n_frames`` at a
        time, as the model trains on them); returns one line saying what was fitted."""
        raise NotImplementedError


def _training_examples(model, data, n_frames: int, count: int, rng: torch.Generator, batch_size: int,
                       pool: torch.Tensor | None = None):
    """Batches of ``count`` training examples in all (sets drawn from ``pool``, default all), each
    ``n_frames`` frames as the model trains on them: yields frames (b, n_frames, C, S, S)."""
    for start in range(0, count, batch_size):
        size = min(batch_size, count - start)
        if pool is None:
            chosen = torch.randint(len(data), (size,), generator=rng, device=data.device)
        else:
            chosen = pool[torch.randint(len(pool), (size,), generator=rng, device=pool.device)]
        pick = data.window_frame_indices if model.ordered else data.sample_frame_indices
        yield data.frames(chosen[:, None], pick(chosen, n_frames, rng))


def _draw_static(model, x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """f ~ q(f | x) for each example of x."""
    loc, scale = model.encode_static(x, rng)
    return loc + scale * torch.randn(loc.shape, generator=rng, device=loc.device)


class ConditionalGaussianPrior(nn.Module):
    """The paper's p(z | f) = N(h_mu(f), diag h_sigma2(f)): dynamics that depend on identity."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = mlp([cfg.f_dim, cfg.hidden, cfg.hidden, 2 * cfg.z_dim])

    def forward(self, f: torch.Tensor) -> dist.Distribution:
        loc, scale = gaussian_params(self.net(f))
        return dist.Normal(loc, scale).to_event(1)


class FittedAggregateZPrior(ConditionalGaussianPrior, TwoStagePrior):
    """Two-stage p(z | f): the paper's conditional Gaussian while training, then the aggregate posterior.

    Training is the paper's (the same network under the same names, so a run trains bitwise as
    one with ``conditional-gaussian``). When training ends the trainer calls :meth:`fit` with the
    dynamic posteriors q(z | f, x_t) of ``exemplars`` training frames, and from then on, outside
    training mode, p(z | f) is their equally weighted mixture: the aggregate posterior, the prior
    that maximises the ELBO given the guide (Hoffman & Johnson 2016; a VampPrior whose pseudo-inputs
    are real frames, Tomczak & Welling 2018). The poses of a data set lie on thin curves in z; one
    Gaussian per f puts much of its mass between them, where the decoder blends poses and a small
    region like the skin takes the colour of its neighbours (docs/ablation.md measures it). The
    mixture does not depend on f: the poses of a data set are shared by its identities.
    """

    def __init__(self, cfg: ModelConfig, exemplars: int = 4096):
        super().__init__(cfg)
        self.register_buffer("exemplar_loc", torch.zeros(exemplars, cfg.z_dim))
        self.register_buffer("exemplar_scale", torch.ones(exemplars, cfg.z_dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.is_fitted = False  # a Python copy of the buffer: reading a GPU buffer would sync
        self.register_load_state_dict_post_hook(lambda module, _: setattr(module, "is_fitted", bool(module.fitted)))

    @property
    def exemplars(self) -> int:
        return len(self.exemplar_loc)

    def forward(self, f: torch.Tensor) -> dist.Distribution:
        if not self.is_fitted or self.training:
            return super().forward(f)
        batch = f.shape[:-1]
        weights = dist.Categorical(logits=self.exemplar_loc.new_zeros(self.exemplars).expand(*batch, -1))
        components = dist.Normal(self.exemplar_loc.expand(*batch, -1, -1),
                                 self.exemplar_scale.expand(*batch, -1, -1)).to_event(1)
        return dist.MixtureSameFamily(weights, components)

    @torch.no_grad()
    def fit(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        """Keep the posteriors N(loc, scale) of ``exemplars`` frames (rows of (n, z_dim), n >= exemplars)."""
        if len(loc) < self.exemplars:
            raise ValueError(f"fit needs {self.exemplars} posteriors, got {len(loc)}")
        self.exemplar_loc.copy_(loc[: self.exemplars])
        self.exemplar_scale.copy_(scale[: self.exemplars])
        self.fitted.fill_(True)
        self.is_fitted = True

    @torch.no_grad()
    def fit_after_training(self, model, data, n_frames: int, seed: int, batch_size: int) -> str:
        """Keep q(z | f, x_t) of ``exemplars`` training frames, each example's f drawn from q(f | x_S)."""
        rng = torch.Generator(model.device).manual_seed(seed)
        locs, scales = [], []
        sets = -(-self.exemplars // n_frames)  # rounded up
        for x in _training_examples(model, data, n_frames, sets, rng, batch_size):
            z_loc, z_scale = model.encode_dynamic(x, _draw_static(model, x, rng))
            locs.append(z_loc.flatten(0, 1))
            scales.append(z_scale.flatten(0, 1))
        self.fit(torch.cat(locs), torch.cat(scales))
        return f"p(z | f) is now the aggregate posterior of {self.exemplars} training frames"


class StandardNormalZPrior(nn.Module):
    """p(z | f) = N(0, I): dynamics independent of identity (an ablation of the paper's prior)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.register_buffer("loc", torch.zeros(cfg.z_dim), persistent=False)

    def forward(self, f: torch.Tensor) -> dist.Distribution:
        loc = self.loc.expand(*f.shape[:-1], -1)
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)


class StandardNormalFPrior(nn.Module):
    """The paper's p(f) = N(0, I)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.register_buffer("loc", torch.zeros(cfg.f_dim), persistent=False)

    def forward(self, batch_shape: torch.Size | tuple[int, ...]) -> dist.Distribution:
        loc = self.loc.expand(*batch_shape, -1)
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)


class FlowFPrior(nn.Module):
    """A learned p(f): N(0, I) pushed through affine coupling layers (RealNVP), trained with the ELBO.

    The KL term then pulls p(f) towards the aggregate posterior of f instead of forcing every
    posterior towards N(0, I), so codes drawn from p(f) land where the decoder has seen real
    identities (fewer "holes" when f is resampled). Coupling layers are fast in both directions:
    scoring a guide's f (the ELBO) and sampling (generation) each take one pass. The halves that
    each layer transforms alternate (a fixed reversal between layers).
    """

    def __init__(self, cfg: ModelConfig, layers: int = 4):
        super().__init__()
        from pyro.distributions.transforms import affine_coupling

        if cfg.f_dim < 2:
            raise UserInputError("the flow prior on f needs f_dim >= 2; use --f-dim 2 or more")
        self.couplings = nn.ModuleList(affine_coupling(cfg.f_dim, hidden_dims=[cfg.hidden]) for _ in range(layers))
        self.register_buffer("loc", torch.zeros(cfg.f_dim), persistent=False)
        self.register_buffer("reverse", torch.arange(cfg.f_dim - 1, -1, -1), persistent=False)

    def forward(self, batch_shape: torch.Size | tuple[int, ...]) -> dist.Distribution:
        from pyro.distributions.transforms import Permute

        loc = self.loc.expand(*batch_shape, -1)
        transforms = []
        for i, coupling in enumerate(self.couplings):
            if i:
                transforms.append(Permute(self.reverse))
            transforms.append(coupling)
        return dist.TransformedDistribution(dist.Normal(loc, torch.ones_like(loc)).to_event(1), transforms)


class FittedFlowFPrior(TwoStagePrior):
    """Two-stage p(f): N(0, I) while the model trains, then a flow fitted to the posterior codes.

    Training keeps the paper's prior, so it keeps the paper's training dynamics (a flow trained
    jointly with the ELBO can leave f unused for thousands of steps). When training ends the
    trainer calls :meth:`fit` with posterior draws f ~ q(f | x) of training sets, and a RealNVP
    flow (:class:`FlowFPrior`) is fitted to them by maximum likelihood; from then on, outside
    training mode, p(f) is that flow, so codes drawn from it land where the decoder has seen real
    identities instead of in the "holes" of N(0, I) (the two-stage VAE of Dai & Wipf 2019; ex-post
    density estimation, Ghosh et al. 2020). In training mode p(f) stays N(0, I), so a resumed run
    trains exactly as an uninterrupted one; the fit depends only on the final model and a fixed seed.
    """

    def __init__(self, cfg: ModelConfig, fit_steps: int = 1500, batch_size: int = 256, lr: float = 1e-3):
        super().__init__()
        self.cfg, self.standard = cfg, StandardNormalFPrior(cfg)
        # Drawn from a forked random stream, so that the networks built after it start as they do
        # with N(0, I): a run with this prior trains bitwise like one with the paper's.
        with torch.random.fork_rng(devices=[]):
            self.flow = FlowFPrior(cfg).requires_grad_(False)  # never trained by the ELBO
        self.fit_steps, self.batch_size, self.lr = fit_steps, batch_size, lr
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.is_fitted = False  # a Python copy of the buffer: reading a GPU buffer would sync
        self.register_load_state_dict_post_hook(lambda module, _: setattr(module, "is_fitted", bool(module.fitted)))

    def forward(self, batch_shape: torch.Size | tuple[int, ...]) -> dist.Distribution:
        return self.flow(batch_shape) if self.is_fitted and not self.training else self.standard(batch_shape)

    def fit(self, f: torch.Tensor, seed: int, held_out: torch.Tensor | None = None) -> float:
        """Fit the flow afresh (from weights drawn with ``seed``) to posterior draws ``f`` (n, f_dim);
        returns the mean log-density of ``held_out`` (or of ``f``) under it.

        With ``held_out`` (codes of sets the fit does not see), the weights kept are those at the
        step where the held-out codes scored best: the codes of training sets bunch around their
        identities, and a flow fitted until the end learns those bunches and gives new identities
        a density far below N(0, I)'s (held-out ELBO -2000 against -420 nats per frame, measured).
        Starting afresh makes the fit depend on its inputs and ``seed`` only, not on an earlier fit.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.flow.load_state_dict(FlowFPrior(self.cfg).state_dict())
        generator = torch.Generator(f.device).manual_seed(seed)
        target = held_out if held_out is not None else f
        score = self._mean_log_density(target)
        best = (score, {k: v.clone() for k, v in self.flow.state_dict().items()})
        self.flow.requires_grad_(True)
        optimizer = torch.optim.Adam(self.flow.parameters(), lr=self.lr)
        for step in range(1, self.fit_steps + 1):
            rows = torch.randint(len(f), (self.batch_size,), generator=generator, device=f.device)
            with torch.enable_grad():
                loss = -self.flow((self.batch_size,)).log_prob(f[rows]).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
            optimizer.step()
            if held_out is not None and (step % 50 == 0 or step == self.fit_steps):
                score = self._mean_log_density(held_out)
                if score > best[0]:
                    best = (score, {k: v.clone() for k, v in self.flow.state_dict().items()})
        self.flow.requires_grad_(False)
        if held_out is not None:
            self.flow.load_state_dict(best[1])
        self.fitted.fill_(True)
        self.is_fitted = True
        return self._mean_log_density(target)

    @torch.no_grad()
    def fit_after_training(self, model, data, n_frames: int, seed: int, batch_size: int,
                           sets: int = 8192) -> str:
        """Fit the flow to f ~ q(f | x_S) of ``sets`` training examples; every tenth set of ``data``
        is held out of the fit to choose when to stop it (see :meth:`fit`)."""
        rng = torch.Generator(model.device).manual_seed(seed)
        every = torch.arange(len(data), device=data.device)
        held_out_sets = every[every % 10 == 0] if len(data) >= 10 else every[:0]
        fit_sets = every[every % 10 != 0] if len(held_out_sets) else every

        def codes(pool: torch.Tensor, count: int) -> torch.Tensor:
            return torch.cat([_draw_static(model, x, rng)
                              for x in _training_examples(model, data, n_frames, count, rng, batch_size, pool)])

        held_out = codes(held_out_sets, sets // 8) if len(held_out_sets) else None
        score = self.fit(codes(fit_sets, sets), seed, held_out)
        return f"fitted p(f) to the posterior codes of {sets} training examples (mean log-density of " \
               f"held-out codes {score:.1f})"

    @torch.no_grad()
    def _mean_log_density(self, f: torch.Tensor) -> float:
        return float(self.flow((len(f),)).log_prob(f).mean())
