"""What every judge shares: the kind record, settings and cache key, the Judge wrapper, the
resolution round trip.

A judge kind (:class:`JudgeKind`) is declared by the labelled data set whose protocol it serves
(``pyro_dvae.evaluation.sprites``, ``pyro_dvae.evaluation.digits``); :func:`judge_kind` finds it
by name through the registered data sets, so this module names none of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import UserInputError
from ...registry import DATASETS, resolve

JUDGE_SIZE = 64
# Bump when the judge networks or their training change, so that cached judges are retrained.
JUDGE_VERSION = 1


@dataclass(frozen=True)
class JudgeKind:
    """What a labelled data set's judge is and how it learns.

    Attributes
    ----------
    name : the kind's name (``pyro-dvae judge train NAME``, :attr:`JudgeSettings.kind`).
    defaults : its default :class:`JudgeSettings` fields (beyond the shared defaults).
    build : ``build(settings) -> nn.Module``, the judge network.
    data : ``data(settings, device) -> (train, test)``, what it learns from and is scored on.
    batch_loss : ``batch_loss(net, train, settings, generator) -> loss`` of one training batch
        (drawn with ``generator``, passed through :func:`augment`).
    accuracy : ``accuracy(judge, test, size) -> {head: accuracy}`` on frames seen at ``size``.
    data_version : ``data_version() -> bytes`` of what the judge learns from (bundled data,
        protocol constants), part of the cache key.
    """

    name: str
    defaults: dict[str, Any]
    build: Callable[[JudgeSettings], nn.Module]
    data: Callable[[JudgeSettings, torch.device], tuple[Any, Any]]
    batch_loss: Callable[[nn.Module, Any, JudgeSettings, torch.Generator], Tensor]
    accuracy: Callable[[Judge, Any, int], dict[str, float]]
    data_version: Callable[[], bytes]


def judge_kinds() -> dict[str, JudgeKind]:
    """The judge of every registered labelled data set, by kind name."""
    kinds = {}
    for _, dataset in DATASETS.items():
        reference = dataset.protocol_name({})
        judge = getattr(resolve(reference), "judge", None) if reference else None
        if judge is not None:
            kinds[judge.name] = judge
    return kinds


def judge_kind(name: str) -> JudgeKind:
    """The judge kind called ``name``; an unknown one is a one-line user error."""
    kinds = judge_kinds()
    if name not in kinds:
        raise UserInputError(f"unknown judge kind {name!r}; use one of {', '.join(sorted(kinds))}")
    return kinds[name]


@dataclass(frozen=True)
class JudgeSettings:
    """How a judge is trained; every field is part of its cache key.

    Attributes
    ----------
    kind : the :class:`JudgeKind`'s name.
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
        judge_kind(self.kind)  # a known kind, or a one-line error
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
    """The judge settings used by ``pyro-dvae evaluate`` for a kind (its own defaults, then ``overrides``)."""
    defaults = judge_kind(kind).defaults
    return JudgeSettings(kind=kind, **{**defaults, **{k: v for k, v in overrides.items() if v is not None}})


def data_version(kind: str) -> str:
    """A hash of what a judge of this kind learns from (its bundled data and protocol constants)."""
    return hashlib.sha1(judge_kind(kind).data_version()).hexdigest()[:12]


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

    def accuracy(self, test, size: int = JUDGE_SIZE) -> dict[str, float]:
        """Held-out accuracy per head on its kind's test data seen at ``size``."""
        return judge_kind(self.kind).accuracy(self, test, size)

    @torch.no_grad()
    def sprites(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Sprites sequences (B, 8, 3, S, S) -> attribute probabilities (B, 4, 6), action
        probabilities (B, 9); frames are upsampled to 64 if needed."""
        return self._read("read_sequences", "read Sprites sequences", x)

    @torch.no_grad()
    def sprites_frames(self, x: Tensor) -> Tensor:
        """Sprites frames (..., 3, S, S), any number -> each frame's attribute probabilities (..., 4, 6)."""
        return self._read("read_frames", "read Sprites frames", x)

    @torch.no_grad()
    def digits(self, x: Tensor) -> Tensor:
        """Frames (..., 1, S, S) -> digit probabilities (..., 10); upsampled to 64 if needed."""
        return self._read("read_digits", "read digits", x)

    @torch.no_grad()
    def digit_pairs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Two-digit frames (..., 1, S, S) -> probabilities of the 55 unordered digit pairs (..., 55)
        and the two digits' box centres (..., 2, 2) in pixels of the 64x64 frame; upsampled to 64 if needed."""
        return self._read("read_pairs", "read digit pairs", x)

    def _read(self, method: str, what: str, x: Tensor):
        read = getattr(self.net, method, None)  # what a judge reads is its network's to say
        if read is None:
            raise UserInputError(f"a {self.kind} judge cannot {what}; use the judge of the run's data")
        return read(to_judge_size(x))


# --------------------------------------------------------------------------------------------
# Training pieces shared by both kinds
# --------------------------------------------------------------------------------------------


def _one_cycle(settings: JudgeSettings, net: nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=settings.steps)


def augment(x: Tensor, settings: JudgeSettings, generator: torch.Generator) -> Tensor:
    """The whole batch through the round trip at a resolution drawn from ``settings.resolutions``."""
    pick = int(torch.randint(len(settings.resolutions), (1,), generator=generator))
    return round_trip(x, settings.resolutions[pick])
