"""Run configuration: model, training and data settings as dataclasses, named presets, TOML I/O.

The resolved configuration is stored in every run directory and inside every checkpoint, so that
loading a run never needs architecture flags (as nanoGPT does).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import tomli_w

from .errors import UserInputError
from .registry import FAMILIES

#: Largest seed: torch generators take 64-bit seeds and the trainer derives seed + 1, + 2, + 3.
MAX_SEED = 2**63 - 1
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")

LIKELIHOODS = ("bernoulli", "continuous-bernoulli", "gaussian", "gaussian-linear")
DECODERS = ("concat", "film", "mlp", "translate")
ELBOS = ("trace", "meanfield", "jit")
PRECISIONS = ("fp32", "bf16")
#: The family of configs and checkpoints that name none (those written before there were families).
DEFAULT_FAMILY = "dvae"


@dataclass
class ModelConfig:
    """Settings every model family shares: the frames and codes, and the shared convolutional
    networks (:mod:`pyro_dvae.nets`). ``family`` names the family (:mod:`pyro_dvae.models`).

    A family's own config subclasses this (or :class:`GenerativeConfig`) with the fields only it
    reads, so a run's ``[model]`` table holds exactly what its family reads.
    """

    family: str = DEFAULT_FAMILY
    image_size: int = 64
    channels: int = 3
    f_dim: int = 256  # static code (DrNet: content vector)
    z_dim: int = 2  # dynamic code per frame (DrNet: pose vector)
    frames: int = 3  # frames per training example: N compared pairwise (DVAE), T in a window (DSA)
    conv_width: int = 256  # filters of the frame feature convs and the decoder deconvs
    hidden: int = 512  # width of the dense layers
    # concat: the paper's linear [f, z] projection; film: f also modulates every deconv;
    # mlp: a hidden dense layer (width `hidden`) before the projection; translate: f draws a
    # canvas, z only shifts it (for data whose dynamics are a translation)
    decoder: str = "concat"
    # translate: the shift kernel's width is at most side/4, halved every this many training steps,
    # down to 0.7 px (0: the width is only learned)
    shift_sharpening: int = 0
    # translate: how many canvases f draws, each moved by its own point from z and combined by a
    # soft maximum (2 for two digits that move independently; 1: the single canvas)
    canvases: int = 1
    # Side of the pixel blocks folded into channels before the convolutions (1: none, the paper's).
    # 2: each 2x2 block becomes 4x the channels, losslessly, and the decoder draws them back the
    # same way (a sub-pixel convolution, Shi et al. 2016), so 64x64 frames cost the convolutions
    # of 32x32 ones
    space_to_depth: int = 1

    #: Fields that configs written by earlier versions may hold and this family no longer reads:
    #: dropped when such a config is loaded.
    retired: ClassVar[tuple[str, ...]] = ()

    def validate(self) -> None:
        """Check the shared fields; families extend this with their own checks."""
        check_types(self, "model")
        if self.image_size not in (16, 32, 64, 128):
            raise UserInputError(f"image_size {self.image_size} unsupported; use 16, 32, 64 or 128")
        if self.channels not in (1, 3):
            raise UserInputError(f"channels must be 1 or 3, got {self.channels}")
        if self.frames < 1:
            raise UserInputError(f"frames must be >= 1, got {self.frames}")
        for name in ("f_dim", "z_dim", "conv_width", "hidden"):
            if getattr(self, name) < 1:
                raise UserInputError(f"{name} must be positive, got {getattr(self, name)}")
        if self.decoder not in DECODERS:
            raise UserInputError(f"unknown decoder {self.decoder!r}; use one of {', '.join(DECODERS)}")
        if self.shift_sharpening < 0:
            raise UserInputError(f"shift_sharpening must be >= 0 steps (0: off), got {self.shift_sharpening}")
        if self.canvases < 1 or (self.canvases > 1 and self.decoder != "translate"):
            raise UserInputError(f"canvases={self.canvases}: use 1, or more with decoder='translate'")
        if self.space_to_depth not in (1, 2, 4) or self.image_size // self.space_to_depth < 8:
            raise UserInputError(f"space_to_depth must be 1, 2 or 4 and leave frames of at least 8x8 "
                                 f"(image_size {self.image_size}), got {self.space_to_depth}")


@dataclass
class GenerativeConfig(ModelConfig):
    """The fields of families with a pixel likelihood p(x | f, z) and a prior p(f) (the DVAE, DSA)."""

    likelihood: str = "bernoulli"
    pixel_scale: float = 0.0  # gaussian likelihoods: fixed pixel noise scale, or 0 to learn one
    f_prior: str = "standard-normal"  # p(f), a name registered in pyro_dvae.priors

    def validate(self) -> None:
        super().validate()
        if self.likelihood not in LIKELIHOODS:
            raise UserInputError(
                f"unknown likelihood {self.likelihood!r}; use one of {', '.join(LIKELIHOODS)}"
            )
        if not self.pixel_scale >= 0:
            raise UserInputError(f"pixel_scale must be >= 0 (0: learned), got {self.pixel_scale}")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping of an SVI run."""

    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    elbo: str = "trace"  # trace: Monte Carlo KLs; meanfield: analytic KLs; jit: Pyro's JitTrace_ELBO
    kl_warmup: int = 0  # steps over which the KL terms are scaled up from 0 to 1 (0: none)
    f_kl_weight: float = 1.0  # beta_f: weight of the static code's KL term in training (1: the ELBO)
    # beta_z: weight of the dynamic codes' KL term in training (1: the ELBO). With beta_f it sets
    # what the codes may spend against the likelihood, whose size grows with the pixels of a frame
    z_kl_weight: float = 1.0
    max_minutes: float = 0.0  # wall-clock budget: the run ends cleanly when it is spent (0: none)
    # The last fraction of the run (of its steps, or of this call's wall-clock budget, whichever ends
    # it first) is trained at lr * lr_anneal_factor (0: none). A budgeted run cannot know its steps
    # in advance, so the anneal follows whichever bound is nearer to ending the run.
    lr_anneal: float = 0.0
    lr_anneal_factor: float = 0.1
    # Decay per step of a moving average of the weights, which the run keeps and uses after training
    # (pyro_dvae/training/averaging.py; 0: none, the trained weights themselves; e.g. 0.999)
    weight_average: float = 0.0
    log_every: int = 50
    eval_every: int = 500
    checkpoint_every: int = 500
    eval_batches: int = 4
    device: str = "auto"
    tensorboard: bool = False  # also log the metrics as TensorBoard scalars in RUN/tensorboard
    # The fast path (pyro_dvae.fastpath): how the networks run, not what they compute.
    precision: str = "fp32"  # fp32, or bf16: the networks under bfloat16 autocast, the ELBO in float32
    channels_last: bool = False  # convolutions in NHWC layout
    compile: bool = False  # torch.compile each network

    def validate(self) -> None:
        check_types(self, "train")
        for name in ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every", "eval_batches"):
            if getattr(self, name) < 1:
                raise UserInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kl_warmup < 0:
            raise UserInputError(f"kl_warmup must be >= 0 (0: none), got {self.kl_warmup}")
        if not 0 <= self.seed <= MAX_SEED:
            raise UserInputError(f"seed must be between 0 and 2**63 - 1, got {self.seed}")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise UserInputError(f"unknown device {self.device!r}; use auto, cpu, cuda, cuda:N or mps")
        if not self.lr > 0:
            raise UserInputError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.lr_anneal < 1:
            raise UserInputError(f"lr_anneal is a share of the run, in [0, 1) (0: none), got {self.lr_anneal}")
        if not 0 < self.lr_anneal_factor <= 1:
            raise UserInputError(f"lr_anneal_factor must be in (0, 1], got {self.lr_anneal_factor}")
        if not 0 <= self.weight_average < 1:
            raise UserInputError(f"weight_average is a decay per step, in [0, 1) (0: none), got {self.weight_average}")
        if not self.max_minutes >= 0:
            raise UserInputError(f"max_minutes must be >= 0 (0: no budget), got {self.max_minutes}")
        if self.elbo not in ELBOS:
            raise UserInputError(f"unknown elbo {self.elbo!r}; use one of {', '.join(ELBOS)}")
        if self.precision not in PRECISIONS:
            raise UserInputError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        if not self.f_kl_weight > 0:
            raise UserInputError(f"f_kl_weight must be positive (1: the ELBO), got {self.f_kl_weight}")
        if not self.z_kl_weight > 0:
            raise UserInputError(f"z_kl_weight must be positive (1: the ELBO), got {self.z_kl_weight}")
        if self.elbo == "jit" and (self.f_kl_weight != 1 or self.z_kl_weight != 1):
            raise UserInputError("--elbo jit compiles the plain ELBO; set the KL weights to 1 or use --elbo trace")
        if self.elbo == "jit" and self.kl_warmup:
            raise UserInputError("--elbo jit compiles a fixed KL weight; set --kl-warmup 0 or use --elbo trace")


