"""Shared fixtures: tiny configs and data so that every test runs in seconds on a CPU."""

from __future__ import annotations

import os

import pyro
import pytest
import torch

from pyro_dvae.config import RunConfig, preset

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The tests run in one worker per core (pyproject's addopts: -n auto). Torch processes that share
    # cores slow each other down several-fold, so each worker, and every process a test starts, keeps
    # to one thread.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

#: Read once, before any test hides the GPU.
GPU_PRESENT = torch.cuda.is_available()


@pytest.fixture(autouse=True)
def _cpu_unless_marked_gpu(request, monkeypatch):
    """Tests mean the CPU unless marked ``gpu``: a GPU in the machine would otherwise change what
    `--device auto` (the default of train and evaluate) picks, in this process and in every process
    a test starts. ``gpu`` tests run where CUDA is present and are skipped elsewhere."""
    if request.node.get_closest_marker("gpu"):
        if not GPU_PRESENT:
            pytest.skip("needs a CUDA GPU")
        return
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(autouse=True)
def _fresh_state():
    # Tests run with Pyro's validation on (it checks shapes and supports), and start seeded.
    pyro.clear_param_store()
    torch.manual_seed(0)
    with pyro.validation_enabled(True):
        yield


@pytest.fixture
def tiny_config() -> RunConfig:
    """A config that trains on the squares source in well under a second per 10 steps."""
    return preset("tiny", "squares").override("data", options={"num_sets": 64})
