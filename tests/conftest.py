"""Shared fixtures: tiny configs and data so that every test runs in seconds on a CPU."""

from __future__ import annotations

import pyro
import pytest
import torch

from pyro_dvae.config import RunConfig, preset


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
