"""The training loop of every model family, and its bookkeeping.

One loop for all families: it draws the batches the family asks for (unordered N-frame subsets
or ordered T-frame windows), hands them to the family's training plan
(:mod:`pyro_dvae.models.plans`: SVI for the Pyro families), and keeps progress, metrics,
checkpoints, exact resume, and NaN and Ctrl-C handling. Everything stays on the training device:
batches are rendered there, the loss is not read back in the step, and the first non-finite step
is recorded on the device too. The host reads the loss only every ``log_every`` steps.

Under torchrun the same loop runs in every process, data-parallel (:mod:`pyro_dvae.distributed`):
each rank trains on its share of the global batch from its own random stream, the plan averages
gradients with DDP, the ranks agree after every step on whether to stop (Ctrl-C, the budget), and
rank 0 alone writes the run directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import plotting, posterior
from .atomic import DirectoryLock, write_text_atomic
from .checkpoint import save_checkpoint
from .config import RunConfig, read_config_file, to_toml
from .data import FrameSets, load_frame_sets
from .distributed import Ranks, rank_seed
from .errors import TrainingDiverged, TrainingFailed, TrainingInterrupted, UserInputError
from .fastpath import prepare
from .models import get_family
from .runs import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    FIGURES_DIR,
    METRICS_FILE,
    Run,
    load_weights,
    no_checkpoint_error,
    read_metrics,
    read_run_checkpoint,
    resolve_device,
)


def train(config: RunConfig, out: str | Path, *, progress: bool = True) -> Run:
    """Train a new model with ``config``; writes the run directory ``out`` and returns the run."""
    out = Path(out)
    if (out / CHECKPOINT_FILE).exists():
        raise UserInputError(f"{out} already holds a run; continue it with --resume {out} or pick another --out")
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file; pass a directory path")
    return _Trainer(config.validate(), out, progress).run()


def resume(run_dir: str | Path, steps: int | None = None, device: str | None = None, *,
           progress: bool = True, max_minutes: float | None = None) -> Run:
    """Continue a run from its checkpoint up to ``steps`` total steps (default: its config's).

    ``max_minutes`` replaces the run's wall-clock budget for this session (0: none).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserInputError(f"run directory {run_dir} does not exist; pass the --out folder of a run")
    if not (run_dir / CHECKPOINT_FILE).is_file():
        raise no_checkpoint_error(run_dir)
    payload, config = read_run_checkpoint(run_dir / CHECKPOINT_FILE, for_resume=True)
    _check_same_run(run_dir, config)
    config = config.override("train", steps=steps, device=device, max_minutes=max_minutes).validate()
    if config.train.steps <= payload["step"]:
        raise UserInputError(
            f"{run_dir} is already at step {payload['step']}; pass --steps larger than that"
        )
    return _Trainer(config, run_dir, progress).run(payload)


def _check_same_run(run_dir: Path, config: RunConfig) -> None:
    """Refuse a checkpoint copied in from another run: its config must be the run's own (config.toml,
    written when the run started; what a resume may change, steps, budget and device, aside)."""
    try:
        own = RunConfig.from_dict(read_config_file(run_dir / CONFIG_FILE))
    except UserInputError:
        return  # no readable config.toml: nothing to compare with
    session = {"steps": 0, "max_minutes": 0.0, "device": "auto"}
    if own.override("train", **session) != config.override("train", **session):
        mine, theirs = own.to_dict(), config.to_dict()
        differ = [f"{section}.{key}" for section in mine for key in mine[section]
                  if key not in session and mine[section][key] != theirs[section].get(key)]
        raise UserInputError(f"{run_dir / CHECKPOINT_FILE} belongs to another run (it differs from "
                             f"{run_dir / CONFIG_FILE} in {', '.join(differ) or 'its config'}); resume the run it "
                             "came from, or train this one anew")


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory the device has (None where it cannot be told)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            return None
    return None


def check_memory(config: RunConfig, device: torch.device) -> None:
    """Refuse a run that cannot fit, with an estimate, before any memory is taken.

    The estimate is a lower bound on one training step: the parameters with their gradients and
    Adam's two moments (counted on a model built on the meta device, which allocates nothing), and
    a batch of input frames with the first layer's feature maps, forward and backward. A run
    refused here could not have run; one that passes may still need more.
    """
    have = device_memory(device)
    if have is None:
        return
    m, t = config.model, config.train
    try:
        with torch.device("meta"):
            parameters = sum(p.numel() for p in get_family(m.family).build(m).parameters())
    except Exception:  # a plugin family that cannot be built on the meta device: count the batch only
        parameters = 0
    per_frame = m.channels * m.image_size**2 + m.conv_width * (m.image_size // 2) ** 2
    need = 4 * (4 * parameters + 2 * t.batch_size * m.frames * per_frame)
    if need > have:
        raise UserInputError(
            f"this run needs at least {need / 2**30:,.1f} GiB for one training step ({parameters / 1e6:,.1f}M "
            f"parameters, batch {t.batch_size:,} x {m.frames} frames of {m.image_size}px) but {device} has "
            f"{have / 2**30:,.1f} GiB; lower --batch-size, --frames, --image-size or the network widths")


@torch.no_grad()
def fit_static_prior(model, data: FrameSets, n_frames: int, seed: int, batch_size: int,
                     sets: int = 8192) -> tuple[int, float] | None:
    """Fit the model's p(f) to posterior draws f ~ q(f | x) of ``sets`` training examples (``n_frames``
    frames, as the model trains on them), where the prior is one fitted after training (it has
    ``fit``); returns (sets, mean held-out log-density) or None. Every tenth set of ``data`` is held
    out of the fit to choose when to stop it. The fit has a generator of its own seeded with
    ``seed``, so it depends only on the final model (a resumed run fits as an uninterrupted one)."""
    prior = getattr(model, "f_prior", None)
    if not hasattr(prior, "fit"):
        return None
    rng = torch.Generator(model.device).manual_seed(seed)
    every = torch.arange(len(data), device=data.device)
    held_out_sets = every[every % 10 == 0] if len(data) >= 10 else every[:0]
    fit_sets = every[every % 10 != 0] if len(held_out_sets) else every

    def codes(pool: torch.Tensor, n: int) -> torch.Tensor:
        draws = []
        for start in range(0, n, batch_size):
            chosen = pool[torch.randint(len(pool), (min(batch_size, n - start),), generator=rng, device=pool.device)]
            pick = data.window_frame_indices if model.ordered else data.sample_frame_indices
            frames = pick(chosen, n_frames, rng)
            loc, scale = model.encode_static(data.frames(chosen[:, None], frames), rng)
            draws.append(loc + scale * torch.randn(loc.shape, generator=rng, device=loc.device))
        return torch.cat(draws)

    held_out = codes(held_out_sets, sets // 8) if len(held_out_sets) else None
    return sets, prior.fit(codes(fit_sets, sets), seed, held_out)


@torch.no_grad()
def fit_dynamics_prior(model, data: FrameSets, n_frames: int, seed: int, batch_size: int) -> int | None:
    """Fit the model's p(z | f) to the dynamic posteriors q(z | f, x_t) of training frames, where the
    prior is one fitted after training (it has ``fit`` and ``exemplars``); returns the number of
    frames or None. Each drawn set gives ``n_frames`` frames (as the model trains on them), f drawn
    from q(f | x_S) of those frames; like :func:`fit_static_prior` it has a generator of its own."""
    prior = getattr(model, "z_prior", None)
    if not hasattr(prior, "fit") or not hasattr(prior, "exemplars"):
        return None
    rng = torch.Generator(model.device).manual_seed(seed)
    locs, scales = [], []
    wanted = -(-prior.exemplars // n_frames)  # sets, rounded up
    for start in range(0, wanted, batch_size):
        chosen = torch.randint(len(data), (min(batch_size, wanted - start),), generator=rng, device=data.device)
        pick = data.window_frame_indices if model.ordered else data.sample_frame_indices
        x = data.frames(chosen[:, None], pick(chosen, n_frames, rng))
        loc, scale = model.encode_static(x, rng)
        f = loc + scale * torch.randn(loc.shape, generator=rng, device=loc.device)
        z_loc, z_scale = model.encode_dynamic(x, f)
        locs.append(z_loc.flatten(0, 1))
        scales.append(z_scale.flatten(0, 1))
    prior.fit(torch.cat(locs), torch.cat(scales))
    return prior.exemplars


class DeferredInterrupt:
    """Ctrl-C while training steps run is recorded here and acted on between two steps.

    A KeyboardInterrupt raised inside a step could land after the step drew its batch (the saved
    random state would then be one batch ahead, and a resumed run would diverge) or between the
    per-parameter updates of the optimiser; and a second Ctrl-C could land in the checkpoint write.
    Deferring it makes an interrupted run save whole steps with the random state the next step
    needs, so that resuming gives the same bits as an uninterrupted run. Outside the main thread
    (where signal handlers cannot be set) Ctrl-C is left as it is.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _record(self, signum, frame) -> None:
        self.requested = True

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._record)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Trainer:
    """The loop and its bookkeeping. A second training stage (the latent predictor of
    :mod:`pyro_dvae.prediction`) subclasses it, overriding the files, what is built, the window
    and the figures; everything else (progress, metrics, checkpoints, exact resume, budgets,
    NaN and Ctrl-C handling) is shared."""

    checkpoint_file = CHECKPOINT_FILE
    metrics_file = METRICS_FILE
    tensorboard_dir = "tensorboard"
    config_file: str | None = CONFIG_FILE  # None: the stage writes no config (the run's stays)
    resume_command = "pyro-dvae train --resume"

    def __init__(self, config: RunConfig, out: Path, progress: bool):
        # The wall-clock budget (--max-minutes) counts from here: data set-up is part of a run.
        self.started = time.perf_counter()
        self.out, self.progress = out, progress
        self.out_of_time = False
        self.ranks, self.device = Ranks.from_env(resolve_device(config.train.device))
        self.progress = progress and self.ranks.main
        self.local_batch = self.ranks.share(config.train.batch_size)
        check_memory(config, self.device)
        self.tensorboard = None
        if config.train.tensorboard:  # checked before any work: the package is an optional extra
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: F401
            except ImportError:
                raise UserInputError("--tensorboard needs the tensorboard package: "
                                     "pip install 'pyro-dvae[tensorboard]'") from None
        self.family = get_family(config.model.family)
        # Rank 0 opens the data first (it may render and cache them); the others then read the cache.
        if not self.ranks.main:
            self.ranks.barrier()
        self.train_data = self._open(config, "train")
        self.test_data = self._open(config, "test")
        if self.ranks.main:
            self.ranks.barrier()
        self.train_data.check_frames_per_set(self.window(config))
        self.test_data.check_frames_per_set(self.window(config))
        # The data decide the channel count; the resolved config records it.
        self.config = config.override("model", channels=self.train_data.channels)
        self.cfg = self.config.train

    @property
    def ordered(self) -> bool:
        return self.family.ordered

    def window(self, config: RunConfig) -> int:
        """Frames per training example: N of a set, or the length T of an ordered window."""
        return config.model.frames

    def _open(self, config: RunConfig, split: str) -> FrameSets:
        return load_frame_sets(config.data.source, split, image_size=config.model.image_size,
                               device=self.device, ordered=self.ordered, **config.data.options)

    @property
    def _frames_per_example(self) -> int:
        """Frames the plan's loss is summed over per sequence: all of them, unless it says otherwise."""
        return getattr(self.plan, "frames_per_example", self.window(self.config))

    def _batch(self, data: FrameSets, generator: torch.Generator, size: int) -> torch.Tensor:
        """What the family trains on: N distinct frames of a set, or T consecutive frames in order."""
        if self.ordered:
            return data.sample_windows(size, self.window(self.config), generator)
        return data.sample(size, self.window(self.config), generator)

    @property
    def _resume_hint(self) -> str:
        """The command that continues this run (on as many processes, where it had several)."""
        if self.ranks.active:
            return self.resume_command.replace(" --resume", f" --nproc {self.ranks.world_size} --resume")
        return self.resume_command

    def _say(self, message: str) -> None:
        if self.ranks.main:
            tqdm.write(message)

    # -- setup -------------------------------------------------------------------------------
    def _make(self) -> None:
        """Build ``self.model`` (what is checkpointed) and ``self.plan`` (how it is trained)."""
        self.model = self.family.build(self.config.model).to(self.device)
        prepare(self.model, self.cfg)
        self.plan = self.family.plan_class(self.model, self.cfg)

    def _build(self, payload: dict | None) -> int:
        torch.manual_seed(self.cfg.seed)  # the same initial weights on every rank
        self._make()
        # Rank 0's streams are a one-process run's; every other rank's are its own (rank_seed).
        seed = rank_seed(self.cfg.seed, self.ranks.rank)
        if not self.ranks.main:
            torch.manual_seed(seed)
        self.batch_rng = torch.Generator(self.device).manual_seed(seed + 1)
        eval_rng = torch.Generator(self.device).manual_seed(self.cfg.seed + 2)
        # A fixed held-out sample (of the global batch size), so held-out ELBOs at different steps
        # and on any number of processes are comparable. Rank 0 alone evaluates.
        self.eval_batches = [self._batch(self.test_data, eval_rng, self.cfg.batch_size)
                             for _ in range(self.cfg.eval_batches if self.ranks.main else 0)]
        step = 0
        if payload is not None:
            step = int(payload["step"])
            load_weights(self.model, payload["model"], self.out / self.checkpoint_file, self.config.model)
            try:
                self.plan.load_state_dict(payload["optimizer"])
            except (KeyError, ValueError, RuntimeError, TypeError):
                raise UserInputError(f"{self.out / self.checkpoint_file}: the optimiser state does not match the "
                                     "model; the file is damaged or was edited") from None
            self._restore_rng(payload, step)
        if self.ranks.active:  # after loading: DDP starts every rank from rank 0's weights
            if not hasattr(self.plan, "distribute"):
                raise UserInputError(f"{type(self.plan).__name__} cannot train on several processes (it has no "
                                     "distribute()); train this with one process")
            self.plan.distribute(self.device, self.ranks.world_size)
        return step

    def _restore_rng(self, payload: dict, step: int) -> None:
        """Every rank continues its own random streams when the world size is the checkpoint's; on
        another world size rank 0 continues its streams and the others start fresh ones."""
        saved_world = int(payload.get("world_size", 1))
        states = payload.get("rng_ranks") or [payload["rng"]]
        if saved_world == self.ranks.world_size and len(states) == saved_world:
            rng = states[self.ranks.rank]
        elif self.ranks.main:
            rng = payload["rng"]
        else:
            rng = None
            seed = rank_seed(self.cfg.seed + step, self.ranks.rank)
            torch.manual_seed(seed)
            self.batch_rng.manual_seed(seed + 1)
        if saved_world != self.ranks.world_size:
            self._say(f"resuming a run saved by {saved_world} process(es) on {self.ranks.world_size}: it continues "
                      "correctly but is not bit-exact (the batches differ from those of an uninterrupted run)")
        if rng is not None:
            torch.set_rng_state(rng["torch"].cpu())
            if self.device.type == "cuda" and "cuda" in rng:
                torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)
            if rng["batches"].numel() == self.batch_rng.get_state().numel():
                self.batch_rng.set_state(rng["batches"].cpu())
            else:  # a CPU generator's state cannot seed a CUDA one, nor the reverse
                self.batch_rng.manual_seed(rank_seed(self.cfg.seed + step, self.ranks.rank) + 1)
                self._say(f"resuming on {self.device.type} a run saved on another kind of device: it continues "
                          "correctly but is not bit-exact (the batches differ from those of an uninterrupted run)")

    def _start_files(self, step: int) -> None:
        created, self._lock = not self.out.exists(), None
        if not self.ranks.main:  # rank 0 alone writes the run directory
            return
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            # One writer per run directory and stage; released when the loop ends (or the process).
            self._lock = DirectoryLock(self.out, f".{self.checkpoint_file}.lock",
                                       f"training {self.checkpoint_file}").__enter__()
            if self.config_file:
                write_text_atomic(self.out / self.config_file, to_toml(self.config))
            # Drop metrics logged after the checkpoint we resume from: those steps will be redone.
            kept = [m for m in read_metrics(self.out / self.metrics_file) if m["step"] <= step]
            write_text_atomic(self.out / self.metrics_file, "".join(json.dumps(m) + "\n" for m in kept))
            if self.cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(self.out / self.tensorboard_dir))
        except OSError as err:
            self._unlock()
            if created:  # leave no empty run directory behind
                shutil.rmtree(self.out, ignore_errors=True)
            raise UserInputError(f"cannot write the run directory {self.out} ({err.strerror}); "
                                 "pass a writable --out") from None

    # -- the loop ----------------------------------------------------------------------------
    def run(self, payload: dict | None = None) -> Run:
        try:
            step = self._build(payload)
            self._start_files(step)
            try:
                return self._loop(step)
            finally:
                if self.tensorboard is not None:
                    self.tensorboard.close()
                self._unlock()
        finally:
            self.ranks.close()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def _loop(self, step: int) -> Run:
        total = self.cfg.steps
        frames_per_batch = self.cfg.batch_size * self._frames_per_example
        loss_sum = torch.zeros((), device=self.device)
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        desc = f"train ({self.ranks.world_size} ranks)" if self.ranks.active else "train"
        bar = tqdm(total=total, initial=step, disable=not self.progress, unit="step", dynamic_ncols=True, desc=desc)
        tick, tick_step = time.perf_counter(), step
        budget_s = 60 * self.cfg.max_minutes if self.cfg.max_minutes else float("inf")
        self.model.train()
        with DeferredInterrupt() as interrupt:
            try:
                last = step >= total
                while not last:
                    loss = self.step(step + 1)
                    step += 1
                    loss_sum += loss
                    # Python scalar, not torch.tensor(step): a host-to-device copy would sync.
                    first_bad.masked_fill_((first_bad < 0) & ~torch.isfinite(loss), step)
                    # The last step: the planned total, or the first one after the budget is spent
                    # (it then ends like a finished run: logged, evaluated, checkpointed, figures).
                    # Under torchrun every rank learns here whether any rank wants to stop, so all
                    # stop after the same step (host-side flags; the device is not synchronised).
                    interrupted, self.out_of_time = self.ranks.any_host(
                        interrupt.requested, time.perf_counter() - self.started >= budget_s)
                    last = step >= total or self.out_of_time
                    if step % self.cfg.log_every == 0 or last:
                        self._check_finite(first_bad)
                        now = time.perf_counter()
                        rate = (step - tick_step) / (now - tick)
                        value = -self.ranks.sum_(loss_sum).item() / ((step - tick_step) * frames_per_batch)
                        self._log({"step": step, "split": "train", self.plan.metric: value,
                                   "steps_per_s": rate, "kl_scale": self.plan.kl_scale(step)})
                        bar.set_postfix({self.plan.metric.replace("_per_", "/"): f"{value:.4g}",
                                         "steps/s": f"{rate:.2f}"})
                        bar.update(step - bar.n)
                        loss_sum.zero_()
                        tick, tick_step = time.perf_counter(), step
                    if (step % self.cfg.eval_every == 0 or last) and self.ranks.main:
                        self._log({"step": step, "split": "test", self.plan.metric: self.evaluate()})
                    if step % self.cfg.checkpoint_every == 0 or last:
                        self._check_finite(first_bad)
                        self.save(step)
                    if interrupted:
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                # From the handler, between two steps: exact. Raised inside a step (training outside
                # the main thread, where no handler can be set): saved too, but then not bitwise exact.
                bar.close()
                self._check_finite(first_bad)
                self.save(step)
                raise TrainingInterrupted(f"interrupted at step {step}; checkpoint saved. Continue with "
                                          f"`{self._resume_hint} {self.out} --steps {total}`") from None
            except RuntimeError as err:
                if self.ranks.active and _peer_failure(err):
                    raise TrainingFailed(f"another process of this run stopped at step {step + 1}; the last "
                                         f"checkpoint in {self.out} is kept. Continue with "
                                         f"`{self._resume_hint} {self.out} --steps {total}`") from None
                raise
        bar.close()
        if not self.ranks.main:  # rank 0 alone fits p(f), draws the figures and reports
            return self._result(step)
        if self.out_of_time:
            tqdm.write(f"the wall-clock budget of {self.cfg.max_minutes:g} min was spent at step {step} of "
                       f"{total}; checkpoint saved (continue with `{self._resume_hint} {self.out} --steps N`)")
        self.model.eval()
        if self._fit_priors():
            self.save(step, collective=False)
        try:
            self.figures()
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"interrupted while drawing the figures; the run is complete at step {step} "
                                      f"and its checkpoint saved in {self.out}") from None
        return self._result(step)

    def _fit_priors(self) -> bool:
        """Fit the priors that are fitted after training (``fitted-flow`` p(f), ``fitted-aggregate``
        p(z | f)); False if there are none."""
        fitted = fit_static_prior(self.model, self.train_data, self.window(self.config), self.cfg.seed + 4,
                                  self.cfg.batch_size)
        if fitted is not None:
            tqdm.write(f"fitted p(f) to the posterior codes of {fitted[0]} training examples "
                       f"(mean log-density of held-out codes {fitted[1]:.1f})")
        frames = fit_dynamics_prior(self.model, self.train_data, self.window(self.config), self.cfg.seed + 5,
                                    self.cfg.batch_size)
        if frames is not None:
            tqdm.write(f"p(z | f) is now the aggregate posterior of {frames} training frames")
        return fitted is not None or frames is not None

    def _result(self, step: int):
        return Run(self.out, self.config, self.model, step)

    def step(self, step: int) -> torch.Tensor:
        """The ``step``-th update; returns the detached loss. Nothing here reads the device."""
        return self.plan.step(self._batch(self.train_data, self.batch_rng, self.local_batch), step)

    def _check_finite(self, first_bad: torch.Tensor) -> None:
        bad = int(self.ranks.first_step(first_bad))
        if bad >= 0:
            kept = (f"the last good checkpoint in {self.out} is kept" if (self.out / self.checkpoint_file).exists()
                    else f"no checkpoint exists yet (the first is written at step {self.cfg.checkpoint_every})")
            raise TrainingDiverged(f"loss became NaN/inf at step {bad}; {kept}. Lower --lr or check the data for NaN")

    @torch.no_grad()
    def evaluate(self) -> float:
        """The plan's metric per frame on the fixed test batches (ELBO: KL at full weight)."""
        was_training = self.model.training
        self.model.eval()
        # fork_rng: evaluating must not shift the training random stream (resume equality).
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            total = sum(self.plan.heldout(x) for x in self.eval_batches)
        self.model.train(was_training)
        n_frames = sum(x.shape[0] * self._frames_per_example for x in self.eval_batches)
        return -float(total) / n_frames

    def save(self, step: int, collective: bool = True) -> None:
        """Write the checkpoint (rank 0) with every rank's random state, gathered from the ranks
        (a collective under torchrun) unless ``collective`` is False: after the loop, when rank 0
        alone saves again (the fitted p(f)), the others' states are those of the last gather."""
        rng = {"torch": torch.get_rng_state(), "batches": self.batch_rng.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        if collective:
            self._rank_rngs = self.ranks.gather(rng)
        if not self.ranks.main:
            return
        ranks = {}
        if self.ranks.active:
            ranks = {"world_size": self.ranks.world_size, "rng_ranks": [rng, *self._rank_rngs[1:]]}
        save_checkpoint(self.out / self.checkpoint_file, {
            "config": self.config.to_dict(), "step": step, "model": self.model.state_dict(),
            "optimizer": self.plan.state_dict(), "rng": rng, **ranks, **self._extra_payload(),
        })

    def _extra_payload(self) -> dict:
        """More entries for the checkpoint (a second stage's own settings)."""
        return {}

    def _log(self, record: dict) -> None:
        if not self.ranks.main:
            return
        with open(self.out / self.metrics_file, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:  # the same numbers, as train/NAME and test/NAME scalars
            for name, value in record.items():
                if name not in ("step", "split") and isinstance(value, int | float):
                    self.tensorboard.add_scalar(f"{record['split']}/{name}", value, record["step"])

    @torch.no_grad()
    def figures(self) -> None:
        """Reconstructions, prior samples and latent manifold (where the family has priors), curves."""
        fig_dir = self.out / FIGURES_DIR
        model = self.model
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.cfg.seed)
            rng = torch.Generator(self.device).manual_seed(self.cfg.seed + 3)
            n_show = min(8, int(self.test_data.set_sizes.min()))
            x = (self.test_data.sample_windows if self.ordered else self.test_data.sample)(6, n_show, rng)
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
        plotting.save_figure(plotting.training_curves(read_metrics(self.out / self.metrics_file), self.plan.metric),
                             fig_dir / "training_curves.png")


def _peer_failure(err: RuntimeError) -> bool:
    """Whether a collective failed because another rank went away (gloo/NCCL report it so)."""
    import torch.distributed as dist

    text = str(err).lower()
    return isinstance(err, getattr(dist, "DistError", ())) or any(
        s in text for s in ("connection closed", "connection reset", "broken pipe", "timed out"))


__all__ = ["train", "resume"]
