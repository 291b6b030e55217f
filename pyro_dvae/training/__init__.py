"""Training: the engine every run goes through, and the stages it trains.

``train(config, out)`` and ``resume(run_dir)`` train a model family (:class:`FamilyStage`); the
latent predictor of :mod:`pyro_dvae.prediction` is a second :class:`Stage` run by the same
:class:`Engine`. A new kind of stage subclasses :class:`Stage` and calls ``Engine(config, out,
stage).run()``.

* :mod:`.engine`: the loop and its bookkeeping (progress, metrics, checkpoints with every
  random state, exact resume, budgets, NaN and Ctrl-C, the directory lock, TensorBoard);
* :mod:`.stage`: what a run trains, its batches, what it fits after training, its figures;
* :mod:`.memory`: refusing a run that cannot fit, before it starts;
* :mod:`.interrupts`: Ctrl-C deferred to the space between two steps.
"""

from __future__ import annotations

from pathlib import Path

from .. import pretrained
from ..config import RunConfig, read_config_file
from ..errors import UserInputError
from ..runs import CHECKPOINT_FILE, CONFIG_FILE, Run, no_checkpoint_error, read_run_checkpoint
from .engine import Engine
from .interrupts import DeferredInterrupt
from .memory import check_memory, device_memory
from .stage import FamilyStage, Stage, StageFiles


def train(config: RunConfig, out: str | Path, *, progress: bool = True) -> Run:
    """Train a new model with ``config``; writes the run directory ``out`` and returns the run."""
    out = Path(out)
    if (out / CHECKPOINT_FILE).exists():
        raise UserInputError(f"{out} already holds a run; continue it with --resume {out} or pick another --out")
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file; pass a directory path")
    config = config.validate()
    return Engine(config, out, FamilyStage(config), progress).run()


def resume(run_dir: str | Path, steps: int | None = None, device: str | None = None, *,
           progress: bool = True, max_minutes: float | None = None, lr: float | None = None) -> Run:
    """Continue a run from its checkpoint up to ``steps`` total steps (default: its config's).

    ``max_minutes`` replaces the run's wall-clock budget for this session (0: none); ``lr`` its
    learning rate from here on (after a NaN, say; the run then is no longer bitwise the one it
    would have been).
    """
    if pretrained.is_reference(run_dir):
        raise pretrained.read_only(run_dir, "be resumed")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserInputError(f"run directory {run_dir} does not exist; pass the --out folder of a run")
    if not (run_dir / CHECKPOINT_FILE).is_file():
        raise no_checkpoint_error(run_dir)
    payload, config = read_run_checkpoint(run_dir / CHECKPOINT_FILE, for_resume=True)
    _check_same_run(run_dir, config)
    config = config.override("train", steps=steps, device=device, max_minutes=max_minutes, lr=lr).validate()
    if config.train.steps <= payload["step"]:
        raise UserInputError(
            f"{run_dir} is already at step {payload['step']}; pass --steps larger than that"
        )
    return Engine(config, run_dir, FamilyStage(config), progress).run(payload)


def _check_same_run(run_dir: Path, config: RunConfig) -> None:
    """Refuse a checkpoint copied in from another run: its config must be the run's own (config.toml,
    written when the run started; what a resume may change, steps, budget and device, aside)."""
    try:
        own = RunConfig.from_dict(read_config_file(run_dir / CONFIG_FILE))
    except UserInputError:
        return  # no readable config.toml: nothing to compare with
    session = {"steps": 0, "max_minutes": 0.0, "device": "auto", "lr": 1.0}  # what a resume may change
    if own.override("train", **session) != config.override("train", **session):
        mine, theirs = own.to_dict(), config.to_dict()
        differ = [f"{section}.{key}" for section in mine for key in mine[section]
                  if key not in session and mine[section][key] != theirs[section].get(key)]
        raise UserInputError(f"{run_dir / CHECKPOINT_FILE} belongs to another run (it differs from "
                             f"{run_dir / CONFIG_FILE} in {', '.join(differ) or 'its config'}); resume the run it "
                             "came from, or train this one anew")


__all__ = ["DeferredInterrupt", "Engine", "FamilyStage", "Stage", "StageFiles", "check_memory", "device_memory",
           "resume", "train"]
