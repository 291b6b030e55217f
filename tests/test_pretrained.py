"""The models shipped in the package: every command reads them, their cards' numbers reproduce,
their files are checked, they are read-only, and they are what the default commands train today."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import invoke, one_line_error

from pyro_dvae import load_run, pretrained
from pyro_dvae.config import preset
from pyro_dvae.errors import UserInputError
from pyro_dvae.evaluation import evaluate_run

NAMES = pretrained.names()




def test_sprites_and_one_digit_moving_mnist_ship_within_ten_megabytes():
    assert {"sprites", "moving-mnist-1"} <= set(NAMES)
    root = Path(pretrained.resolve("pretrained:sprites")).parent
    size = sum(p.stat().st_size for name in NAMES for p in (root / name).iterdir())
    assert size <= 10 * 2**20, f"{size / 2**20:.1f} MB"


@pytest.mark.parametrize("name", NAMES)
def test_every_command_runs_on_every_shipped_model(name, tmp_path, monkeypatch):
    reference = f"pretrained:{name}"
    monkeypatch.chdir(tmp_path)  # where the default output folders go: runs/pretrained-NAME/
    result = invoke("sample", reference, "--sequences", "2", "--frames", "3")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / f"pretrained-{name}" / "samples" / "index.md").is_file()
    assert f"read {reference} at step" in result.output
    result = invoke("inspect", reference, "--out", tmp_path / "inspect", "--sequences", "2", "--frames", "3",
                    "--draws", "4")
    assert result.exit_code == 0, result.output
    result = invoke("evaluate", reference, "--seeds", "1", "--limit", "18", "--out", tmp_path / "e.json", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "e.json").read_text())["step"] == load_run(reference).step
    result = invoke("predict", reference, "--limit", "4", "--samples", "1", "--out", tmp_path / "predict")
    assert result.exit_code == 0, result.output  # with the predictor shipped beside it
    assert (tmp_path / "predict" / "prediction.json").is_file()
    # Nothing was written into the package.
    assert sorted(p.name for p in pretrained.resolve(reference).iterdir() if p.name != "__pycache__") == sorted(
        pretrained.manifest()[name]["files"])


def test_the_list_the_card_and_the_python_api(tmp_path):
    result = invoke("pretrained")
    assert result.exit_code == 0 and all(f"pretrained:{name}" in result.output for name in NAMES)
    card = invoke("pretrained", "--show", "sprites").output
    for fragment in ("pyro-dvae train --data sprites", "commit", "machine", "minutes", "licence", "sha256",
                     "reconstruction.elbo_per_frame"):
        assert fragment in card
    run = load_run("pretrained:sprites")
    assert run.reference == "pretrained:sprites" and not run.model.training
    assert bool(run.model.f_prior.fitted) and bool(run.model.z_prior.fitted)  # the fitted priors ship


def test_evaluating_the_shipped_sprites_model_reproduces_its_card():
    shipped = json.loads((pretrained.resolve("pretrained:sprites") / "evaluation.json").read_text())
    check = shipped["check"]
    ours = evaluate_run(load_run("pretrained:sprites"), seeds=check["seeds"], limit=check["limit"], progress=False)
    for section, metrics in check["metrics"].items():
        for metric, value in metrics.items():
            if 0 <= value["mean"] <= 1:  # accuracies and rates: within a point
                assert ours["metrics"][section][metric]["mean"] == pytest.approx(value["mean"], abs=0.01), metric


def test_a_changed_file_is_refused_never_used(tmp_path, monkeypatch):
    copy = tmp_path / "pretrained"
    shutil.copytree(pretrained.resolve("pretrained:sprites").parent, copy)
    monkeypatch.setattr(pretrained, "_root", lambda: copy)
    raw = bytearray((copy / "sprites" / "checkpoint.pt").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (copy / "sprites" / "checkpoint.pt").write_bytes(bytes(raw))
    with pytest.raises(UserInputError, match="does not match its recorded sha256"):
        load_run("pretrained:sprites")
    one_line_error(invoke("sample", "pretrained:sprites"), "checkpoint.pt", "sha256", "reinstall")
    one_line_error(invoke("sample", "pretrained:nothing"), "no shipped model called 'nothing'")


def test_a_shipped_model_is_read_only_and_a_copy_is_a_run_of_your_own(tmp_path):
    one_line_error(invoke("train", "--resume", "pretrained:moving-mnist-1", "--steps", "10"), "read-only",
                   "pyro-dvae pretrained copy moving-mnist-1 DIR")
    one_line_error(invoke("train-predictor", "pretrained:moving-mnist-1"), "read-only", "copy")
    result = invoke("pretrained", "copy", "moving-mnist-1", tmp_path / "mine")
    assert result.exit_code == 0, result.output
    step = load_run(tmp_path / "mine").step
    result = invoke("train", "--resume", tmp_path / "mine", "--steps", step + 2, "--quiet")
    assert result.exit_code == 0 and "with a fresh optimiser" in result.output, result.output
    assert load_run(tmp_path / "mine").step == step + 2


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_model_is_its_familys_default_preset_today(name):
    shipped = load_run(f"pretrained:{name}").config
    default = preset("cpu", shipped.data.source, shipped.model.family)
    default = default.override("model", channels=shipped.model.channels).override("train", device="cpu", seed=0)
    assert shipped == default, (f"the shipped model {name} was trained with another configuration than its family's "
                                "default preset today; rerun `python scripts/make_pretrained.py`")