@dataclass
class DataConfig:
    """Where training frames come from: a built-in source name or a path, plus its options."""

    source: str = "sprites"
    options: dict[str, Any] = field(default_factory=dict)


def _default_model() -> ModelConfig:
    return FAMILIES.get(DEFAULT_FAMILY).config_class()


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=_default_model)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self) -> RunConfig:
        """Types and ranges of every field, wherever the values came from (flags, a TOML file, a
        checkpoint): one place, before any work starts."""
        self.model.validate()
        self.train.validate()
        check_types(self.data, "data")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Build from sections; ``[model] family`` picks the model's config class (default dvae,
        so configs and checkpoints written before there were families load as they did)."""
        unknown = set(d) - {"model", "train", "data"}
        if unknown:
            raise UserInputError(f"unknown config section(s) {sorted(unknown)}; use model, train, data")
        model = d.get("model", {})
        if not isinstance(model, dict):
            raise UserInputError(f"[model] must be a table of settings, got {model!r}")
        model = dict(model)
        family = FAMILIES.get(model.setdefault("family", DEFAULT_FAMILY))
        for name in family.config_class.retired:
            model.pop(name, None)
        data = _build(DataConfig, d.get("data", {}), "data")
        check_types(data, "data")  # at once: a string where a table of options belongs is merged next
        return cls(
            model=_build(family.config_class, model, "model"),
            train=_build(TrainConfig, d.get("train", {}), "train"),
            data=data,
        )

    def override(self, section: str, **values: Any) -> RunConfig:
        """A copy with the given (non-None) fields of one section replaced."""
        values = {k: v for k, v in values.items() if v is not None}
        current = getattr(self, section)
        names = {f.name for f in dataclasses.fields(current)}
        unknown = sorted(set(values) - names)
        if unknown:
            owner = f"the {self.model.family} model" if section == "model" else f"[{section}]"
            raise UserInputError(
                f"{owner} has no setting {', '.join(unknown)}; its settings: {', '.join(sorted(names))}"
            )
        if section == "model" and values.get("family", self.model.family) != self.model.family:
            raise UserInputError("a config's model family cannot be overridden; start from preset(..., family=...)")
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **values)})


_TYPE_NAMES = {int: "an integer", float: "a number", str: "text", bool: "true or false", dict: "a table"}


def _is(value: Any, kind: Any) -> bool:
    """Whether ``value`` has the declared type ``kind`` (int excludes bool; float takes int too)."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        return any(_is(value, k) for k in typing.get_args(kind))
    kind = typing.get_origin(kind) or kind
    if kind is Any:
        return True
    if kind is type(None):
        return value is None
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, kind) if isinstance(kind, type) else True


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        return " or ".join(_type_name(k) for k in typing.get_args(kind))
    kind = typing.get_origin(kind) or kind
    return "nothing" if kind is type(None) else _TYPE_NAMES.get(kind, getattr(kind, "__name__", str(kind)))


