"""The latent predictor: a second training stage that lets a family without a model of time predict.

The DVAE never sees order and DrNet's encoders are trained on frame pairs, so neither can roll
its dynamics forward by itself. As in DrNet's paper, a recurrent network learns the dynamics in
latent space on top of the frozen first stage: for ordered windows of the run's data, the frozen
model encodes f (from the window) and z_t (every frame), and an LSTM over [z_t, f] learns to
predict z_t+1. At prediction time it is fed its own outputs, never pixels.

It is deterministic by default (it predicts z_t+1 itself, trained by squared error), as DrNet's
paper has it, for every family: on the DVAE's Sprites run it keeps the action in 100% of predicted
sequences against 91% for a Gaussian over z_t+1 (trained by its log-likelihood, sampled at
prediction; ``stochastic=True``, ``--stochastic``), whose sampling noise accumulates over the
rollout (docs/results.md). Its weights, settings and optimiser
live in ``RUN/predictor.pt``, its metrics in ``RUN/predictor_metrics.jsonl``; training runs
through the package's one trainer (progress, checkpoints, exact resume, budgets, NaN, Ctrl-C).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from pyro.distributions import Normal
from torch import Tensor, nn

from ..checkpoint import load_checkpoint
from ..config import RunConfig, TrainConfig, check_types
from ..errors import UserInputError
from ..models.base import SequenceModel
from ..nets import gaussian_params
from ..runs import Run
from ..training import Engine, Stage, StageFiles

PREDICTOR_FILE = "predictor.pt"
PREDICTOR_METRICS_FILE = "predictor_metrics.jsonl"


@dataclass
class PredictorConfig:
    """The predictor's network and the windows it learns from."""

    hidden: int = 128
    stochastic: bool = False  # a Gaussian over z_t+1 (sampled), or z_t+1 itself (squared error)
    window: int = 10  # frames per training window: the predictor learns window - 1 steps ahead

    def validate(self) -> None:
        check_types(self, "predictor")
        if not 1 <= self.hidden <= 8192:
            raise UserInputError(f"predictor hidden must be in 1..8192, got {self.hidden}")
        if not 2 <= self.window <= 10_000:
            raise UserInputError(f"the predictor's window must be 2..10000 frames, got {self.window}")


def default_predictor_config(run: Run) -> PredictorConfig:
    """Deterministic (the module docstring says why); the window is 15 frames (5 context + 10
    predicted, the Moving MNIST setting) or the data's sequence length."""
    data = run.data("train", ordered=True)
    return PredictorConfig(window=min(15, int(data.set_sizes.min())))


