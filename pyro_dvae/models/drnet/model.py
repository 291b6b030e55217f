"""DrNet (Denton & Birodkar 2017): content and pose encoders, a decoder, a scene discriminator.

    content  h_c = E_c(x_t)        one vector per frame; a sequence's static code is their mean
    pose     h_p = E_p(x_t)        one vector per frame: the dynamic code
    frame    x_t+k ~ D(E_c(x_t), E_p(x_t+k))       (mean squared error)

A scene discriminator C(h_p, h_p') tells whether two pose vectors come from the same video; the
pose encoder is trained, with C held fixed, to leave C maximally uncertain (target 1/2), so that
pose vectors carry nothing that identifies the video. Content vectors of two frames of one video
are pulled together (the similarity loss). The losses and their two optimisers live in
:class:`~.plan.DrNetPlan`. DrNet is not a probabilistic model: it has no prior to sample from, no
guide and no ELBO (the optional queries of :class:`~pyro_dvae.models.base.SequenceModel` it
leaves out say so in one line).

Reference: E. Denton, V. Birodkar. Unsupervised Learning of Disentangled Representations from
Video. NeurIPS 2017. Defaults from the authors' code (github.com/edenton/drnet-py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...nets import FEATURE_SIDE, Emitter, FrameFeatures
from ..base import SequenceModel
from .config import DrNetConfig


class FrameCode(nn.Module):
    """x_t -> a code in (-1, 1)^dim: the shared frame convs, a dense layer, batch norm, tanh.

    Batch normalisation of the code, as in the authors' encoders, keeps every code dimension
    spread over the batch: without it the similarity and adversarial terms can collapse content
    and pose to constants before the reconstruction has taught the decoder to read them.
    """

    def __init__(self, cfg: DrNetConfig, dim: int):
        super().__init__()
        self.features = FrameFeatures(cfg)
        self.out = nn.Linear(cfg.conv_width * FEATURE_SIDE**2, dim)
        self.norm = nn.BatchNorm1d(dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.out(self.features(x).flatten(-3))
        lead = h.shape[:-1]
        return torch.tanh(self.norm(h.reshape(-1, h.shape[-1])).reshape(*lead, -1))


class SceneDiscriminator(nn.Module):
    """C(h_p, h_p'): the probability that two pose vectors come from the same video."""

    def __init__(self, cfg: DrNetConfig):
        super().__init__()
        width = cfg.discriminator_hidden
        self.net = nn.Sequential(nn.Linear(2 * cfg.z_dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, 1))

    def forward(self, pose_a: Tensor, pose_b: Tensor) -> Tensor:
        """Logits (...,) of "same video" for pose vectors (..., z_dim) each."""
        return self.net(torch.cat([pose_a, pose_b], dim=-1)).squeeze(-1)


class DrNet(SequenceModel):
    """Content encoder E_c, pose encoder E_p, decoder D and scene discriminator C."""

    family = "drnet"
    ordered = True
    missing_reason = "DrNet has no prior: it is an autoencoder trained with an adversarial pose loss"

    def __init__(self, cfg: DrNetConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.content_encoder = FrameCode(cfg, cfg.f_dim)
        self.pose_encoder = FrameCode(cfg, cfg.z_dim)
        self.decoder = Emitter(cfg)
        self.discriminator = SceneDiscriminator(cfg)

    def reconstruct_frames(self, content: Tensor, pose: Tensor) -> Tensor:
        """D(h_c, h_p): frames (..., C, S, S) in [0, 1] for codes with the same leading shape."""
        return torch.sigmoid(self.decoder(content, pose))

    # -- the family's queries (pyro_dvae.models.base.SequenceModel) ------------------------
    def encode_static(self, x: Tensor, generator: torch.Generator | None = None,
                      n_subsets: int = 8) -> tuple[Tensor, Tensor]:
        """The mean content vector of a sequence's frames; deterministic, so the scale is 0."""
        content = self.content_encoder(x).mean(1)
        return content, torch.zeros_like(content)

    def encode_dynamic(self, x: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
        """Every frame's pose vector (it does not read the content); the scale is 0."""
        pose = self.pose_encoder(x)
        return pose, torch.zeros_like(pose)

    def decode(self, f: Tensor, z: Tensor) -> Tensor:
        return self.reconstruct_frames(f.unsqueeze(-2).expand(*z.shape[:-1], -1), z)
