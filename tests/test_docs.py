"""The documentation builds: the API reference from the docstrings and every page, with warnings
as errors (a renamed function or a broken link fails here, not on a reader), and one version."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import pyro_dvae

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists(),
                    reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_the_docs_build_with_warnings_as_errors(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    result = subprocess.run([str(mkdocs) if mkdocs.exists() else "mkdocs", "build", "--strict", "--site-dir",
                             str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference").is_dir()


def test_one_version_number():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {pyro_dvae.__version__}" in changelog or f"## [{pyro_dvae.__version__}]" in changelog


def test_the_readme_stays_short_enough_for_a_newcomer():
    """At most 250 lines (details live in docs/), and the two install commands stay first."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250, "move details from README.md to a docs/ page"
    assert 'pip install -e ".[test]" && python -m pytest' in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]" && python -m pytest' in ci  # CI runs the README's test command