class LatentPredictor(nn.Module):
    """p(z_t+1 | z_<=t, f): an LSTM over [z_t, f] with f fixed over the sequence.

    It works on standardised codes: a DVAE's z has no fixed scale (its prior p(z | f) is learned,
    and posterior means of 10-20 are common), which an LSTM's saturating gates cannot follow. The
    per-dimension location and scale of z and f are buffers, set once from the first training
    batch, so that they travel with the checkpoint and resume stays exact.
    """

    def __init__(self, cfg: PredictorConfig, f_dim: int, z_dim: int):
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(z_dim + f_dim, cfg.hidden, batch_first=True)
        self.out = nn.Linear(cfg.hidden, 2 * z_dim if cfg.stochastic else z_dim)
        for name, dim in (("z", z_dim), ("f", f_dim)):
            self.register_buffer(f"{name}_loc", torch.zeros(dim))
            self.register_buffer(f"{name}_scale", torch.ones(dim))
        self.register_buffer("standardised", torch.tensor(False))

    @torch.no_grad()
    def fit_standardisation(self, z: Tensor, f: Tensor) -> None:
        """Set the codes' location and scale from a batch of codes z (B, T, z_dim), f (B, f_dim)."""
        for name, codes in (("z", z.reshape(-1, z.shape[-1])), ("f", f)):
            getattr(self, f"{name}_loc").copy_(codes.mean(0))
            getattr(self, f"{name}_scale").copy_(codes.std(0).clamp_min(1e-3) if codes.shape[0] > 1 else 1.0)
        self.standardised.fill_(True)

    def _params(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        out = self.out(h)
        return gaussian_params(out) if self.cfg.stochastic else (out, None)

    def forward(self, z: Tensor, f: Tensor, state=None):
        """Next-step parameters after each of z (B, T, z_dim) given f (B, f_dim), in standardised
        units: loc, scale (B, T, z_dim)."""
        z, f = (z - self.z_loc) / self.z_scale, (f - self.f_loc) / self.f_scale
        h, state = self.lstm(torch.cat([z, f[:, None].expand(-1, z.shape[1], -1)], dim=-1), state)
        loc, scale = self._params(h)
        return loc, scale, state

    def _code(self, standardised: Tensor) -> Tensor:
        return standardised * self.z_scale + self.z_loc

    def loss(self, z: Tensor, f: Tensor) -> Tensor:
        """Teacher-forced: -log p(z_2:T | z_1:T-1, f) (stochastic) or the squared error, summed,
        both in standardised units."""
        loc, scale, _ = self(z[:, :-1], f)
        target = (z[:, 1:] - self.z_loc) / self.z_scale
        if self.cfg.stochastic:
            return -Normal(loc, scale).log_prob(target).sum()
        return ((loc - target) ** 2).sum()

    def rollout(self, z_context: Tensor, f: Tensor, horizon: int) -> Tensor:
        """z_K+1..z_K+H after the context codes (B, K, z_dim), each step fed the previous output."""
        if horizon == 0:
            return z_context[:, :0]
        loc, scale, state = self(z_context, f)
        steps = []
        for t in range(horizon):
            nxt = self._code(Normal(loc[:, -1], scale[:, -1]).sample() if self.cfg.stochastic else loc[:, -1])
            steps.append(nxt)
            if t + 1 < horizon:
                loc, scale, state = self(nxt[:, None], f, state)
        return torch.stack(steps, dim=1)


class PredictorPlan:
    """Trains the predictor on the frozen model's posterior means of ordered windows."""

    metric = "negative_loss_per_frame"

    def __init__(self, run_model: SequenceModel, predictor: LatentPredictor, cfg: TrainConfig):
        self.run_model, self.predictor = run_model.eval(), predictor
        for p in run_model.parameters():
            p.requires_grad_(False)
        self.frames_per_example = predictor.cfg.window - 1  # the predicted frames of a window
        self.optimizer = torch.optim.Adam(predictor.parameters(), lr=cfg.lr)
        self.optimizers = (self.optimizer,)

    def kl_scale(self, step: int) -> float:
        return 1.0

    def _loss(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            f, z = self.run_model.encode(x)
        if not self.predictor.standardised:
            self.predictor.fit_standardisation(z, f)
        return self.predictor.loss(z, f)

    def step(self, x: Tensor, step: int) -> Tensor:
        loss = self._loss(x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def heldout(self, x: Tensor) -> Tensor:
        return self._loss(x)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)


class PredictorStage(Stage):
    """The second stage: the predictor is what is trained and checkpointed, beside the run's model."""

    files = StageFiles(checkpoint=PREDICTOR_FILE, metrics=PREDICTOR_METRICS_FILE, tensorboard="tensorboard/predictor",
                       config=None)  # the run's config.toml stays the first stage's
    resume_command = "pyro-dvae train-predictor"
    ordered = True  # the predictor learns time, whatever the first stage read

    def __init__(self, run: Run, predictor_cfg: PredictorConfig):
        self.run_model, self.predictor_cfg = run.model, predictor_cfg

    def window(self, config: RunConfig) -> int:
        return self.predictor_cfg.window

    def build(self, config: RunConfig, device: torch.device) -> tuple[LatentPredictor, PredictorPlan]:
        self.run_model = self.run_model.to(device)
        predictor = LatentPredictor(self.predictor_cfg, config.model.f_dim, config.model.z_dim).to(device)
        return predictor, PredictorPlan(self.run_model, predictor, config.train)

    def extra_payload(self) -> dict:
        return {"predictor": dataclasses.asdict(self.predictor_cfg)}

    def figures(self, engine: Engine) -> None:
        from .. import plotting
        from ..runs import read_metrics

        plotting.save_figure(plotting.training_curves(read_metrics(engine.out / self.files.metrics),
                                                      engine.plan.metric),
                             engine.out / "figures" / "predictor_training_curves.png")

    def result(self, engine: Engine, step: int) -> LatentPredictor:
        engine.model.step = step
        return engine.model


def _stage_config(run: Run, train: TrainConfig) -> RunConfig:
    return dataclasses.replace(run.config, train=train).validate()


def train_predictor(run: Run, train: TrainConfig | None = None, predictor: PredictorConfig | None = None,
                    *, progress: bool = True) -> LatentPredictor:
    """Train (from scratch) the latent predictor of ``run``; its checkpoint goes into the run directory."""
    if run.model.can("predict_dynamics"):
        raise UserInputError(f"a {run.config.model.family} model predicts with its own dynamics prior; "
                             "it needs no latent predictor (use `pyro-dvae predict` directly)")
    if (run.path / PREDICTOR_FILE).exists():
        raise UserInputError(f"{run.path} already has a predictor; continue it with "
                             f"`pyro-dvae train-predictor {run.path} --resume --steps N` or delete {PREDICTOR_FILE}")
    predictor = predictor or default_predictor_config(run)
    predictor.validate()
    train = train or TrainConfig(steps=2000, batch_size=32, lr=1e-3, log_every=50, eval_every=500,
                                 checkpoint_every=500, eval_batches=2)
    return Engine(_stage_config(run, train), run.path, PredictorStage(run, predictor), progress).run()


def resume_predictor(run: Run, steps: int | None = None, max_minutes: float | None = None, *,
                     progress: bool = True) -> LatentPredictor:
    """Continue the run's predictor from its checkpoint up to ``steps`` total steps."""
    payload = _predictor_payload(run)
    train = TrainConfig(**payload["config"]["train"])
    train = dataclasses.replace(train, steps=steps or train.steps,
                                max_minutes=train.max_minutes if max_minutes is None else max_minutes)
    if train.steps <= payload["step"]:
        raise UserInputError(f"the predictor of {run.path} is already at step {payload['step']}; "
                             "pass --steps larger than that")
    predictor = PredictorConfig(**payload["predictor"])
    return Engine(_stage_config(run, train), run.path, PredictorStage(run, predictor), progress).run(payload)


def _predictor_payload(run: Run) -> dict:
    path = run.path / PREDICTOR_FILE
    if not path.is_file():
        raise UserInputError(f"{run.path} has no latent predictor; a {run.config.model.family} model cannot "
                             f"predict by itself: train one with `pyro-dvae train-predictor {run.path}`")
    payload = load_checkpoint(path)
    if "predictor" not in payload:
        raise UserInputError(f"{path} is not a predictor checkpoint; train one with `pyro-dvae train-predictor`")
    try:
        PredictorConfig(**payload["predictor"]).validate()
        TrainConfig(**payload["config"]["train"]).validate()
        valid = isinstance(payload["model"], dict) and isinstance(payload["step"], int) and payload["step"] >= 0
    except (KeyError, TypeError, UserInputError):
        valid = False
    if not valid:
        raise UserInputError(f"{path} is a damaged or edited predictor checkpoint; train the predictor again "
                             f"(delete {PREDICTOR_FILE}, then `pyro-dvae train-predictor {run.path}`)")
    return payload


def load_predictor(run: Run) -> LatentPredictor:
    """The run's trained predictor (on the run's device, in eval mode)."""
    payload = _predictor_payload(run)
    cfg = run.config.model
    predictor = LatentPredictor(PredictorConfig(**payload["predictor"]), cfg.f_dim, cfg.z_dim)
    try:
        predictor.load_state_dict(payload["model"])
    except RuntimeError:
        raise UserInputError(f"{run.path / PREDICTOR_FILE} does not match the run's codes; "
                             "train the predictor again") from None
    predictor.step = int(payload["step"])
    return predictor.to(run.device).eval()


__all__ = ["LatentPredictor", "PREDICTOR_FILE", "PredictorConfig", "PredictorPlan", "PredictorStage", "load_predictor",
           "resume_predictor", "train_predictor"]
