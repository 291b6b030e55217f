"""Judges: classifiers trained on labelled data that score what a model generates.

* Sprites judge: four 6-way frame-level heads (skin, pants, top, hair) and a 9-way head for the
  action class of an 8-frame sequence (the Li & Mandt 2018 protocol), trained on the labelled
  sequences of the 1000 train identities.
* Digit judge: a 10-way classifier of 64x64 Moving MNIST frames with one digit, trained on the
  train split (disjoint digit images from the test split).

Judges read 64x64 frames. A model trained at a smaller ``image_size`` is judged on its outputs
upsampled to 64 by nearest neighbour (:func:`to_judge_size`); so that this costs the judge no
accuracy on real frames, it is trained with the same round trip (area-downsampling to 32 or 16,
then nearest upsampling) on part of its batches.

A judge is trained on first use and cached under ``$PYRO_DVAE_CACHE/judges`` (default
``~/.cache/pyro-dvae/judges``), keyed by a hash of the data version and the judge settings, and
saved with the safe checkpoint functions (nothing in the file can execute code).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import UserInputError
from .metrics import accuracy, centre_of_mass

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


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


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
        from ..data.sprites import ATTRIBUTES

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


def crop_around_centre(x: Tensor, size: int) -> Tensor:
    """A (size x size) window of each frame (..., C, H, W) centred on its centre of mass, zero-padded."""
    flat = x.reshape(-1, *x.shape[-3:])
    half = size // 2
    # In the padded frame, the window that starts at the (rounded) centre is centred on it.
    start = centre_of_mass(flat).round().long().clamp(0, x.shape[-1] - 1)
    padded = F.pad(flat, (half, half, half, half))
    offsets = torch.arange(size, device=x.device)
    rows, cols = (start[:, 0, None] + offsets), (start[:, 1, None] + offsets)
    frame = torch.arange(len(flat), device=x.device)[:, None, None]
    window = padded[frame, :, rows[:, :, None], cols[:, None, :]]  # (M, size, size, C)
    return window.permute(0, 3, 1, 2).reshape(*x.shape[:-3], x.shape[-3], size, size)


class DigitJudgeNet(nn.Module):
    """A 64x64 grey frame with one digit -> digit class logits (10).

    The frame is first cropped to a window around its centre of mass, so the classifier is
    translation invariant wherever the digit moved (and cheap: a small MNIST-style CNN).
    """

    window = 40  # a 28x28 digit whose ink centre is off its box centre still fits

    def __init__(self, width: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for i in range(3):
            layers += [nn.Conv2d(channels, width * 2**i, 3, 1, 1), nn.BatchNorm2d(width * 2**i), nn.ReLU(),
                       nn.MaxPool2d(2)]
            channels = width * 2**i
        side = self.window // 8
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * side * side, 128), nn.ReLU(),
                                 nn.Linear(128, N_DIGITS))

    def forward(self, x: Tensor) -> Tensor:
        """x (..., 1, 64, 64) -> logits (..., 10)."""
        crops = crop_around_centre(x, self.window)
        return self.net(crops.reshape(-1, *crops.shape[-3:])).reshape(*x.shape[:-3], N_DIGITS)


def _build_net(settings: JudgeSettings) -> nn.Module:
    return SpritesJudgeNet(settings.width) if settings.kind == "sprites" else DigitJudgeNet(settings.width)


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
    def digits(self, x: Tensor) -> Tensor:
        """Frames (..., 1, S, S) -> digit probabilities (..., 10); upsampled to 64 if needed."""
        self._expect("digits")
        return self.net.eval()(to_judge_size(x)).softmax(-1)

    def _expect(self, kind: str) -> None:
        if self.kind != kind:
            raise UserInputError(f"this is a {self.kind} judge; a {kind} judge is needed")


def judge_sprites_accuracy(judge: Judge, seqs, size: int = JUDGE_SIZE, batch_size: int = 256) -> dict[str, float]:
    """Judge accuracy per attribute and action on labelled Sprites sequences seen at ``size``."""
    from ..data.sprites import ATTRIBUTES

    attr_pred, action_pred = [], []
    for _, x in seqs.batches(batch_size):
        attrs, action = judge.sprites(round_trip(x, size))
        attr_pred.append(attrs.argmax(-1))
        action_pred.append(action.argmax(-1))
    attr_pred = torch.cat(attr_pred)
    out = {name: accuracy(attr_pred[:, i], seqs.attrs[:, i]) for i, name in enumerate(ATTRIBUTES)}
    out["action"] = accuracy(torch.cat(action_pred), seqs.action)
    return out


def judge_digits_accuracy(judge: Judge, data, size: int = JUDGE_SIZE, batch_size: int = 64) -> dict[str, float]:
    """Frame-level digit accuracy on a one-digit Moving MNIST split seen at ``size``."""
    correct, total = 0.0, 0
    frames = torch.arange(int(data.set_sizes[0]), device=data.device)
    for start in range(0, len(data), batch_size):
        sets = torch.arange(start, min(start + batch_size, len(data)), device=data.device)
        probs = judge.digits(round_trip(data.frames(sets[:, None], frames), size))
        labels = data.labels[sets, 0, None].expand(-1, len(frames))
        correct += accuracy(probs.argmax(-1), labels) * labels.numel()
        total += labels.numel()
    return {"digit": correct / total}


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _one_cycle(settings: JudgeSettings, net: nn.Module) -> tuple[torch.optim.Optimizer, Any]:
    opt = torch.optim.Adam(net.parameters(), lr=settings.lr)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=settings.steps)


def _augment(x: Tensor, settings: JudgeSettings, generator: torch.Generator) -> Tensor:
    """The whole batch through the round trip at a resolution drawn from ``settings.resolutions``."""
    pick = int(torch.randint(len(settings.resolutions), (1,), generator=generator))
    return round_trip(x, settings.resolutions[pick])


def _sprites_data(settings: JudgeSettings, device: torch.device):
    from ..data.sprites import sprites_eval_sequences

    return (sprites_eval_sequences("train", device, settings.limit),
            sprites_eval_sequences("test", device, settings.test_limit))


def _digit_data(settings: JudgeSettings, device: torch.device):
    from ..data.moving_mnist import MovingMNIST

    train = MovingMNIST("train", device=device, digits=1,
                        **({"num_sequences": settings.limit} if settings.limit else {}))
    test = MovingMNIST("test", device=device, digits=1,
                       **({"num_sequences": settings.test_limit} if settings.test_limit else {}))
    return train, test


def _sprites_loss(net: SpritesJudgeNet, seqs, rows: Tensor, x: Tensor) -> Tensor:
    attr_logits, action_logits = net(x)
    attrs = seqs.attrs[rows][:, None, :].expand(-1, x.shape[1], -1)
    # Summed over the four attribute heads so each head gets the action head's gradient weight.
    attr_loss = F.cross_entropy(attr_logits.reshape(-1, N_ATTRIBUTE_VALUES), attrs.reshape(-1))
    return attr_loss * attrs.shape[-1] + F.cross_entropy(action_logits, seqs.action[rows])


def _digit_loss(net: DigitJudgeNet, data, sets: Tensor, x: Tensor) -> Tensor:
    return F.cross_entropy(net(x), data.labels[sets, 0])


def train_judge(settings: JudgeSettings, device: str | torch.device = "cpu", progress: bool = True) -> Judge:
    """Train a judge from scratch and measure its held-out accuracy at every training resolution."""
    from tqdm.auto import tqdm

    device = torch.device(device)
    train_data, test_data = (_sprites_data if settings.kind == "sprites" else _digit_data)(settings, device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        net = _build_net(settings).to(device)
    generator = torch.Generator(device).manual_seed(settings.seed + 1)
    opt, schedule = _one_cycle(settings, net)
    net.train()
    bar = tqdm(range(settings.steps), desc=f"{settings.kind} judge", unit="step", disable=not progress,
               dynamic_ncols=True)
    for step in bar:
        if settings.kind == "sprites":
            rows = torch.randint(len(train_data), (settings.batch_size,), generator=generator, device=device)
            loss = _sprites_loss(net, train_data, rows, _augment(train_data.frames(rows), settings, generator))
        else:
            sets = torch.randint(len(train_data), (settings.batch_size,), generator=generator, device=device)
            frames = torch.randint(int(train_data.set_sizes[0]), (settings.batch_size,), generator=generator,
                                   device=device)
            x = _augment(train_data.frames(sets, frames), settings, generator)
            loss = _digit_loss(net, train_data, sets, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    net.eval()
    judge = Judge(net, settings)
    score = judge_sprites_accuracy if settings.kind == "sprites" else judge_digits_accuracy
    judge.report = {"test_accuracy": {str(size): score(judge, test_data, size) for size in settings.resolutions},
                    "n_test": len(test_data)}
    return judge


# --------------------------------------------------------------------------------------------
# Files and cache
# --------------------------------------------------------------------------------------------

_FILE_KIND = "pyro-dvae-judge"


def cache_dir() -> Path:
    """Where judges are cached: ``$PYRO_DVAE_CACHE/judges`` or ``~/.cache/pyro-dvae/judges``."""
    root = os.environ.get("PYRO_DVAE_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "pyro-dvae") / "judges"


def data_version(kind: str) -> str:
    """A hash of the bundled data a judge learns from and of the protocol constants."""
    h = hashlib.sha1()
    if kind == "sprites":
        from ..data import sprites

        manifest = Path(sprites.__file__).parent / "assets" / "lpc" / "MANIFEST.tsv"
        h.update(manifest.read_bytes())
        h.update(repr((sprites.EVAL_CELLS, sprites.SPLIT_SEED, sprites.N_TRAIN_IDENTITIES)).encode())
    else:
        from ..data import moving_mnist

        h.update(Path(moving_mnist.DIGITS_FILE).read_bytes())
        h.update(repr((moving_mnist.STEP, moving_mnist.TEST_FRACTION, moving_mnist.DIGIT_SIZE)).encode())
    return h.hexdigest()[:12]


def judge_key(settings: JudgeSettings) -> str:
    """Cache key: the kind and a hash of (judge version, data version, settings)."""
    blob = json.dumps({"version": JUDGE_VERSION, "data": data_version(settings.kind),
                       "settings": settings.to_dict()}, sort_keys=True)
    return f"{settings.kind}-{hashlib.sha1(blob.encode()).hexdigest()[:16]}"


def save_judge(judge: Judge, path: str | Path) -> Path:
    """Write a judge (weights, settings, report) atomically and safely."""
    path = Path(path)
    save_checkpoint(path, {"kind": _FILE_KIND, "key": judge.key, "settings": judge.settings.to_dict(),
                           "report": judge.report, "model": judge.net.state_dict()})
    judge.path = path
    return path


def load_judge(path: str | Path, device: str | torch.device = "cpu") -> Judge:
    """Read a judge written by :func:`save_judge` (or ``pyro-dvae judge train``)."""
    payload = load_checkpoint(path, map_location=device)
    if payload.get("kind") != _FILE_KIND:
        raise UserInputError(f"{path} is a pyro-dvae checkpoint but not a judge; make one with `pyro-dvae judge train`")
    settings = JudgeSettings.from_dict(payload["settings"])
    net = _build_net(settings).to(device)
    try:
        net.load_state_dict(payload["model"])
    except RuntimeError:
        raise UserInputError(
            f"{path} was written by another version of the judge; rebuild it with `pyro-dvae judge train`"
        ) from None
    return Judge(net.eval(), settings, payload.get("report", {}), Path(path))


def get_judge(settings: JudgeSettings, device: str | torch.device = "cpu", progress: bool = True,
              retrain: bool = False) -> Judge:
    """The cached judge for ``settings``, trained and cached first if missing (or ``retrain``)."""
    path = cache_dir() / f"{judge_key(settings)}.pt"
    if path.is_file() and not retrain:
        return load_judge(path, device)
    judge = train_judge(settings, device, progress)
    try:
        save_judge(judge, path)
    except OSError as err:
        raise UserInputError(
            f"cannot write the judge cache {path} ({err.strerror}); set PYRO_DVAE_CACHE to a writable folder"
        ) from None
    return judge
