"""The Sprites judge: attribute and action heads on 8-frame sequences."""

from __future__ import annotations

from importlib import resources

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import UserInputError
from ..metrics import accuracy
from .base import JUDGE_SIZE, Judge, JudgeKind, JudgeSettings, augment, round_trip

N_ATTRIBUTE_VALUES, N_ACTIONS = 6, 9


class FrameEncoder(nn.Module):
    """64x64 frame -> feature vector. The first conv patchifies (4x4, stride 4): cheap on a CPU,
    and a linear map of every pixel, so flat colours (what tells the Sprites attributes apart)
    survive it exactly."""

    def __init__(self, channels: int, width: int, dim: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 4), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.BatchNorm2d(4 * width), nn.ReLU(),
            nn.Flatten(), nn.Linear(4 * width * 16, dim), nn.ReLU(),
        )
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-3]
        return self.net(x.reshape(-1, *x.shape[-3:])).reshape(*lead, self.dim)


class SpritesJudgeNet(nn.Module):
    """Frame features -> 4 attribute heads per frame; the 8 ordered features -> action class."""

    def __init__(self, width: int, frames: int = 8):
        super().__init__()
        from ...data.sprites import ATTRIBUTES

        self.n_attributes = len(ATTRIBUTES)
        self.frames = frames
        self.encoder = FrameEncoder(3, width)
        self.attributes = nn.Linear(self.encoder.dim, self.n_attributes * N_ATTRIBUTE_VALUES)
        self.action = nn.Sequential(nn.Linear(frames * self.encoder.dim, self.encoder.dim), nn.ReLU(),
                                    nn.Linear(self.encoder.dim, N_ACTIONS))

    def attribute_logits(self, h: Tensor) -> Tensor:
        """Features (..., dim) -> attribute logits (..., 4, 6)."""
        return self.attributes(h).reshape(*h.shape[:-1], self.n_attributes, N_ATTRIBUTE_VALUES)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, 8, 3, 64, 64) -> attribute logits (B, 8, 4, 6), action logits (B, 9)."""
        if x.shape[1] != self.frames:
            raise UserInputError(f"the Sprites judge reads sequences of {self.frames} frames, got {x.shape[1]}")
        h = self.encoder(x)
        return self.attribute_logits(h), self.action(h.flatten(1))

    def read_sequences(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """64x64 sequences -> attribute probabilities (B, 4, 6), combining the frames' predictions by
        averaging log-probabilities (the attributes are static), and action probabilities (B, 9)."""
        attr_logits, action_logits = self.eval()(x)
        return attr_logits.log_softmax(-1).mean(1).softmax(-1), action_logits.softmax(-1)

    def read_frames(self, x: Tensor) -> Tensor:
        """64x64 frames (..., 3, 64, 64) -> each frame's attribute probabilities (..., 4, 6)."""
        return self.eval().attribute_logits(self.encoder(x)).softmax(-1)


def judge_sprites_accuracy(judge: Judge, seqs, size: int = JUDGE_SIZE, batch_size: int = 256) -> dict[str, float]:
    """Judge accuracy per attribute and action on labelled Sprites sequences seen at ``size``."""
    from ...data.sprites import ATTRIBUTES

    attr_pred, action_pred = [], []
    for _, x in seqs.batches(batch_size):
        attrs, action = judge.sprites(round_trip(x, size))
        attr_pred.append(attrs.argmax(-1))
        action_pred.append(action.argmax(-1))
    attr_pred = torch.cat(attr_pred)
    out = {name: accuracy(attr_pred[:, i], seqs.attrs[:, i]) for i, name in enumerate(ATTRIBUTES)}
    out["action"] = accuracy(torch.cat(action_pred), seqs.action)
    return out


def _sprites_data(settings: JudgeSettings, device: torch.device):
    from ...data.sprites import sprites_eval_sequences

    return (sprites_eval_sequences("train", device, settings.limit),
            sprites_eval_sequences("test", device, settings.test_limit))


def _sprites_loss(net: SpritesJudgeNet, seqs, settings: JudgeSettings, generator: torch.Generator) -> Tensor:
    """One batch of ``settings.batch_size`` labelled train sequences, through the round trip."""
    rows = torch.randint(len(seqs), (settings.batch_size,), generator=generator, device=seqs.attrs.device)
    x = augment(seqs.frames(rows), settings, generator)
    attr_logits, action_logits = net(x)
    attrs = seqs.attrs[rows][:, None, :].expand(-1, x.shape[1], -1)
    # Summed over the four attribute heads so each head gets the action head's gradient weight.
    attr_loss = F.cross_entropy(attr_logits.reshape(-1, N_ATTRIBUTE_VALUES), attrs.reshape(-1))
    return attr_loss * attrs.shape[-1] + F.cross_entropy(action_logits, seqs.action[rows])


def _data_version() -> bytes:
    from ...data import sprites

    # The assets live in pyro_dvae.data (beside the sprites package), as the compositor reads them.
    manifest = resources.files("pyro_dvae.data").joinpath("assets", "lpc", "MANIFEST.tsv")
    return manifest.read_bytes() + repr((sprites.EVAL_CELLS, sprites.SPLIT_SEED, sprites.N_TRAIN_IDENTITIES)).encode()


JUDGE = JudgeKind(name="sprites", defaults={}, build=lambda settings: SpritesJudgeNet(settings.width),
                  data=_sprites_data, batch_loss=_sprites_loss, accuracy=judge_sprites_accuracy,
                  data_version=_data_version)
