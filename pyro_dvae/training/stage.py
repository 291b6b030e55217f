"""Stages: what a training run trains. The engine (:mod:`.engine`) runs any stage.

A stage says what is built and optimised (a model and its training plan), which batches it
trains on, what its checkpoint holds beyond the engine's, what is fitted when training ends and
which figures it draws. The engine owns everything every run needs: the loop, logging, the
checkpoint and its random states, budgets, NaN and Ctrl-C handling, the directory lock.

:class:`FamilyStage` trains a model family (the first stage of every run); the latent predictor
of :mod:`pyro_dvae.prediction` is a second stage written against the same seam.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .. import plotting, posterior
from ..config import RunConfig
from ..data import FrameSets, load_frame_sets
from ..fastpath import prepare
from ..models import get_family
from ..runs import CHECKPOINT_FILE, CONFIG_FILE, FIGURES_DIR, METRICS_FILE, Run, read_metrics
from .memory import check_memory

if TYPE_CHECKING:
    from .engine import Engine


@dataclass(frozen=True)
class StageFiles:
    """Where a stage keeps its files in the run directory (``config``: None if it writes none, so the
    run's own config.toml stays)."""

    checkpoint: str = CHECKPOINT_FILE
    metrics: str = METRICS_FILE
    tensorboard: str = "tensorboard"
    config: str | None = CONFIG_FILE


class Stage:
    """What the engine trains. Subclasses implement :meth:`build`; the rest has defaults.

    ``plan`` objects follow :mod:`pyro_dvae.models.plans`: ``step(x, step) -> loss``,
    ``heldout(x)``, ``kl_scale(step)``, ``metric``, ``state_dict()`` / ``load_state_dict()``, and
    optionally ``frames_per_example`` and ``distribute(device, world_size)``.
    """

    files = StageFiles()
    #: The command that continues a run of this stage (in messages).
    resume_command = "pyro-dvae train --resume"
    #: Whether batches are ordered windows (True) or unordered N-frame subsets.
    ordered = False

    def window(self, config: RunConfig) -> int:
        """Frames per training example: N of a set, or the length T of an ordered window."""
        return config.model.frames

    def check_memory(self, config: RunConfig, device: torch.device) -> None:
        """Refuse a run that cannot fit on ``device`` (a one-line error), before any work."""

    def open_data(self, config: RunConfig, split: str, device: torch.device, progress: bool = True) -> FrameSets:
        return load_frame_sets(config.data.source, split, image_size=config.model.image_size, device=device,
                               ordered=self.ordered, progress=progress, **config.data.options)

    def batch(self, config: RunConfig, data: FrameSets, generator: torch.Generator, size: int) -> torch.Tensor:
        """One training (or held-out) batch of ``size`` examples."""
        if self.ordered:
            return data.sample_windows(size, self.window(config), generator)
        return data.sample(size, self.window(config), generator)

    def build(self, config: RunConfig, device: torch.device) -> tuple[nn.Module, Any]:
        """The module that is trained and checkpointed, on ``device``, and its training plan."""
        raise NotImplementedError

    def extra_payload(self) -> dict:
        """More entries for the checkpoint (a stage's own settings)."""
        return {}

    def after_training(self, engine: Engine) -> list[str]:
        """Fit what is fitted once training ends; one line per fit (none: nothing to save again)."""
        return []

    def figures(self, engine: Engine) -> None:
        """Draw the stage's figures into the run directory."""

    def result(self, engine: Engine, step: int) -> Any:
        """What ``Engine.run`` returns."""
        return engine.model


class FamilyStage(Stage):
    """Trains the model family that the config names (its model and its plan)."""

    def __init__(self, config: RunConfig):
        self.family = get_family(config.model.family)
        self.ordered = self.family.ordered

    def check_memory(self, config: RunConfig, device: torch.device) -> None:
        check_memory(config, device, self.family.build)

    def build(self, config: RunConfig, device: torch.device) -> tuple[nn.Module, Any]:
        model = self.family.build(config.model).to(device)
        prepare(model, config.train)
        return model, self.family.plan_class(model, config.train)

    def after_training(self, engine: Engine) -> list[str]:
        """The model's fits after training (two-stage priors), each with a generator of its own."""
        cfg = engine.config.train
        return engine.model.fit_after_training(engine.train_data, self.window(engine.config), cfg.seed,
                                               cfg.batch_size)

    def result(self, engine: Engine, step: int) -> Run:
        return Run(engine.out, engine.config, engine.model, step)

    @torch.no_grad()
    def figures(self, engine: Engine) -> None:
        """Reconstructions, prior samples and latent manifold (where the family has priors), curves."""
        fig_dir, model, seed, device = engine.out / FIGURES_DIR, engine.model, engine.config.train.seed, engine.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            rng = torch.Generator(device).manual_seed(seed + 3)
            test = engine.test_data
            n_show = min(8, int(test.set_sizes.min()))
            x = (test.sample_windows if self.ordered else test.sample)(6, n_show, rng)
            recon = posterior.reconstruct(model, x, rng)
            pairs = torch.stack([x, recon], 1).flatten(0, 1)
            plotting.save_figure(plotting.frames_grid(
                pairs, "held-out sequences: data (odd rows) and reconstruction (even rows)",
                row_labels=[f"{kind} {i}" for i in range(6) for kind in ("data", "recon")]),
                fig_dir / "reconstructions.png")
            if model.can("sample_static") and model.can("sample_dynamics"):
                _, _, samples = posterior.sample_prior(model, 6, 8)
                plotting.save_figure(plotting.frames_grid(
                    samples, f"prior samples: f ~ p(f) per row, {model.dynamics_label} along the row"),
                    fig_dir / "prior_samples.png")
                f, z = posterior.encode(model, x[:4], rng)
                directions, names = posterior.figure_directions(z)  # z's axes, or its main directions
                plotting.save_figure(plotting.manifold_figure(
                    posterior.latent_manifold(model, f, 7, directions), axis_names=(names + ("-",))[:2]),
                    fig_dir / "latent_manifold.png")
        plotting.save_figure(plotting.training_curves(read_metrics(engine.out / self.files.metrics),
                                                      engine.plan.metric), fig_dir / "training_curves.png")
