"""Data-parallel training on torch.distributed (gloo, 2 processes on the CPU) through the real entry
point, and the fast-path options (bf16 autocast, channels_last, compile) checked on the CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from click.testing import CliRunner

from pyro_dvae import fastpath, train
from pyro_dvae.checkpoint import load_checkpoint
from pyro_dvae.cli import main
from pyro_dvae.config import preset
from pyro_dvae.data import load_frame_sets
from pyro_dvae.distributed import Ranks, rank_seed
from pyro_dvae.fastpath import prepare
from pyro_dvae.models import get_family
from pyro_dvae.models.plans import SVIPlan, set_learning_rate
from pyro_dvae.training import resume

OPTIONS = {"num_sets": 32}
TINY = ["train", "--data", "squares", "--preset", "tiny", "--quiet", "--data-option", "num_sets=32"]
pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is needed")


def pyro_dvae(*args: str, timeout: float = 240, **popen) -> subprocess.CompletedProcess:
    """`python -m pyro_dvae ARGS` in a fresh process (as a user runs it), one thread per process."""
    env = {**popen.pop("env", os.environ), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pyro_dvae", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **popen)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoint.pt")["model"]


def test_two_ranks_train_the_model_of_one_process_that_sees_the_global_batch(tmp_path):
    steps = 3  # --lr-anneal: the ranks agree to lower the rate after step 2 (the last third of the run)
    result = pyro_dvae(*TINY, "--nproc", "2", "--steps", str(steps), "--lr-anneal", "0.34", "--out",
                       str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    trained = weights(tmp_path / "run")

    # The reference: one process, one optimiser step per global batch, whose gradient is that of the
    # two ranks' batches (each drawn from its rank's stream, with its rank's noise) summed.
    config = preset("tiny", "squares").override("data", options=OPTIONS)
    data = load_frame_sets("squares", "train", image_size=config.model.image_size, device="cpu", **OPTIONS)
    seed = config.train.seed
    torch.manual_seed(seed)
    model = get_family("dvae").build(config.model)
    plan = SVIPlan(model, config.train)
    noise = [torch.get_rng_state(), torch.manual_seed(rank_seed(seed, 1)).get_state()]
    batches = [torch.Generator().manual_seed(rank_seed(seed, rank) + 1) for rank in (0, 1)]
    for step in range(1, steps + 1):
        if step == steps:
            set_learning_rate(plan.optimizer, config.train.lr / 10)
        plan.optimizer.zero_grad()
        for rank in (0, 1):
            torch.set_rng_state(noise[rank])
            x = data.sample(config.train.batch_size // 2, config.model.frames, batches[rank])
            plan.loss(x, step).backward()
            noise[rank] = torch.get_rng_state()
        plan.optimizer.step()
    reference = model.state_dict()
    assert trained.keys() == reference.keys()
    for name, value in reference.items():
        torch.testing.assert_close(trained[name], value, rtol=1e-4, atol=1e-5, msg=name)
    # The ranks trained on different draws: a run that gave both ranks rank 0's stream would differ.
    assert not torch.equal(load_checkpoint(tmp_path / "run" / "checkpoint.pt")["rng_ranks"][0]["batches"],
                           load_checkpoint(tmp_path / "run" / "checkpoint.pt")["rng_ranks"][1]["batches"])


def test_rank_zero_alone_writes_and_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert pyro_dvae(*TINY, "--nproc", "2", "--steps", "20", "--out", str(whole)).returncode == 0
    first = pyro_dvae(*TINY, "--nproc", "2", "--steps", "10", "--out", str(parts))
    assert first.returncode == 0, first.stderr
    again = pyro_dvae("train", "--nproc", "2", "--resume", str(parts), "--steps", "20", "--quiet")
    assert again.returncode == 0, again.stderr
    assert "not bit-exact" not in again.stdout + again.stderr
    for name, value in weights(whole).items():
        assert torch.equal(weights(parts)[name], value), name
    # One writer: the run directory holds one set of files, each log step once.
    files = sorted(p.name for p in whole.iterdir() if not p.name.startswith("."))  # the lock file aside
    assert files == ["checkpoint.pt", "config.toml", "figures", "metrics.jsonl"]
    lines = (whole / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 4 + 2  # train records at 5, 10, 15, 20; test at 10, 20
    payload = load_checkpoint(whole / "checkpoint.pt")
    assert payload["world_size"] == 2 and len(payload["rng_ranks"]) == 2
    assert first.stdout.count("done: step 10") == 1  # rank 0 alone reports

    # Resuming on another number of processes works and says that it is not bit-exact.
    single = pyro_dvae("train", "--resume", str(parts), "--steps", "25", "--quiet")
    assert single.returncode == 0, single.stderr
    assert "not bit-exact" in single.stdout + single.stderr
    assert load_checkpoint(parts / "checkpoint.pt")["step"] == 25


@pytest.mark.parametrize("family", ["dsa", "drnet"])
def test_every_family_trains_data_parallel(tmp_path, family):
    result = pyro_dvae(*TINY, "--model", family, "--nproc", "2", "--steps", "4", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    payload = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert payload["step"] == 4 and payload["world_size"] == 2
    assert all(torch.isfinite(v).all() for v in payload["model"].values() if v.is_floating_point())


def _worker_pids(marker: str, rank: int) -> list[int]:
    """Processes whose environment holds ``marker`` and RANK=rank (the workers of one test run)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if marker.encode() in env and f"RANK={rank}".encode() in env:
            pids.append(int(entry.name))
    return pids