def check_types(obj: Any, section: str) -> None:
    """Every field of a config dataclass holds a value of its declared type: a TOML ``steps = "3"``
    or ``batch_size = 2.5`` is a one-line error here instead of a crash later."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not _is(value, hints[f.name]):
            raise UserInputError(f"[{section}] {f.name} must be {_type_name(hints[f.name])}, got {value!r}")


def _build(cls, values: dict[str, Any], section: str):
    if not isinstance(values, dict):
        raise UserInputError(f"[{section}] must be a table of settings, got {values!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise UserInputError(
            f"unknown key(s) {sorted(unknown)} in [{section}]; known: {', '.join(sorted(names))}"
        )
    return cls(**values)


#: Preset names every model family defines: ``paper`` (the family's published setting),
#: ``cpu`` (chosen by measurement for a first run on a laptop-class CPU) and ``tiny`` (tests).
PRESETS = ("paper", "cpu", "tiny")


def preset_settings(presets: dict[str, dict[str, dict[str, Any]]], name: str, kind: str,
                    cpu_by_kind: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """A copy of a family's preset ``name``, with, for the ``cpu`` preset, the changes measured best
    on this kind of data (``data.kind_of(source)``; ``cpu_by_kind``: kind -> section -> values)
    merged in. Every family's preset function starts here, so that a table of measured changes
    means one thing."""
    settings = {section: dict(values) for section, values in presets[name].items()}
    if name == "cpu":
        for section, values in cpu_by_kind.get(kind, {}).items():
            settings.setdefault(section, {}).update(values)
    return settings


def preset(name: str, source: str = "sprites", family: str = DEFAULT_FAMILY) -> RunConfig:
    """The named preset of a model family for a data source (channels follow the source)."""
    if name not in PRESETS:
        raise UserInputError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    fam = FAMILIES.get(family)
    settings = fam.preset(name, source)
    return RunConfig(fam.config_class(**settings.get("model", {})), TrainConfig(**settings.get("train", {})),
                     DataConfig(source=source, options=dict(settings.get("data", {}))))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (or JSON) config file into a dict of sections."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise UserInputError(f"cannot read config file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise UserInputError(f"config file {path} is not text (not UTF-8); pass a TOML file") from None
    try:
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as err:
        raise UserInputError(f"config file {path} is not valid {path.suffix[1:] or 'TOML'}: {err}") from None


def to_toml(config: RunConfig) -> str:
    """TOML text for a config, written by tomli-w so that every value reads back as it was."""
    return tomli_w.dumps(config.to_dict())
