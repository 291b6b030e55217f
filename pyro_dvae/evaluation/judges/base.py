"""What both judge kinds share: settings and cache key, the Judge wrapper, the resolution round trip."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import UserInputError

JUDGE_SIZE = 64
KINDS = ("sprites", "digits")
# Bump when the judge networks or their training change, so that cached judges are retrained.
JUDGE_VERSION = 1
N_ATTRIBUTE_VALUES, N_ACTIONS, N_DIGITS = 6, 9, 10


@dataclass(frozen=True)
class JudgeSettings:
    """How a judge is trained; every field is part of its cache key.

    Attributes
    ----------
    kind : {"sprites", "digits"}
    steps, batch_size, lr, seed : optimisation (one-cycle learning-rate schedule, Adam).
        ``batch_size`` counts sequences for Sprites, frames for digits.
    width : channels of the first conv layer of the frame encoder.
    limit : train on the first ``limit`` train identities (Sprites) or sequences (digits) only;
        None for all.
    test_limit : measure held-out accuracy on the first ``test_limit`` test identities /
        sequences only; None for all.
    resolutions : image sizes of the down/up-sampling round trip used in training (64 = none)
        and at which held-out accuracy is reported.
    """

    kind: str = "sprites"
    steps: int = 1200
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    width: int = 32
    limit: int | None = None
    test_limit: int | None = None
    resolutions: tuple[int, ...] = (64, 32, 16)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UserInputError(f"unknown judge kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.steps < 1 or self.batch_size < 1 or self.width < 1 or not self.lr > 0:
            raise UserInputError("judge steps, batch_size, width and lr must be positive")
        bad = [r for r in self.resolutions if r not in (16, 32, 64)]
        if bad or not self.resolutions:
            raise UserInputError(f"judge resolutions must be among 16, 32, 64; got {self.resolutions}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["resolutions"] = list(self.resolutions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JudgeSettings:
        return cls(**{**d, "resolutions": tuple(d.get("resolutions", (64,)))})


def default_settings(kind: str, **overrides: Any) -> JudgeSettings:
    """The judge settings used by ``pyro-dvae evaluate`` (digits train on frames: larger batches)."""
    base = {"sprites": {}, "digits": {"batch_size": 64, "steps": 1500, "width": 16}}
    if kind not in base:
        raise UserInputError(f"unknown judge kind {kind!r}; use one of {', '.join(KINDS)}")
    return JudgeSettings(kind=kind, **{**base[kind], **{k: v for k, v in overrides.items() if v is not None}})


def data_version(kind: str) -> str:
    """A hash of the bundled data a judge learns from and of the protocol constants."""
    h = hashlib.sha1()
    if kind == "sprites":
        from ...data import sprites

        # The assets live in pyro_dvae.data (beside the sprites package), as _layer_cells reads them.
        manifest = resources.files("pyro_dvae.data").joinpath("assets", "lpc", "MANIFEST.tsv")
        h.update(manifest.read_bytes())
        h.update(repr((sprites.EVAL_CELLS, sprites.SPLIT_SEED, sprites.N_TRAIN_IDENTITIES)).encode())
    else:
        from ...data import moving_mnist

        h.update(Path(moving_mnist.DIGITS_FILE).read_bytes())
        h.update(repr((moving_mnist.STEP, moving_mnist.TEST_FRACTION, moving_mnist.DIGIT_SIZE)).encode())
    return h.hexdigest()[:12]


def judge_key(settings: JudgeSettings) -> str:
    """Cache key: the kind and a hash of (judge version, data version, settings)."""
    blob = json.dumps({"version": JUDGE_VERSION, "data": data_version(settings.kind),
                       "settings": settings.to_dict()}, sort_keys=True)
    return f"{settings.kind}-{hashlib.sha1(blob.encode()).hexdigest()[:16]}"


# --------------------------------------------------------------------------------------------
# Resolution round trip
# --------------------------------------------------------------------------------------------


def resample(x: Tensor, size: int, mode: str = "area") -> Tensor:
    """Frames (..., C, H, W) resized to (size, size); a no-op at the current size."""
    if x.shape[-1] == size:
        return x
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=(size, size), mode=mode)
    return y.reshape(*lead, *y.shape[-3:])


def to_judge_size(x: Tensor) -> Tensor:
    """Model-resolution frames upsampled to the judge's 64x64 by nearest neighbour.

    Nearest neighbour undoes the data's area-downsampling exactly on flat regions and invents no
    colours, so the judge (trained on the same round trip) sees what the model drew.
    """
    return resample(x, JUDGE_SIZE, mode="nearest")


def round_trip(x: Tensor, size: int) -> Tensor:
    """64x64 frames at the resolution ``size`` a model sees, brought back to 64 (the judge's view)."""
    return to_judge_size(resample(x, size, mode="area"))


# --------------------------------------------------------------------------------------------
# Judging
# --------------------------------------------------------------------------------------------


@dataclass
class Judge:
    """A trained judge network with its settings and held-out accuracy report."""

    net: nn.Module
    settings: JudgeSettings
    report: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def kind(self) -> str:
        return self.settings.kind

    @property
    def key(self) -> str:
        return judge_key(self.settings)

    def to(self, device: torch.device | str) -> Judge:
        self.net.to(device)
        return self

    @torch.no_grad()
    def sprites(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Sequences (B, 8, 3, S, S) -> attribute probabilities (B, 4, 6), action probabilities (B, 9).

        Frames are upsampled to 64 if needed. A sequence's attributes combine its frames'
        predictions by averaging log-probabilities (the attributes are static).
        """
        self._expect("sprites")
        attr_logits, action_logits = self.net.eval()(to_judge_size(x))
        attrs = attr_logits.log_softmax(-1).mean(1).softmax(-1)
        return attrs, action_logits.softmax(-1)

    @torch.no_grad()
    def sprites_frames(self, x: Tensor) -> Tensor:
        """Frames (..., 3, S, S), any number -> each frame's attribute probabilities (..., 4, 6)."""
        self._expect("sprites")
        net = self.net.eval()
        return net.attribute_logits(net.encoder(to_judge_size(x))).softmax(-1)

    @torch.no_grad()
    def digits(self, x: Tensor) -> Tensor:
        """Frames (..., 1, S, S) -> digit probabilities (..., 10); upsampled to 64 if needed."""
        self._expect("digits")
        return self.net.eval()(to_judge_size(x)).softmax(-1)

    def _expect(self, kind: str) -> None:
        if self.kind != kind:
            raise UserInputError(f"this is a {self.kind} judge; a {kind} judge is needed")


# --------------------------------------------------------------------------------------------
# Training pieces shared by both kinds
# --------------------------------------------------------------------------------------------


def _one_cycle(settings: JudgeSettings, net: nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=settings.steps)


def _augment(x: Tensor, settings: JudgeSettings, generator: torch.Generator) -> Tensor:
    """The whole batch through the round trip at a resolution drawn from ``settings.resolutions``."""
    pick = int(torch.randint(len(settings.resolutions), (1,), generator=generator))
    return round_trip(x, settings.resolutions[pick])
