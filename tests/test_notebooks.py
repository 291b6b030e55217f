"""The tutorial notebooks run top to bottom without errors in fast mode (PYRO_DVAE_FAST=1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# Fast mode runs each in well under a minute on 2 CPU cores; the limit only catches hangs.
CELL_TIMEOUT_S = 300


def test_all_tutorials_are_collected():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_"], NOTEBOOKS


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear the outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, tmp_path, monkeypatch):
    # The kernel inherits this process's environment; runs/ and caches are written under tmp_path.
    monkeypatch.setenv("PYRO_DVAE_FAST", "1")
    monkeypatch.setenv("PYRO_DVAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    assert (tmp_path / "runs").is_dir()
