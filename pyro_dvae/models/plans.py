"""Training plans: how a family turns a batch into a parameter update.

The trainer (:mod:`pyro_dvae.training`) is one loop for every family: it draws the batches the
family asks for, calls ``plan.step``, and keeps progress, metrics, checkpoints, exact resume and
NaN / Ctrl-C handling. A plan owns the optimiser(s) and the objective:

``step(x, step) -> loss``       one update; returns the detached loss summed over the batch
``heldout(x) -> loss``          the same objective on held-out frames, at full KL weight
``kl_scale(step)``              the KL weight logged with the step (1 when there is none)
``state_dict() / load_state_dict()``   optimiser state, for checkpoints
``metric``                      the name of -loss per frame in metrics.jsonl
``optimizers``                  the optimisers, whose learning rate the trainer sets (``--lr-anneal``)
``frames_per_example``          optional: the frames of a sequence the loss is summed over
                                (default: all the frames of the batch)
``distribute(device, world_size)``  optional: average gradients over the processes of a
                                torchrun run (:mod:`pyro_dvae.distributed`); a plan without it
                                trains on one process only

Nothing in ``step`` reads a tensor back to the host, so a GPU never waits for Python.
"""

from __future__ import annotations

import pyro
import torch
from torch import Tensor

from ..config import TrainConfig
from ..distributed import Objective, ddp_wrap
from ..elbo import jit_elbo_loss
from ..errors import UserInputError
from ..fastpath import autocast
from .base import PyroSequenceModel


class SVIPlan:
    """Stochastic variational inference for a Pyro family: one Adam over all parameters.

    The objective is the negative ELBO of the family's model and guide, estimated from Pyro traces
    (``--elbo trace``: Monte Carlo KLs; ``meanfield``: analytic KLs where they exist; ``jit``:
    Pyro's JitTrace_ELBO). ``kl_warmup`` scales the latent sites' terms from 0 to 1, and
    ``f_kl_weight`` and ``z_kl_weight`` the static and dynamic codes' KL terms (beta_f, beta_z) while
    training; held-out ELBOs are ELBOs.
    Parameters are optimised by ``torch.optim.Adam`` directly, not through Pyro's global
    parameter store, so two models can live in one process and the optimiser state checkpoints
    exactly.
    """

    metric = "elbo_per_frame"

    def __init__(self, model: PyroSequenceModel, cfg: TrainConfig):
        self.model, self.cfg = model, cfg
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.optimizers = (self.optimizer,)
        self._jit_loss = jit_elbo_loss(model) if cfg.elbo == "jit" else None
        self._objective, self._grad_factor = self.loss, 1

    def distribute(self, device: torch.device, world_size: int) -> None:
        """Train data-parallel: the loss goes through DistributedDataParallel, which averages the
        ranks' gradients. Each rank's loss is a sum over its part of the global batch, so it is
        multiplied by the world size: the average is then the gradient of the global batch's sum,
        the one a single process computes."""
        if self._jit_loss is not None:
            raise UserInputError("--elbo jit cannot train on several processes; use --elbo trace or meanfield")
        self._objective, self._grad_factor = ddp_wrap(Objective(self.model, self.loss), device), world_size

    def kl_scale(self, step: int) -> float:
        return min(1.0, step / self.cfg.kl_warmup) if self.cfg.kl_warmup else 1.0

    def loss(self, x: Tensor, step: int) -> Tensor:
        """The negative ELBO of batch x at training step ``step`` (differentiable)."""
        if self._jit_loss is not None:
            return self._jit_loss(x)
        with autocast(self.cfg, x.device):
            return self.model.elbo_loss(x, kl_scale=self.kl_scale(step), analytic_kl=self.cfg.elbo == "meanfield",
                                        f_kl_weight=self.cfg.f_kl_weight, z_kl_weight=self.cfg.z_kl_weight)

    def step(self, x: Tensor, step: int) -> Tensor:
        with pyro.validation_enabled(False):  # validation reads tensors back to the host
            loss = self._objective(x, step)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * self._grad_factor if self._grad_factor != 1 else loss).backward()
            self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def heldout(self, x: Tensor) -> Tensor:
        return self.model.elbo_loss(x, analytic_kl=self.cfg.elbo == "meanfield")

    def state_dict(self) -> dict:
        # The optimiser's own state dict, as checkpoints held before there were plans.
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)
        set_learning_rate(self.optimizer, self.cfg.lr)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The config's rate, not the one saved with the optimiser's state (the same unless a resume
    lowers it, e.g. after a NaN)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
