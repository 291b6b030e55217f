"""DrNet's training plan: the scene discriminator's update, then the encoders' and decoder's.

From a window of T consecutive frames of each video, four distinct frames are drawn: c1, c2, p1,
p2 (so every pair is at most T - 1 steps apart). One step, as in the authors' code:

1. C learns to tell pose pairs of one video (E_p(c1), E_p(c2)) from pairs of two videos (the
   second half of the batch with its partners rolled by one), by binary cross-entropy; the
   encoders are held fixed.
2. With C held fixed, E_c, E_p and D minimise
       ||D(E_c(c1), E_p(p1)) - p1||^2                 reconstruction
     + ||E_c(c1) - sg[E_c(c2)]||^2                    similarity of content within a video
     + w * BCE(C(E_p(p1), sg[E_p(p2)]), 1/2)          the pose must leave C uncertain
   (sg: no gradient; mean squared errors averaged over elements, as the authors'.)

The logged loss is the second objective, summed over the batch's reconstructed frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...config import TrainConfig
from ...distributed import Objective, ddp_wrap
from ...errors import UserInputError
from ...fastpath import autocast
from ..plans import set_learning_rate
from .model import DrNet


class DrNetPlan:
    """Two Adam optimisers (beta1 from the config): the scene discriminator's and everything else's."""

    metric = "negative_loss_per_frame"
    #: One reconstructed frame per sequence: the trainer reports the loss per such frame.
    frames_per_example = 1

    def __init__(self, model: DrNet, cfg: TrainConfig):
        if cfg.f_kl_weight != 1 or cfg.z_kl_weight != 1:
            raise UserInputError("DrNet has no KL terms: the KL weights apply to the dvae and dsa families")
        self.model, self.cfg = model, cfg
        betas = (model.cfg.adam_beta1, 0.999)
        main = [p for name, p in model.named_parameters() if not name.startswith("discriminator.")]
        self.optimizer = torch.optim.Adam(main, lr=cfg.lr, betas=betas)
        self.discriminator_optimizer = torch.optim.Adam(model.discriminator.parameters(), lr=cfg.lr, betas=betas)
        self.optimizers = (self.optimizer, self.discriminator_optimizer)
        self._discriminator_objective, self._main_objective = self.discriminator_loss, self.main_loss

    def distribute(self, device: torch.device, world_size: int) -> None:
        """Train data-parallel: each objective goes through its own DistributedDataParallel (C's
        parameters in one, the encoders' and decoder's in the other), which averages the ranks'
        gradients. Both objectives are means over the batch, and the batch splits evenly, so the
        average is the global batch's gradient. Batch normalisation uses each rank's own part of the
        batch (DDP broadcasts rank 0's running statistics)."""
        m = self.model
        self._discriminator_objective = ddp_wrap(Objective(m.discriminator, self.discriminator_loss), device)
        networks = torch.nn.ModuleList([m.content_encoder, m.pose_encoder, m.decoder])
        self._main_objective = ddp_wrap(Objective(networks, self.main_loss), device)

    def kl_scale(self, step: int) -> float:
        return 1.0

    # -- the two objectives --------------------------------------------------------------------
    @staticmethod
    def draw_frames(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Four distinct random frames c1, c2, p1, p2 of each window x (B, T, C, S, S)."""
        order = torch.rand(x.shape[:2], device=x.device).argsort(1)[:, :4]
        picked = x[torch.arange(x.shape[0], device=x.device)[:, None], order]
        return picked.unbind(1)

    def discriminator_loss(self, pose_a: Tensor, pose_b: Tensor) -> Tensor:
        """BCE of C on same-video pairs (first half) and different-video pairs (second half)."""
        half = pose_a.shape[0] // 2
        other = torch.cat([pose_b[:half], pose_b[half:].roll(1, 0)])
        target = (torch.arange(len(other), device=pose_a.device) < half).float()
        return F.binary_cross_entropy_with_logits(self.model.discriminator(pose_a, other), target)

    def main_loss(self, c1: Tensor, c2: Tensor, p1: Tensor, p2: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        m = self.model
        content = m.content_encoder(c1)
        pose = m.pose_encoder(p1)
        reconstruction = F.mse_loss(m.reconstruct_frames(content, pose), p1)
        similarity = F.mse_loss(content, m.content_encoder(c2).detach())
        # C is held fixed: its parameters get no gradient from this objective (none is computed).
        with _frozen(m.discriminator):
            logits = m.discriminator(pose, m.pose_encoder(p2).detach())
        adversarial = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.5))
        total = reconstruction + similarity + m.cfg.adversarial_weight * adversarial
        return total, {"reconstruction": reconstruction, "similarity": similarity, "adversarial": adversarial}

    # -- the plan interface (pyro_dvae.models.plans) ----------------------------------------------
    def step(self, x: Tensor, step: int) -> Tensor:
        c1, c2, p1, p2 = self.draw_frames(x)
        with torch.no_grad(), autocast(self.cfg, x.device):
            pose_a, pose_b = self.model.pose_encoder(c1), self.model.pose_encoder(c2)
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        with autocast(self.cfg, x.device):
            discriminator_loss = self._discriminator_objective(pose_a, pose_b)
        discriminator_loss.backward()
        self.discriminator_optimizer.step()

        with autocast(self.cfg, x.device):
            loss, _ = self._main_objective(c1, c2, p1, p2)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach() * x.shape[0]

    @torch.no_grad()
    def heldout(self, x: Tensor) -> Tensor:
        loss, _ = self.main_loss(*self.draw_frames(x))
        return loss * x.shape[0]

    def state_dict(self) -> dict:
        return {"main": self.optimizer.state_dict(), "discriminator": self.discriminator_optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["main"])
        self.discriminator_optimizer.load_state_dict(state["discriminator"])
        for optimizer in (self.optimizer, self.discriminator_optimizer):
            set_learning_rate(optimizer, self.cfg.lr)


class _frozen:
    """Parameters of ``module`` need no gradient inside the block (restored after it)."""

    def __init__(self, module: torch.nn.Module):
        self.params = [p for p in module.parameters() if p.requires_grad]

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc) -> None:
        for p in self.params:
            p.requires_grad_(True)
