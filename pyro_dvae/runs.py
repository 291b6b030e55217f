"""A run directory and the trained model in it.

Layout (written by :func:`pyro_dvae.training.train`)::

    RUN/config.toml      resolved configuration (usable again with --config)
    RUN/metrics.jsonl    one JSON object per log line: step, split, elbo_per_frame, ...
    RUN/checkpoint.pt    latest good checkpoint (config, weights, optimiser, RNG, step)
    RUN/figures/*.png    reconstructions, prior samples, latent manifold, training curves
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .config import RunConfig
from .data import FrameSets, load_frame_sets
from .errors import UserInputError
from .models import get_family
from .models.base import SequenceModel

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
FIGURES_DIR = "figures"


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` means CUDA when present, else CPU; an unavailable CUDA request is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserInputError(f"unknown device {name!r}; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda requested but no CUDA GPU is available; use --device cpu")
    return device


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Run:
    """A trained model of any family with its configuration, step and run directory."""

    path: Path
    config: RunConfig
    model: SequenceModel
    step: int

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Run:
        """Load the latest checkpoint of a run directory (or a checkpoint file) onto ``device``."""
        path = Path(path)
        if not path.exists():
            raise UserInputError(f"run directory {path} does not exist; pass the --out folder of `pyro-dvae train`")
        ckpt_path = path / CHECKPOINT_FILE if path.is_dir() else path
        if path.is_dir() and not ckpt_path.is_file():
            raise UserInputError(
                f"{path} is not a run directory (no {CHECKPOINT_FILE}); pass the --out folder of `pyro-dvae train`"
            )
        torch_device = resolve_device(device)
        payload = load_checkpoint(ckpt_path, map_location=torch_device)
        config = RunConfig.from_dict(payload["config"])
        model = get_family(config.model.family).build(config.model).to(torch_device)
        try:
            model.load_state_dict(payload["model"])
        except RuntimeError:
            priors = " / ".join(repr(getattr(config.model, name)) for name in ("z_prior", "f_prior")
                                if hasattr(config.model, name))
            raise UserInputError(
                f"{ckpt_path} weights do not match its config: a prior registered under the name "
                f"{priors} differs from the one it was trained with, or the file is damaged; "
                "register the original prior before loading"
            ) from None
        model.eval()
        return cls(ckpt_path.parent, config, model, int(payload["step"]))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def figures_dir(self) -> Path:
        return self.path / FIGURES_DIR

    def data(self, split: str = "test", source: str | None = None, *, ordered: bool | None = None,
             **options) -> FrameSets:
        """The run's data source (or another one) at the model's image size, on its device.

        ``ordered``: the view whose sets are sequences in temporal order (for Sprites: the action
        sequences); by default the view the run's family trains on.
        """
        merged = {**self.config.data.options, **options} if source is None else options
        ordered = self.model.ordered if ordered is None else ordered
        return load_frame_sets(source or self.config.data.source, split, image_size=self.config.model.image_size,
                               device=self.device, ordered=ordered, **merged)

    def metrics(self) -> list[dict]:
        return read_metrics(self.path / METRICS_FILE)


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Load a trained run from its directory (see :class:`Run`)."""
    return Run.load(path, device)
