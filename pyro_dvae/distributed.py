"""Data-parallel training on PyTorch's distributed engine: one process per device, launched by torchrun.

``torchrun --nproc_per_node N -m pyro_dvae train ...`` (or ``pyro-dvae train --nproc N``, which
starts the same workers through torch's elastic launcher) runs N copies of the trainer. Each reads
its place from the environment torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT),
joins the process group (NCCL on CUDA, gloo on CPU), trains on its share of the global batch from a
random stream of its own, and lets :class:`torch.nn.parallel.DistributedDataParallel` average the
gradients (each plan wraps its objective: :mod:`pyro_dvae.models.plans`). Rank 0 alone writes
metrics, checkpoints and figures.

What the ranks must agree on goes through :class:`Ranks`:

- the loss and the first non-finite step: reduced on the training device, at log steps only (the
  host reads them there anyway), so no step waits for a device-to-host copy;
- stop requests (Ctrl-C, the wall-clock budget): a one-integer all-reduce on a gloo group on the
  host after every step. It never touches the device, and it makes every rank end at the same step,
  between two whole steps, as a single process does;
- random states: gathered from every rank into rank 0's checkpoint, so a resumed run continues
  every rank's stream (bitwise, at the same world size).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .checkpoint import CHECKPOINT_FILE
from .errors import PyroDVAEError, TrainingFailed, UserInputError

#: How long a rank waits for the others in a collective before the run fails (a peer that hangs).
TIMEOUT = datetime.timedelta(minutes=10)


def launched_world_size() -> int:
    """Processes of the run as torchrun told this one (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """Rank 0, or a process outside torchrun: the one that prints and writes."""
    return os.environ.get("RANK", "0") == "0"


_joined = False  # whether this process has joined a process group (its errors are then rank 0's too)


def reports_errors() -> bool:
    """Whether this process prints its errors: rank 0 always; another rank until it has joined the
    process group (an error of its own, such as a missing GPU), not after (rank 0 reports the run's)."""
    return is_main_process() or not _joined


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random streams: the run's seed on rank 0 (so a one-process run is
    what it always was), a 63-bit hash of (seed, rank) elsewhere (streams that do not overlap)."""
    if rank == 0:
        return seed
    digest = hashlib.sha256(f"pyro-dvae:{seed}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class Ranks:
    """This process's place in the run, and the few collectives the trainer needs."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    _control: object = None  # the gloo group for host-side flags

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, requested: torch.device) -> tuple[Ranks, torch.device]:
        """Join the process group torchrun set up (nothing to join for one process); returns this
        process's place and its device: its own GPU, cuda:LOCAL_RANK, where the run asked for CUDA."""
        world = launched_world_size()
        if world <= 1:
            return cls(), requested
        if not dist.is_available():
            raise UserInputError("this PyTorch build has no torch.distributed; train with one process")
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        device = requested
        if requested.type == "cuda":
            if requested.index not in (None, local_rank):
                raise UserInputError(f"--device {requested} with several processes: each takes its own GPU "
                                     "(cuda:LOCAL_RANK); pass --device cuda")
            if local_rank >= torch.cuda.device_count():
                raise UserInputError(f"{local_rank + 1} or more processes on this node but {torch.cuda.device_count()} "
                                     "GPU(s); start one process per GPU")
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            if device.type == "cuda":
                try:  # device_id (torch >= 2.3) binds NCCL to this rank's GPU at once
                    dist.init_process_group("nccl", timeout=TIMEOUT, device_id=device)
                except TypeError:
                    dist.init_process_group("nccl", timeout=TIMEOUT)
            else:
                dist.init_process_group("gloo", timeout=TIMEOUT)
        control = dist.new_group(backend="gloo", timeout=TIMEOUT)
        global _joined
        _joined = True
        return cls(rank, world, local_rank, control), device

    def share(self, global_batch: int) -> int:
        """This rank's part of the global batch (the batch must split evenly)."""
        if global_batch % self.world_size:
            raise UserInputError(f"the global batch of {global_batch} does not split evenly over {self.world_size} "
                                 f"processes; pass a --batch-size that is a multiple of {self.world_size}")
        return global_batch // self.world_size

    # -- collectives (no-ops for one process) ------------------------------------------------
    def any_host(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag OR-ed over the ranks, on the host (gloo): no device synchronisation."""
        if not self.active:
            return flags
        bits = torch.tensor([int(f) for f in flags], dtype=torch.int32)
        dist.all_reduce(bits, op=dist.ReduceOp.MAX, group=self._control)
        return tuple(bool(b) for b in bits.tolist())

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place, on the tensor's device."""
        if self.active:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def first_step(self, first_bad: torch.Tensor) -> torch.Tensor:
        """The earliest of the ranks' first non-finite steps (-1: none), on the device."""
        if not self.active:
            return first_bad
        never = torch.iinfo(first_bad.dtype).max
        earliest = torch.where(first_bad < 0, torch.full_like(first_bad, never), first_bad)
        dist.all_reduce(earliest, op=dist.ReduceOp.MIN)
        return torch.where(earliest == never, torch.full_like(first_bad, -1), earliest)

    def gather(self, obj: object) -> list:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.active:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self._control)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier(group=self._control)

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


