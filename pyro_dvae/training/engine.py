"""The engine every training run goes through: the loop and its bookkeeping, for any stage.

It draws the batches the stage asks for, hands them to the stage's plan, and keeps progress,
metrics, checkpoints, exact resume, budgets, and NaN and Ctrl-C handling. Everything stays on
the training device: batches are rendered there, the loss is not read back in the step, and the
first non-finite step is recorded on the device too. The host reads the loss only every
``log_every`` steps.

Under torchrun the same loop runs in every process, data-parallel (:mod:`pyro_dvae.distributed`):
each rank trains on its share of the global batch from its own random stream, the plan averages
gradients with DDP, the ranks agree after every step on whether to stop (Ctrl-C, the budget), and
rank 0 alone writes the run directory.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..atomic import DirectoryLock, write_text_atomic
from ..checkpoint import TRAINING_WEIGHTS, save_checkpoint
from ..config import RunConfig, to_toml
from ..distributed import Ranks, rank_seed
from ..errors import TrainingDiverged, TrainingFailed, TrainingInterrupted, UserInputError
from ..runs import load_weights, read_metrics, resolve_device
from .anneal import Anneal, check_plan
from .averaging import WeightAverage
from .interrupts import DeferredInterrupt
from .stage import Stage


class Engine:
    """Trains ``stage`` with ``config`` in the run directory ``out``; :meth:`run` starts (or, given
    a checkpoint's payload, resumes) and returns the stage's result."""

    def __init__(self, config: RunConfig, out: Path, stage: Stage, progress: bool = True):
        # The wall-clock budget (--max-minutes) counts from here: data set-up is part of a run.
        self.started = time.perf_counter()
        self.out, self.stage = Path(out), stage
        self.out_of_time = False
        self.ranks, self.device = Ranks.from_env(resolve_device(config.train.device))
        self.progress = progress and self.ranks.main
        self.local_batch = self.ranks.share(config.train.batch_size)
        stage.check_memory(config, self.device)
        self.tensorboard = None
        if config.train.tensorboard:  # checked before any work: the package is an optional extra
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: F401
            except ImportError:
                raise UserInputError("--tensorboard needs the tensorboard package: "
                                     "pip install 'pyro-dvae[tensorboard]'") from None
        # Rank 0 opens the data first (it may render and cache them); the others then read the cache.
        if not self.ranks.main:
            self.ranks.barrier()
        self.train_data = stage.open_data(config, "train", self.device, self.progress)
        self.test_data = stage.open_data(config, "test", self.device, self.progress)
        if self.ranks.main:
            self.ranks.barrier()
        self.train_data.check_frames_per_set(stage.window(config))
        self.test_data.check_frames_per_set(stage.window(config))
        # The data decide the channel count; the resolved config records it.
        self.config = config.override("model", channels=self.train_data.channels)
        self.cfg = self.config.train
        self._lock = None
        self.saved_step: int | None = None  # the step of the last complete checkpoint

    # -- what the stage trains on ---------------------------------------------------------------
    @property
    def frames_per_example(self) -> int:
        """Frames the plan's loss is summed over per example: all of them, unless it says otherwise."""
        return getattr(self.plan, "frames_per_example", self.stage.window(self.config))

    def _batch(self, data, generator: torch.Generator, size: int) -> torch.Tensor:
        return self.stage.batch(self.config, data, generator, size)

    @property
    def resume_hint(self) -> str:
        """The command that continues this run (on as many processes, where it had several)."""
        command = self.stage.resume_command
        if self.ranks.active:
            return command.replace(" --resume", f" --nproc {self.ranks.world_size} --resume")
        return command

    def say(self, message: str) -> None:
        if self.ranks.main:
            tqdm.write(message)

    # -- setup -------------------------------------------------------------------------------
    def setup(self, payload: dict | None = None) -> int:
        """Build the stage's model and plan, the random streams and the held-out batches, and load a
        checkpoint's ``payload`` if given; returns the step training continues from."""
        torch.manual_seed(self.cfg.seed)  # the same initial weights on every rank
        self.model, self.plan = self.stage.build(self.config, self.device)
        check_plan(self.cfg, self.plan)
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
        checkpoint = self.out / self.stage.files.checkpoint
        if payload is not None:
            step = int(payload["step"])
            load_weights(self.model, payload.get(TRAINING_WEIGHTS, payload["model"]), checkpoint, self.config.model)
            if "optimizer" in payload:
                try:
                    self.plan.load_state_dict(payload["optimizer"])
                except (KeyError, ValueError, RuntimeError, TypeError):
                    raise UserInputError(f"{checkpoint}: the optimiser state does not match the model; the file is "
                                         "damaged or was edited") from None
            if "rng" in payload:
                self._restore_rng(payload, step)
            else:  # a shipped model's copy: weights without optimiser or random state
                seed = rank_seed(self.cfg.seed + step, self.ranks.rank)
                torch.manual_seed(seed)
                self.batch_rng.manual_seed(seed + 1)
                self.say(f"{checkpoint} holds weights only (a shipped model): training continues from step {step} "
                         "with a fresh optimiser")
            self.saved_step = step
        if self.ranks.active:  # after loading: DDP starts every rank from rank 0's weights
            if not hasattr(self.plan, "distribute"):
                raise UserInputError(f"{type(self.plan).__name__} cannot train on several processes (it has no "
                                     "distribute()); train this with one process")
            self.plan.distribute(self.device, self.ranks.world_size)
        self.average = WeightAverage.start(self.model, self.cfg.weight_average, payload)
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
            self.say(f"resuming a run saved by {saved_world} process(es) on {self.ranks.world_size}: it continues "
                     "correctly but is not bit-exact (the batches differ from those of an uninterrupted run)")
        if rng is not None:
            torch.set_rng_state(rng["torch"].cpu())
            if self.device.type == "cuda" and "cuda" in rng:
                torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)
            if rng["batches"].numel() == self.batch_rng.get_state().numel():
                self.batch_rng.set_state(rng["batches"].cpu())
            else:  # a CPU generator's state cannot seed a CUDA one, nor the reverse
                self.batch_rng.manual_seed(rank_seed(self.cfg.seed + step, self.ranks.rank) + 1)
                self.say(f"resuming on {self.device.type} a run saved on another kind of device: it continues "
                         "correctly but is not bit-exact (the batches differ from those of an uninterrupted run)")

    def _start_files(self, step: int) -> None:
        created = not self.out.exists()
        if not self.ranks.main:  # rank 0 alone writes the run directory
            return
        files = self.stage.files
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            # One writer per run directory and stage; released when the loop ends (or the process).
            lock = DirectoryLock(self.out, f".{files.checkpoint}.lock", f"training {files.checkpoint}")
            self._lock = lock.__enter__()
            if files.config:
                write_text_atomic(self.out / files.config, to_toml(self.config))
            # Drop metrics logged after the checkpoint we resume from: those steps will be redone.
            kept = [m for m in read_metrics(self.out / files.metrics) if m["step"] <= step]
            write_text_atomic(self.out / files.metrics, "".join(json.dumps(m) + "\n" for m in kept))
            if self.cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(self.out / files.tensorboard))
        except OSError as err:
            self._unlock()
            if created:  # leave no empty run directory behind
                shutil.rmtree(self.out, ignore_errors=True)
            raise UserInputError(f"cannot write the run directory {self.out} ({err.strerror}); "
                                 "pass a writable --out") from None

    # -- the loop ----------------------------------------------------------------------------
    def run(self, payload: dict | None = None) -> Any:
        try:
            step = self.setup(payload)
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

    def _loop(self, step: int) -> Any:
        total = self.cfg.steps
        frames_per_batch = self.cfg.batch_size * self.frames_per_example
        loss_sum = torch.zeros((), device=self.device)
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        desc = f"train ({self.ranks.world_size} ranks)" if self.ranks.active else "train"
        bar = tqdm(total=total, initial=step, disable=not self.progress, unit="step", dynamic_ncols=True, desc=desc)
        tick, tick_step = time.perf_counter(), step
        budget_s = 60 * self.cfg.max_minutes if self.cfg.max_minutes else float("inf")
        anneal = Anneal(self.cfg, self.plan, step, total, budget_s)
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
                    elapsed, ran_at = time.perf_counter() - self.started, anneal.lr
                    interrupted, self.out_of_time, lower = self.ranks.any_host(
                        interrupt.requested, elapsed >= budget_s, anneal.due(step, elapsed))
                    if lower and not anneal.lowered:  # every rank lowers it after this step
                        lr = anneal.lower()
                        if self.progress:
                            tqdm.write(f"learning rate lowered to {lr:.3g} after step {step} for the last "
                                       f"{self.cfg.lr_anneal:.0%} of the run")
                    last = step >= total or self.out_of_time
                    if step % self.cfg.log_every == 0 or last:
                        self._check_finite(first_bad)
                        now = time.perf_counter()
                        rate = (step - tick_step) / (now - tick)
                        value = -self.ranks.sum_(loss_sum).item() / ((step - tick_step) * frames_per_batch)
                        self._log({"step": step, "split": "train", self.plan.metric: value,
                                   "steps_per_s": rate, "kl_scale": self.plan.kl_scale(step), "lr": ran_at})
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
                                          f"`{self.resume_hint} {self.out} --steps {total}`") from None
            except OSError as err:
                bar.close()
                raise TrainingFailed(self._write_failure(err, step, total)) from None
            except RuntimeError as err:
                if self.ranks.active and _peer_failure(err):
                    raise TrainingFailed(f"another process of this run stopped at step {step + 1}; the last "
                                         f"checkpoint in {self.out} is kept. Continue with "
                                         f"`{self.resume_hint} {self.out} --steps {total}`") from None
                raise
        bar.close()
        if not self.ranks.main:  # rank 0 alone fits, draws the figures and reports
            return self.stage.result(self, step)
        if self.out_of_time:
            tqdm.write(f"the wall-clock budget of {self.cfg.max_minutes:g} min was spent at step {step} of "
                       f"{total}; checkpoint saved (continue with `{self.resume_hint} {self.out} --steps N`)")
        if self.average is not None:  # what follows training (fits, figures, the result) uses the average
            self.average.use_average(self.model)
        self.model.eval()
        try:
            fitted = self.stage.after_training(self)
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"interrupted while fitting after training; the checkpoint of step {step} in "
                                      f"{self.out} is kept without the fit (continue with `{self.resume_hint} "
                                      f"{self.out} --steps N`, which fits when it ends)") from None
        for line in fitted:
            tqdm.write(line)
        if fitted:
            # A Ctrl-C inside the write would abort the C++ writer; it waits for the file instead.
            with DeferredInterrupt() as interrupt:
                try:
                    self.save(step, collective=False)
                except OSError as err:
                    raise TrainingFailed(self._write_failure(err, step, total)) from None
            if interrupt.requested:
                raise TrainingInterrupted(f"interrupted after training; the run is complete at step {step} and its "
                                          f"checkpoint, with what was fitted, saved in {self.out}")
        try:
            self.stage.figures(self)
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"interrupted while drawing the figures; the run is complete at step {step} "
                                      f"and its checkpoint saved in {self.out}") from None
        except OSError as err:
            raise TrainingFailed(f"cannot write {err.filename or 'a figure'} ({err.strerror}); the run is complete "
                                 f"at step {step} and its checkpoint saved in {self.out} (`pyro-dvae inspect` draws "
                                 "its figures again once there is space)") from None
        return self.stage.result(self, step)

    def _write_failure(self, err: OSError, step: int, total: int) -> str:
        """One line: what could not be written and why, which checkpoint is intact, how to go on."""
        checkpoint = self.out / self.stage.files.checkpoint
        kept = (f"the last complete checkpoint {checkpoint} (step {self.saved_step}) is intact"
                if self.saved_step is not None else "no checkpoint was written yet")
        return (f"cannot write {err.filename or self.out} ({err.strerror or err}); training stopped at step {step} and "
                f"{kept}; free space or make the folder writable, then continue with "
                f"`{self.resume_hint} {self.out} --steps {total}`")

    def step(self, step: int) -> torch.Tensor:
        """The ``step``-th update; returns the detached loss. Nothing here reads the device."""
        loss = self.plan.step(self._batch(self.train_data, self.batch_rng, self.local_batch), step)
        if self.average is not None:
            self.average.update(step)
        return loss

    def _check_finite(self, first_bad: torch.Tensor) -> None:
        bad = int(self.ranks.first_step(first_bad))
        if bad < 0:
            return
        lower = f"{self.cfg.lr / 3:.2g}"
        if self.saved_step is not None:
            advice = (f"the last good checkpoint {self.out / self.stage.files.checkpoint} (step {self.saved_step}) is "
                      f"kept: continue it with a lower learning rate, `{self.resume_hint} {self.out} --steps "
                      f"{self.cfg.steps} --lr {lower}`, or start again with a longer --kl-warmup")
        else:
            advice = (f"no checkpoint exists yet (the first is written at step {self.cfg.checkpoint_every}): start "
                      f"again with a lower --lr (e.g. {lower}) or a longer --kl-warmup")
        raise TrainingDiverged(f"loss became NaN/inf at step {bad}; {advice}; and check the data for NaN")

    @torch.no_grad()
    def evaluate(self) -> float:
        """The plan's metric per frame on the fixed test batches (ELBO: KL at full weight)."""
        was_training = self.model.training
        self.model.eval()
        # fork_rng: evaluating must not shift the training random stream (resume equality).
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            total = sum(self.plan.heldout(x) for x in self.eval_batches)
        self.model.train(was_training)
        n_frames = sum(x.shape[0] * self.frames_per_example for x in self.eval_batches)
        return -float(total) / n_frames

    def save(self, step: int, collective: bool = True) -> None:
        """Write the checkpoint (rank 0) with every rank's random state, gathered from the ranks
        (a collective under torchrun) unless ``collective`` is False: after the loop, when rank 0
        alone saves again (what was fitted after training), the others' states are those of the
        last gather."""
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
        weights = self.average.checkpoint(self.model) if self.average else {"model": self.model.state_dict()}
        save_checkpoint(self.out / self.stage.files.checkpoint, {
            "config": self.config.to_dict(), "step": step, **weights,
            "optimizer": self.plan.state_dict(), "rng": rng, **ranks, **self.stage.extra_payload(),
        })
        self.saved_step = step

    def _log(self, record: dict) -> None:
        if not self.ranks.main:
            return
        with open(self.out / self.stage.files.metrics, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:  # the same numbers, as train/NAME and test/NAME scalars
            for name, value in record.items():
                if name not in ("step", "split") and isinstance(value, int | float):
                    self.tensorboard.add_scalar(f"{record['split']}/{name}", value, record["step"])


def _peer_failure(err: RuntimeError) -> bool:
    """Whether a collective failed because another rank went away (gloo/NCCL report it so)."""
    import torch.distributed as dist

    text = str(err).lower()
    return isinstance(err, getattr(dist, "DistError", ())) or any(
        s in text for s in ("connection closed", "connection reset", "broken pipe", "timed out"))
