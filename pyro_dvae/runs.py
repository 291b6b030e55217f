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

from . import pretrained
from .atomic import is_locked
from .checkpoint import CHECKPOINT_FILE, TRAINING_WEIGHTS, load_checkpoint
from .config import RunConfig
from .data import FrameSets, load_frame_sets
from .errors import UserInputError
from .models import get_family
from .models.base import SequenceModel

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
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
    """The records of a metrics.jsonl; a line that is not a whole record (the torn last line of
    a killed write, say) is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and isinstance(record.get("split"), str):
            records.append(record)
    return records


def no_checkpoint_error(path: Path) -> UserInputError:
    """What to tell someone who passed a folder without a checkpoint: a run that stopped before its
    first checkpoint (its config.toml is there), or not a run at all."""
    if (path / CONFIG_FILE).is_file():
        return UserInputError(f"the run in {path} stopped before its first checkpoint, so there is nothing to load "
                              f"or resume; train it again (`pyro-dvae train --config {path / CONFIG_FILE} --out DIR`)")
    return UserInputError(f"{path} is not a run directory (no {CHECKPOINT_FILE}); pass the --out folder of "
                          "`pyro-dvae train`")


def read_run_checkpoint(path: Path, map_location: str | torch.device = "cpu",
                        for_resume: bool = False) -> tuple[dict, RunConfig]:
    """A run's checkpoint and its validated config; anything else (a judge file, a file with other
    keys, a config with wrong types or values) is a one-line user error before any work starts."""
    payload = load_checkpoint(path, map_location=map_location)
    if payload.get("kind") == "pyro-dvae-judge":
        raise UserInputError(f"{path} is a judge file, not a run's checkpoint; pass it to `pyro-dvae evaluate "
                             "--judge` and pass a run directory of `pyro-dvae train` here")
    needed = {"config": dict, "step": int, "model": dict}
    if TRAINING_WEIGHTS in payload:  # a run that averages its weights: training continues from these
        needed[TRAINING_WEIGHTS] = dict
    if for_resume and "release" not in payload:  # a shipped model's copy has weights only
        needed |= {"optimizer": dict, "rng": dict}
    wrong = [key for key, kind in needed.items() if not isinstance(payload.get(key), kind)]
    if not wrong and for_resume and "rng" in payload:
        # rng: rank 0's random state; rng_ranks: every rank's (runs trained under torchrun).
        states = [("rng", payload["rng"])]
        states += [(f"rng_ranks[{i}]", r) for i, r in enumerate(payload.get("rng_ranks", []))]
        if not isinstance(payload.get("rng_ranks", []), list) or not isinstance(payload.get("world_size", 1), int):
            states.append(("rng_ranks", None))
        wrong = list(dict.fromkeys(
            f"{name}.{k}" if isinstance(rng, dict) else name for name, rng in states
            for k in ("torch", "batches") if not isinstance(rng, dict) or not isinstance(rng.get(k), torch.Tensor)))
    if wrong or payload["step"] < 0:
        raise UserInputError(f"{path} is not a complete run checkpoint ({', '.join(wrong) or 'step'} missing or "
                             "malformed); pass the checkpoint.pt of a `pyro-dvae train` run")
    try:
        config = RunConfig.from_dict(payload["config"]).validate()
    except UserInputError as err:
        raise UserInputError(f"{path} holds an invalid config: {err}") from None
    return payload, config


def load_weights(model: torch.nn.Module, state: dict, path: Path, model_config: object = None) -> None:
    """``model.load_state_dict(state)`` with the first difference named when the two disagree."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [name for name in expected if name in state and (not isinstance(state[name], torch.Tensor)
                                                              or state[name].shape != expected[name].shape)]
    if not (missing or extra or shapes):
        model.load_state_dict(state)
        return
    if shapes:
        name = shapes[0]
        found = tuple(state[name].shape) if isinstance(state[name], torch.Tensor) else type(state[name]).__name__
        problem = f"{name} is {found} in the file but {tuple(expected[name].shape)} for its config"
    else:
        problem = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
    priors = " / ".join(repr(getattr(model_config, n)) for n in ("z_prior", "f_prior") if hasattr(model_config, n))
    hint = f"; if a prior registered as {priors} changed since training, register the original" if priors else ""
    raise UserInputError(f"{path}: weights do not match its config ({problem}): the file is damaged or was "
                         f"edited{hint}")


@dataclass
class Run:
    """A trained model of any family with its configuration, step and run directory."""

    path: Path
    config: RunConfig
    model: SequenceModel
    step: int
    #: ``pretrained:NAME`` for a model shipped in the package (read-only), else None.
    reference: str | None = None

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Run:
        """Load the latest checkpoint of a run directory (or a checkpoint file, or a shipped model,
        ``pretrained:NAME``) onto ``device``."""
        if pretrained.is_reference(path):
            run = cls.load(pretrained.resolve(str(path)), device)
            run.reference = str(path)
            return run
        path = Path(path)
        if not path.exists():
            raise UserInputError(f"run directory {path} does not exist; pass the --out folder of `pyro-dvae train`")
        ckpt_path = path / CHECKPOINT_FILE if path.is_dir() else path
        if path.is_dir() and not ckpt_path.is_file():
            raise no_checkpoint_error(path)
        torch_device = resolve_device(device)
        payload, config = read_run_checkpoint(ckpt_path, torch_device)
        model = get_family(config.model.family).build(config.model).to(torch_device)
        load_weights(model, payload["model"], ckpt_path, config.model)
        model.eval()
        return cls(ckpt_path.parent, config, model, int(payload["step"]))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def figures_dir(self) -> Path:
        return self.path / FIGURES_DIR

    @property
    def name(self) -> str:
        """How commands name the run: its folder, or its ``pretrained:NAME`` reference."""
        return self.reference or str(self.path)

    def output_dir(self, kind: str) -> Path:
        """Where a command writes its ``kind`` of output by default: inside the run directory, or for
        a shipped model (read-only) in ``runs/pretrained-NAME/``."""
        return (pretrained.output_folder(self.reference) if self.reference else self.path) / kind

    def writable(self, what: str) -> None:
        """Refuse to write ``what`` into a shipped model's folder (one line: copy it first)."""
        if self.reference:
            raise pretrained.read_only(self.reference, what)

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


def describe(run: Run) -> str:
    """Which checkpoint a command read: the run and its step, and whether the run is training now
    (checkpoints are written whole and then renamed, so a reader always gets the last complete one)."""
    if run.reference:
        return f"{run.reference} at step {run.step} (shipped with the package: `pyro-dvae pretrained --show NAME`)"
    training = is_locked(run.path, f".{CHECKPOINT_FILE}.lock")
    return f"{run.path} at step {run.step}" + (" (training now: its last complete checkpoint)" if training else "")


def load_run(path: str | Path, device: str = "cpu") -> Run:
    """Load a trained run from its directory (see :class:`Run`)."""
    return Run.load(path, device)
