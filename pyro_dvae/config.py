"""Run configuration: model, training and data settings as dataclasses, named presets, TOML I/O.

The resolved configuration is stored in every run directory and inside every checkpoint, so that
loading a run never needs architecture flags (as nanoGPT does).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserInputError

LIKELIHOODS = ("bernoulli", "continuous-bernoulli", "gaussian")
ELBOS = ("trace", "meanfield", "jit")


@dataclass
class ModelConfig:
    """Architecture of the generative model and the pairwise guide (paper appendix C)."""

    image_size: int = 64
    channels: int = 3
    f_dim: int = 256
    z_dim: int = 2
    frames: int = 3  # N: frames compared pairwise to infer f
    conv_width: int = 256  # filters of the frame feature convs and the decoder deconvs
    pair_width: int = 512  # filters of Conv_C (pair maps) and Conv_F
    hidden: int = 512  # width of the dense layers
    likelihood: str = "bernoulli"
    z_prior: str = "conditional-gaussian"  # p(z|f), a name registered in pyro_dvae.priors
    f_prior: str = "standard-normal"  # p(f), likewise

    def validate(self) -> None:
        if self.image_size not in (16, 32, 64, 128):
            raise UserInputError(f"image_size {self.image_size} unsupported; use 16, 32, 64 or 128")
        if self.channels not in (1, 3):
            raise UserInputError(f"channels must be 1 or 3, got {self.channels}")
        if self.frames < 2:
            raise UserInputError(f"frames (N) must be >= 2 for pairwise comparison, got {self.frames}")
        for name in ("f_dim", "z_dim", "conv_width", "pair_width", "hidden"):
            if getattr(self, name) < 1:
                raise UserInputError(f"{name} must be positive, got {getattr(self, name)}")
        if self.likelihood not in LIKELIHOODS:
            raise UserInputError(
                f"unknown likelihood {self.likelihood!r}; use one of {', '.join(LIKELIHOODS)}"
            )


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping of an SVI run."""

    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    elbo: str = "trace"  # trace: Monte Carlo KLs; meanfield: analytic KLs; jit: Pyro's JitTrace_ELBO
    kl_warmup: int = 0  # steps over which the KL terms are scaled up from 0 to 1 (0: none)
    log_every: int = 50
    eval_every: int = 500
    checkpoint_every: int = 500
    eval_batches: int = 4
    device: str = "auto"

    def validate(self) -> None:
        for name in ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise UserInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UserInputError(f"lr must be positive, got {self.lr}")
        if self.elbo not in ELBOS:
            raise UserInputError(f"unknown elbo {self.elbo!r}; use one of {', '.join(ELBOS)}")
        if self.elbo == "jit" and self.kl_warmup:
            raise UserInputError("--elbo jit compiles a fixed KL weight; set --kl-warmup 0 or use --elbo trace")


@dataclass
class DataConfig:
    """Where training frames come from: a built-in source name or a path, plus its options."""

    source: str = "sprites"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self) -> RunConfig:
        self.model.validate()
        self.train.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        unknown = set(d) - {"model", "train", "data"}
        if unknown:
            raise UserInputError(f"unknown config section(s) {sorted(unknown)}; use model, train, data")
        return cls(
            model=_build(ModelConfig, d.get("model", {}), "model"),
            train=_build(TrainConfig, d.get("train", {}), "train"),
            data=_build(DataConfig, d.get("data", {}), "data"),
        )

    def override(self, section: str, **values: Any) -> RunConfig:
        """A copy with the given (non-None) fields of one section replaced."""
        values = {k: v for k, v in values.items() if v is not None}
        return dataclasses.replace(
            self, **{section: dataclasses.replace(getattr(self, section), **values)}
        )


def _build(cls, values: dict[str, Any], section: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise UserInputError(
            f"unknown key(s) {sorted(unknown)} in [{section}]; known: {', '.join(sorted(names))}"
        )
    return cls(**values)


# Presets. `paper` is appendix C of Helminger et al. 2018; `cpu` was chosen by measurement
# (benchmarks/step_time.py) so that the default Sprites run trains in about 15 minutes on 2 cores;
# `tiny` exists for tests and smoke runs.
_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "model": dict(image_size=64, f_dim=256, z_dim=2, frames=3, conv_width=256,
                      pair_width=512, hidden=512),
        "train": dict(steps=43_000, batch_size=120, lr=1e-4, log_every=100, eval_every=2000,
                      checkpoint_every=2000),
    },
    "cpu": {
        "model": dict(image_size=32, f_dim=64, z_dim=2, frames=3, conv_width=64,
                      pair_width=64, hidden=256),
        "train": dict(steps=14_000, batch_size=32, lr=1e-3, kl_warmup=500, log_every=50,
                      eval_every=1000, checkpoint_every=500),
    },
    "tiny": {
        "model": dict(image_size=16, f_dim=8, z_dim=2, frames=3, conv_width=8, pair_width=8,
                      hidden=32),
        "train": dict(steps=20, batch_size=8, lr=1e-3, log_every=5, eval_every=10,
                      checkpoint_every=10, eval_batches=1),
    },
}
PRESETS = tuple(_PRESETS)

# Paper settings that depend on the data set (appendix A): f is 64-dimensional for Moving MNIST.
_PAPER_F_DIM = {"sprites": 256, "moving-mnist": 64, "moving-mnist-1": 64}
_PAPER_STEPS = {"sprites": 43_000, "moving-mnist": 60_000, "moving-mnist-1": 60_000}


def preset(name: str, source: str = "sprites") -> RunConfig:
    """The named preset for a data source (channels follow the source; paper dims follow the paper)."""
    if name not in _PRESETS:
        raise UserInputError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    p = _PRESETS[name]
    model = dict(p["model"])
    train = dict(p["train"])
    if name == "paper":
        model["f_dim"] = _PAPER_F_DIM.get(source, model["f_dim"])
        train["steps"] = _PAPER_STEPS.get(source, train["steps"])
    return RunConfig(ModelConfig(**model), TrainConfig(**train), DataConfig(source=source))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (or JSON) config file into a dict of sections."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise UserInputError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as err:
        raise UserInputError(f"config file {path} is not valid {path.suffix[1:] or 'TOML'}: {err}") from None


def to_toml(config: RunConfig) -> str:
    """TOML text for a config (flat sections of scalars; data options as a sub-table)."""
    lines: list[str] = []
    for section, values in config.to_dict().items():
        options = values.pop("options", None)
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        if options:
            lines.append(f"\n[{section}.options]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in options.items()]
        lines.append("")
    return "\n".join(lines)