class QuietExit(PyroDVAEError):
    """The workers failed and said why themselves: exit with their code, print nothing more."""

    def __init__(self, exit_code: int):
        super().__init__("")
        self.exit_code = exit_code


def launch_local(nproc: int, args: list[str], out: str) -> None:
    """Run ``python -m pyro_dvae ARGS`` in ``nproc`` processes on this machine, through the elastic
    launcher that torchrun is built on (what ``torchrun --standalone --nproc_per_node N`` does).

    Each worker gets ``cpu_count / nproc`` threads unless OMP_NUM_THREADS says otherwise (torch
    processes that share cores slow each other down). Rank 0 prints the run's own messages; a
    worker killed by a signal is reported here in one line.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its logs are not for users
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.2)
    try:
        elastic_launch(config, sys.executable)("-m", "pyro_dvae", *args)
    except SignalException:  # Ctrl-C or a kill: the workers saved and said so; 130 as for one process
        raise QuietExit(130) from None
    except ChildFailedError as err:
        failures = sorted(err.failures.items())
        killed = [(rank, f) for rank, f in failures if f.exitcode < 0 and f.signal_name() not in ("SIGTERM", "SIGINT")]
        if killed:
            rank, failure = killed[0]
            # Claim a checkpoint only if there is one (a kill can come before the first is written).
            kept = (f"the last checkpoint in {out} is kept (continue with `pyro-dvae train --nproc {nproc} "
                    f"--resume {out}`)" if (Path(out) / CHECKPOINT_FILE).is_file()
                    else "it had written no checkpoint yet, so start it again")
            raise TrainingFailed(f"the process of rank {rank} was killed ({failure.signal_name()}), so the run "
                                 f"stopped; {kept}") from None
        codes = [f.exitcode for _, f in failures if f.exitcode > 0]
        raise QuietExit(codes[0] if codes else 1) from None


def ddp_wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` in DistributedDataParallel. ``static_graph``: every step uses the same parameters
    (a p(f) fitted after training has parameters no step uses, and DDP must know they never get a
    gradient)."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None,
                                   static_graph=True)


class Objective(torch.nn.Module):
    """A plan's loss as a module, so that DDP sees the forward pass it needs to average gradients
    (Pyro's models call their networks directly; this forward calls the plan's loss function)."""

    def __init__(self, networks: torch.nn.Module, loss_fn):
        super().__init__()
        self.networks = networks  # registered: DDP synchronises these parameters and buffers
        self.loss_fn = loss_fn

    def forward(self, *args):
        return self.loss_fn(*args)
