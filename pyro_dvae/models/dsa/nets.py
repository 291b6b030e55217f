"""Networks of DSA (Li & Mandt 2018): recurrent encoders and the LSTM prior over z_1:T.

Frames are embedded one by one (the shared conv stack, then a dense layer); the recurrences run
over those embeddings. Shapes: embeddings (B, T, hidden), codes (B, T, z_dim) and (B, f_dim).
"""

from __future__ import annotations

import torch
from pyro.distributions import Normal, TorchDistribution, constraints
from torch import Tensor, nn

from ...nets import FEATURE_SIDE, FrameFeatures, gaussian_params, mlp
from .config import DSAConfig


class FrameEmbedding(nn.Module):
    """x_t -> e_t: the shared frame convs, flattened and mapped to ``hidden`` features."""

    def __init__(self, cfg: DSAConfig):
        super().__init__()
        self.features = FrameFeatures(cfg)
        self.dense = nn.Sequential(nn.Linear(cfg.conv_width * FEATURE_SIDE**2, cfg.hidden), nn.LeakyReLU(0.2))

    def forward(self, x: Tensor) -> Tensor:
        return self.dense(self.features(x).flatten(-3))


class StaticEncoder(nn.Module):
    """Parameterises q(f | x_1:T): a bidirectional LSTM over the frame embeddings.

    The last forward state and the first backward state summarise the whole sequence in both
    directions; a dense layer maps them to the mean and scale of f.
    """

    def __init__(self, cfg: DSAConfig):
        super().__init__()
        self.lstm = nn.LSTM(cfg.hidden, cfg.rnn_hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * cfg.rnn_hidden, 2 * cfg.f_dim)

    def forward(self, e: Tensor) -> tuple[Tensor, Tensor]:
        """e: (B, T, hidden) -> loc, scale of f, each (B, f_dim)."""
        out, _ = self.lstm(e)
        width = out.shape[-1] // 2
        summary = torch.cat([out[:, -1, :width], out[:, 0, width:]], dim=-1)
        return gaussian_params(self.out(summary))


class FactorisedDynamicEncoder(nn.Module):
    """Parameterises the factorised q(z_t | x_t): each frame on its own, f unused."""

    def __init__(self, cfg: DSAConfig):
        super().__init__()
        self.net = mlp([cfg.hidden, cfg.hidden, 2 * cfg.z_dim])

    def forward(self, e: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
        return gaussian_params(self.net(e))


class FullDynamicEncoder(nn.Module):
    """Parameterises the full q(z_1:T | f, x_1:T): a bidirectional LSTM over [e_t, f], then a
    forward RNN over its outputs, so that z_t reads the whole sequence and what came before."""

    def __init__(self, cfg: DSAConfig):
        super().__init__()
        self.lstm = nn.LSTM(cfg.hidden + cfg.f_dim, cfg.rnn_hidden, batch_first=True, bidirectional=True)
        self.rnn = nn.RNN(2 * cfg.rnn_hidden, cfg.rnn_hidden, batch_first=True)
        self.out = nn.Linear(cfg.rnn_hidden, 2 * cfg.z_dim)

    def forward(self, e: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
        """e: (B, T, hidden), f: (B, f_dim) -> loc, scale of z, each (B, T, z_dim)."""
        both, _ = self.lstm(torch.cat([e, f[:, None].expand(-1, e.shape[1], -1)], dim=-1))
        forward, _ = self.rnn(both)
        return gaussian_params(self.out(forward))


class DynamicsPrior(nn.Module):
    """Parameterises p(z_t | z_<t): an LSTM over the previous codes, from a learned initial state.

    The initial state gives p(z_1); the state after reading z_1..z_{t-1} gives p(z_t).
    """

    def __init__(self, cfg: DSAConfig):
        super().__init__()
        self.lstm = nn.LSTM(cfg.z_dim, cfg.rnn_hidden, batch_first=True)
        self.h0 = nn.Parameter(torch.zeros(cfg.rnn_hidden))
        self.c0 = nn.Parameter(torch.zeros(cfg.rnn_hidden))
        self.out = nn.Linear(cfg.rnn_hidden, 2 * cfg.z_dim)

    def _initial_state(self, n: int) -> tuple[Tensor, Tensor]:
        return self.h0.expand(1, n, -1).contiguous(), self.c0.expand(1, n, -1).contiguous()

    def conditionals(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """loc, scale of p(z_t | z_<t) for every t of z (..., T, z_dim), all at once (teacher forcing)."""
        lead, (length, z_dim) = z.shape[:-2], z.shape[-2:]
        flat = z.reshape(-1, length, z_dim)
        state = self._initial_state(len(flat))
        after, _ = self.lstm(flat[:, :-1], state)  # the state after z_1..z_{t-1}, for t = 2..T
        states = torch.cat([state[0].transpose(0, 1), after], dim=1)
        loc, scale = gaussian_params(self.out(states))
        return loc.reshape(*lead, length, z_dim), scale.reshape(*lead, length, z_dim)

    def rollout(self, n: int, length: int, prefix: Tensor | None = None) -> Tensor:
        """Sequences drawn step by step from the prior: (n, length, z_dim).

        With ``prefix`` (n, K, z_dim), the LSTM first reads those codes and the draws continue
        them (z_K+1, ..., z_K+length): DSA's own video prediction.
        """
        if length == 0:
            return self.h0.new_zeros(n, 0, self.out.out_features // 2)
        h, c = self._initial_state(n)
        if prefix is not None and prefix.shape[1] > 1:
            _, (h, c) = self.lstm(prefix[:, :-1], (h, c))
        last = prefix[:, -1] if prefix is not None and prefix.shape[1] else None
        draws = []
        for _ in range(length):
            if last is not None:
                _, (h, c) = self.lstm(last[:, None], (h, c))
            loc, scale = gaussian_params(self.out(h[0]))
            last = Normal(loc, scale).sample()
            draws.append(last)
        return torch.stack(draws, dim=1)


class SequentialPrior(TorchDistribution):
    """p(z_1:T) = prod_t p(z_t | z_<t) as one distribution with event shape (T, z_dim).

    ``log_prob`` runs the LSTM over the given codes in one call (fast, vectorised over t);
    ``sample`` unrolls it step by step. One Pyro site then holds the whole trajectory, so DSA's
    model and guide share the site names (and the trace shapes) of the DVAE.
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 2)
    has_rsample = False

    def __init__(self, net: DynamicsPrior, length: int, z_dim: int, batch_shape=(), validate_args=None):
        self.net, self.length, self.z_dim = net, length, z_dim
        super().__init__(torch.Size(batch_shape), torch.Size((length, z_dim)), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return SequentialPrior(self.net, self.length, self.z_dim, batch_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        loc, scale = self.net.conditionals(value)
        return Normal(loc, scale).log_prob(value).sum((-1, -2))

    def sample(self, sample_shape=()) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            z = self.net.rollout(shape.numel(), self.length)
        return z.reshape(*shape, self.length, self.z_dim)