def _start(tmp_path: Path, marker: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYRO_DVAE_TEST_MARKER": marker.split("=")[1]}
    return subprocess.Popen([sys.executable, "-m", "pyro_dvae", *TINY, "--nproc", "2", "--steps", "100000",
                             "--out", str(tmp_path / "run"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _wait_for_training(run: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run / "checkpoint.pt").exists():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("training did not start")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the workers through /proc")
def test_killing_one_rank_stops_every_rank_with_one_clear_error(tmp_path):
    marker = f"PYRO_DVAE_TEST_MARKER={os.getpid()}-kill"
    proc = _start(tmp_path, marker)
    try:
        _wait_for_training(tmp_path / "run", proc)
        (victim,) = _worker_pids(marker, 1)
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "Traceback" not in err, err
    assert "rank 1 was killed (SIGKILL)" in err and "--resume" in err, err
    assert not _worker_pids(marker, 0), "rank 0 was left running"
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] >= 10  # the last checkpoint is whole


def test_ctrl_c_stops_every_rank_at_the_same_step_and_the_run_resumes(tmp_path):
    marker = f"PYRO_DVAE_TEST_MARKER={os.getpid()}-int"
    proc = _start(tmp_path, marker)
    try:
        _wait_for_training(tmp_path / "run", proc)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every process of the group
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    assert err.count("interrupted at step") == 1 and "--nproc 2 --resume" in err, err
    step = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"]
    resumed = pyro_dvae("train", "--nproc", "2", "--resume", str(tmp_path / "run"), "--steps", str(step + 5), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == step + 5


NAN_ON_RANK_1 = """
import os
if os.environ.get("RANK") == "1":  # rank 1's loss alone turns NaN at step 13
    from pyro_dvae.models.plans import SVIPlan, set_learning_rate
    real_loss = SVIPlan.loss
    SVIPlan.loss = lambda self, x, step: real_loss(self, x, step) * (float("nan") if step == 13 else 1.0)
"""


def test_a_nan_on_one_rank_stops_every_rank_and_keeps_the_last_good_checkpoint(tmp_path):
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(NAN_ON_RANK_1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "inject"), os.environ.get("PYTHONPATH", "")])}
    result = pyro_dvae(*TINY, "--nproc", "2", "--out", str(tmp_path / "run"), env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("loss became NaN/inf at step 13") == 1, result.stderr
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 10


def _collectives(rank: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    ranks, _ = Ranks.from_env(torch.device("cpu"))
    first_bad = torch.tensor(7 if rank == 1 else -1)
    loss = torch.tensor(float(rank + 1))
    results[rank] = (int(ranks.first_step(first_bad)), ranks.any_host(rank == 1, False),
                     float(ranks.sum_(loss)), ranks.gather(rank * 10))
    ranks.close()


def test_ranks_agree_on_the_first_non_finite_step_and_on_stopping():
    port = 29400 + os.getpid() % 500
    results = mp.Manager().dict()
    mp.spawn(_collectives, args=(port, results), nprocs=2)
    # A NaN on rank 1 alone is every rank's NaN; a stop request on one rank stops both.
    assert results[0] == results[1] == (7, (True, False), 3.0, [0, 10])


def test_batch_must_split_evenly_and_nproc_is_not_for_torchrun(tmp_path):
    result = pyro_dvae(*TINY, "--nproc", "3", "--steps", "2", "--out", str(tmp_path / "run"))
    assert result.returncode == 1 and "multiple of 3" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("Error:") == 1, result.stderr
    env = {"WORLD_SIZE": "2", "RANK": "0"}
    result = CliRunner(env=env).invoke(main, [*TINY, "--nproc", "2", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "under torchrun leave it out" in result.output


# -- the fast path --------------------------------------------------------------------------------
def _loss_and_grads(**train_options) -> tuple[torch.Tensor, list[torch.Tensor]]:
    config = preset("tiny", "squares").override("train", **train_options)
    torch.manual_seed(0)
    model = get_family("dvae").build(config.model)
    prepare(model, config.train)
    plan = SVIPlan(model, config.train)
    x = torch.rand(4, 3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    loss = plan.loss(x, 1)
    loss.backward()
    return loss, [p.grad for p in model.parameters() if p.grad is not None]


def test_fast_path_options_compute_the_same_elbo():
    loss, grads = _loss_and_grads()
    layout, layout_grads = _loss_and_grads(channels_last=True)
    torch.testing.assert_close(layout, loss, rtol=1e-5, atol=1e-3)
    for a, b in zip(layout_grads, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    half, half_grads = _loss_and_grads(precision="bf16")
    assert half.dtype == torch.float32  # the ELBO is summed in float32
    assert abs(float(half.detach() - loss.detach())) < 0.02 * abs(float(loss.detach()))  # bf16 networks: within 2%
    assert all(torch.isfinite(g).all() for g in half_grads)
    assert sum(float((a - b).abs().sum()) for a, b in zip(half_grads, grads, strict=True)) > 0  # it ran in bf16


def test_compiled_networks_compute_the_same_elbo_and_keep_checkpoint_keys(monkeypatch):
    # aot_eager: dynamo's graph capture and AOT autograd, as with inductor, without a minute of C++
    # compilation per test run (inductor itself is timed by benchmarks/speed/step_time.py --fast-path).
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", "aot_eager")
    loss, grads = _loss_and_grads()
    compiled, compiled_grads = _loss_and_grads(compile=True)
    torch.testing.assert_close(compiled, loss, rtol=1e-4, atol=1e-2)
    for a, b in zip(compiled_grads, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
    config = preset("tiny", "squares").override("train", compile=True)
    compiled_model, plain_model = get_family("dvae").build(config.model), get_family("dvae").build(config.model)
    prepare(compiled_model, config.train)
    assert compiled_model.state_dict().keys() == plain_model.state_dict().keys()  # checkpoints unchanged


def test_a_channels_last_run_resumes_to_the_same_bits(tiny_config, tmp_path):
    config = tiny_config.override("train", channels_last=True)
    whole = train(config, tmp_path / "whole", progress=False)
    train(config.override("train", steps=10), tmp_path / "part", progress=False)
    resumed = resume(tmp_path / "part", steps=20, progress=False)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name


def test_fast_path_flags_train_through_the_cli(tmp_path):
    result = CliRunner().invoke(main, [*TINY, "--steps", "4", "--precision", "bf16", "--channels-last",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    payload = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert payload["config"]["train"]["precision"] == "bf16" and payload["config"]["train"]["channels_last"]
    result = CliRunner().invoke(main, [*TINY, "--precision", "fp8", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "fp8" in result.output
