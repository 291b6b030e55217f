"""`pyro-dvae train` through the real Click entry point, on tiny configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import invoke

from pyro_dvae import __version__
from pyro_dvae.checkpoint import TRAINING_WEIGHTS
from pyro_dvae.errors import UserInputError
from pyro_dvae.runs import load_run

TINY = ["--data", "squares", "--preset", "tiny", "--quiet", "--data-option", "num_sets=32"]



def test_version_and_help():
    assert __version__ in invoke("--version").output
    help_text = invoke("train", "--help").output
    for flag in ("--data", "--preset", "--steps", "--batch-size", "--frames", "--f-dim", "--z-dim",
                 "--lr", "--seed", "--device", "--out", "--resume", "--config"):
        assert flag in help_text


def test_train_resume_and_flags_reach_the_config(tmp_path):
    out = tmp_path / "run"
    result = invoke("train", *TINY, "--steps", "6", "--f-dim", "5", "--z-dim", "3", "--frames", "4",
                    "--batch-size", "4", "--lr", "0.002", "--seed", "3", "--device", "cpu",
                    "--f-kl-weight", "0.25", "--lr-anneal", "0.5", "--weight-average", "0.9", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "device: cpu" in result.output and "preset: tiny" in result.output
    run = load_run(out)
    m, t = run.config.model, run.config.train
    assert (m.f_dim, m.z_dim, m.frames, t.batch_size, t.lr, t.seed, run.step) == (5, 3, 4, 4, 0.002, 3, 6)
    assert t.f_kl_weight == 0.25 and t.lr_anneal == 0.5 and t.weight_average == 0.9
    assert [m["lr"] for m in run.metrics() if m["split"] == "train"][-1] == pytest.approx(0.0002)
    result = invoke("train", "--resume", str(out), "--steps", "9", "--quiet")
    assert result.exit_code == 0, result.output
    assert load_run(out).step == 9
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 9


def test_config_file_then_flags(tmp_path):
    cfg = tmp_path / "my.toml"
    cfg.write_text('[model]\nf_dim = 7\nz_dim = 4\n[train]\nsteps = 3\n[data]\nsource = "squares"\n'
                   '[data.options]\nnum_sets = 16\n')
    out = tmp_path / "run"
    result = invoke("train", "--preset", "tiny", "--config", str(cfg), "--z-dim", "2", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    run = load_run(out)
    assert (run.config.model.f_dim, run.config.model.z_dim, run.step) == (7, 2, 3)
    # The run's own config.toml is a valid --config file.
    again = invoke("train", "--preset", "tiny", "--config", str(out / "config.toml"),
                   "--out", str(tmp_path / "again"), "--quiet")
    assert again.exit_code == 0, again.output
    assert load_run(tmp_path / "again").config == run.config


@pytest.mark.parametrize("args,message", [
    (["--data", "nope"], "unknown data source 'nope'"),
    (["--frames", "1"], "Invalid value for '--frames'"),
    (["--lr", "-1"], "Invalid value for '--lr'"),
    (["--preset", "huge"], "Invalid value for '--preset'"),
    (["--device", "cuda:7"], "no CUDA GPU"),
    (["--data-option", "oops"], "not KEY=VALUE"),
    (["--f-kl-weight", "0"], "Invalid value for '--f-kl-weight'"),
    (["--lr-anneal", "1"], "Invalid value for '--lr-anneal'"),
    (["--weight-average", "1"], "Invalid value for '--weight-average'"),
    (["--f-kl-weight", "0.5", "--elbo", "jit"], "--elbo jit compiles the plain ELBO"),
    (["--f-kl-weight", "0.5", "--model", "drnet"], "DrNet has no KL terms"),
])
def test_bad_flags_give_one_line_errors(args, message, tmp_path):
    out = tmp_path / "run"
    result = invoke("train", *TINY, *args, "--out", str(out)) if "--data" not in args else \
        invoke("train", "--preset", "tiny", *args, "--out", str(out))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # nothing half-written


def test_bad_paths_give_one_line_errors(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    result = invoke("train", *TINY, "--out", str(a_file))
    assert result.exit_code == 1 and "is a file" in result.output
    result = invoke("train", "--resume", str(tmp_path / "missing"))
    assert result.exit_code == 1 and "missing does not exist" in result.output
    result = invoke("train", "--resume", str(tmp_path))
    assert result.exit_code == 1 and "not a run directory" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("model = [")
    result = invoke("train", "--config", str(bad))
    assert result.exit_code == 1 and "not valid" in result.output
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[model]\nwidth = 3\n")
    result = invoke("train", "--config", str(unknown))
    assert result.exit_code == 1 and "unknown key(s) ['width'] in [model]" in result.output
    assert "Traceback" not in result.output


def test_auto_preset_follows_the_device(monkeypatch):
    import torch

    from pyro_dvae.cli.train import build_config

    cpu = build_config("auto", "sprites", None, "auto", {}, {})
    assert (cpu.model.image_size, cpu.train.batch_size, cpu.train.device) == (32, 32, "auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    paper = build_config("auto", "moving-mnist", None, "auto", {}, {})
    # The paper's appendix: 64x64, batch 120, N=3, Adam 1e-4, f 64 for Moving MNIST, z 2.
    m, t = paper.model, paper.train
    assert (m.image_size, m.conv_width, m.f_dim, m.z_dim, m.frames) == (64, 256, 64, 2, 3)
    assert (t.batch_size, t.lr, t.steps) == (120, 1e-4, 60_000)
    assert build_config("auto", "sprites", None, "auto", {}, {}).model.f_dim == 256


def test_no_flags_means_cpu_preset_on_a_machine_without_cuda(tmp_path, monkeypatch):
    import pyro_dvae.training as training

    seen = {}

    def fake_train(config, out, progress=True):
        seen["config"] = config
        raise UserInputError("stop here")

    monkeypatch.setattr(training, "train", fake_train)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = invoke("train", "--out", str(tmp_path / "run"))
    assert "device: cpu" in result.output and "preset: cpu (auto: no CUDA)" in result.output
    config = seen["config"]
    assert config.data.source == "sprites" and config.model.f_prior == "fitted-flow"
    assert (config.train.max_minutes, config.train.steps) == (14.5, 100_000)  # the budget ends the run
    assert config.train.channels_last and config.train.precision == "fp32"  # the CPU fast path, by measurement
    assert (config.model.z_dim, config.train.f_kl_weight) == (4, 0.1)  # by measurement: docs/ablation.md
    assert config.model.z_prior == "fitted-aggregate" and config.data.options == {"poses": "protocol"}
    assert config.train.elbo == "meanfield"  # analytic KLs


def test_the_default_run_trains_for_a_few_steps_through_the_cli(tmp_path, monkeypatch):
    """No flags but a step count and a smaller identity set: the default run's preset (with its
    wall-clock budget) trains, checkpoints and renders its figures."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "run"
    result = invoke("train", "--steps", "3", "--data-option", "limit_identities=4", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    run = load_run(out)
    assert run.step == 3 and run.config.train.max_minutes == 14.5 and run.config.model.image_size == 32
    assert run.model.f_prior.is_fitted  # the two-stage p(f) was fitted when training ended
    assert run.model.z_prior.is_fitted  # and p(z | f) became the aggregate posterior
    assert run.data("train").set_sizes[0] == 63  # the protocol's poses
    assert run.config.model.z_dim == 4  # the manifold figure spans z's two principal directions
    assert {p.name for p in (out / "figures").iterdir()} >= {"latent_manifold.png", "reconstructions.png"}


def test_the_64px_sprites_setting_trains_for_a_few_steps_through_the_cli(tmp_path, monkeypatch):
    """examples/sprites-64.toml: the cpu preset at 64x64 with folded pixel blocks, FiLM and a moving
    average of the weights, judged at 64x64 as drawn (no resizing)."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "run"
    example = Path(__file__).resolve().parents[1] / "examples" / "sprites-64.toml"
    result = invoke("train", "--config", str(example), "--steps", "3", "--data-option", "limit_identities=4",
                    "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    run = load_run(out)
    m = run.config.model
    assert (m.image_size, m.space_to_depth, m.decoder, run.config.train.max_minutes) == (64, 2, "film", 14.5)
    assert run.config.train.weight_average == 0.999
    assert TRAINING_WEIGHTS in torch.load(out / "checkpoint.pt", weights_only=True)  # 'model' holds the average
    assert run.model.frame_features.net[0].downscale_factor == 2  # the frames are 64x64, folded once
    result = invoke("evaluate", str(out), "--seeds", "1", "--limit", "9", "--quiet", "--out", str(tmp_path / "e.json"))
    assert result.exit_code == 0 and "judged at 64x64 (as drawn, no resizing)" in result.output, result.output


def test_the_default_moving_mnist_run_trains_for_a_few_steps_through_the_cli(tmp_path, monkeypatch):
    """`pyro-dvae train --data moving-mnist-1` with a step count and fewer sequences: its preset's
    translate decoder trains, checkpoints, fits its p(f) and draws its figures."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "run"
    result = invoke("train", "--data", "moving-mnist-1", "--steps", "3", "--data-option", "num_sequences=64",
                    "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    run = load_run(out)
    assert run.step == 3 and run.config.train.max_minutes == 14.5 and run.config.model.decoder == "translate"
    assert run.config.train.f_kl_weight == 0.03
    # The shift kernel narrows by schedule; the 3 training steps were counted for it.
    assert run.config.model.shift_sharpening == 1500 and int(run.model.emitter.trained_steps) == 3
    # The preset's 100,000 training sequences; the flag's 64 win for this run.
    assert run.config.data.options == {"train_sequences": 100_000, "num_sequences": 64}
    assert run.model.f_prior.is_fitted
    assert {p.name for p in (out / "figures").iterdir()} >= {"latent_manifold.png", "reconstructions.png"}


@pytest.mark.parametrize("family,data,option,field,value", [
    ("dsa", "moving-mnist-1", "num_sequences=32", ("train", "f_kl_weight"), 0.1),
    ("drnet", "sprites", "limit_identities=3", ("train", "lr"), 1e-3),
])
def test_dsas_and_drnets_screened_cpu_presets_train_through_the_cli(tmp_path, monkeypatch, family, data, option,
                                                                    field, value):
    """The presets the screens chose (docs/ablation.md) are what `pyro-dvae train` runs by default."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "run"
    result = invoke("train", "--model", family, "--data", data, "--steps", "2", "--data-option", option,
                    "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    run = load_run(out)
    assert run.step == 2 and run.config.model.family == family
    assert getattr(getattr(run.config, field[0]), field[1]) == value


def test_the_cpu_preset_gives_z_the_dimensions_of_the_data_set_dynamics():
    from pyro_dvae.config import preset

    assert preset("cpu", "sprites").model.z_dim == 4  # about 178 poses per identity
    assert preset("cpu", "moving-mnist-1").model.z_dim == 2  # a 2-D position
    mnist = preset("cpu", "moving-mnist")  # the settings its numbers were measured with
    assert (mnist.model.z_prior, mnist.train.elbo) == ("conditional-gaussian", "trace")
    assert preset("cpu", "moving-mnist-1").model.z_prior == "conditional-gaussian"
    # On 32-wide convolutions (docs/ablation.md): one digit's canvas is drawn by f and moved by z; two
    # digits, which move apart, are two canvases, each moved by its own 2-D half of z; Sprites keeps
    # the paper's projection at 64.
    for source, canvases in (("moving-mnist", 2), ("moving-mnist-1", 1)):
        model = preset("cpu", source).model
        assert (model.decoder, model.canvases, model.z_dim, model.conv_width) == ("translate", canvases,
                                                                                 2 * canvases, 32)
    # The public Moving MNIST file (recognised by its name) holds two digits: their preset, less the
    # generator's options; another file keeps the generic one.
    public = preset("cpu", "/data/mnist_test_seq.npy")
    assert public.model == mnist.model and public.data.options == {}
    assert preset("paper", "/data/mnist_test_seq.npy").model.f_dim == 64  # the paper's appendix A
    assert preset("cpu", "/data/clips.npy").model.decoder == "concat"
    assert preset("cpu", "sprites").model.conv_width == 64
    assert preset("cpu", "sprites").model.decoder == "concat"
    assert preset("paper", "sprites").model.z_dim == 2  # the paper's appendix C, unchanged


def test_preset_settings_copies_the_table_and_merges_a_kinds_measured_changes_into_cpu_only():
    from pyro_dvae.config import preset_settings

    table = {"cpu": {"train": {"lr": 1.0, "steps": 5}}, "paper": {"train": {"lr": 1.0}}}
    by_kind = {"moving-mnist": {"train": {"lr": 2.0}, "data": {"train_sequences": 7}}}
    merged = preset_settings(table, "cpu", "moving-mnist", by_kind)
    assert merged == {"train": {"lr": 2.0, "steps": 5}, "data": {"train_sequences": 7}}
    merged["train"]["lr"] = 3.0
    assert table["cpu"]["train"]["lr"] == 1.0 and by_kind["moving-mnist"]["train"]["lr"] == 2.0  # copies
    assert preset_settings(table, "paper", "moving-mnist", by_kind) == {"train": {"lr": 1.0}}
    assert preset_settings(table, "cpu", "sprites", by_kind) == {"train": {"lr": 1.0, "steps": 5}}


def test_the_cpu_preset_trains_on_the_protocols_poses_and_a_flag_gives_the_sheet(tmp_path, monkeypatch):
    from pyro_dvae.cli.train import build_config
    from pyro_dvae.config import preset

    assert preset("cpu", "sprites").data.options == {"poses": "protocol"}
    # DSA's and DrNet's screened learning rates on Sprites (docs/ablation.md); elsewhere as before.
    assert preset("cpu", "sprites", "drnet").train.lr == 1e-3
    assert (preset("cpu", "sprites", "dsa").train.lr, preset("cpu", "moving-mnist-1", "dsa").train.lr) == (2e-3, 1e-3)
    assert (preset("cpu", "sprites", "dsa").train.f_kl_weight, preset("cpu", "moving-mnist-1", "dsa").train.f_kl_weight,
            preset("cpu", "moving-mnist", "dsa").train.f_kl_weight) == (1.0, 0.1, 1.0)
    assert preset("cpu", "moving-mnist-1", "drnet").train.lr == preset("paper", "sprites", "drnet").train.lr == 2e-3
    assert preset("paper", "sprites").data.options == {}  # the paper's whole sheet
    assert preset("cpu", "moving-mnist").data.options == {"train_sequences": 100_000}
    assert preset("cpu", "moving-mnist-1").data.options == {"train_sequences": 100_000}
    assert preset("paper", "moving-mnist-1").data.options == {}
    config = build_config("cpu", "sprites", None, "cpu", {}, {"poses": "sheet", "limit_identities": 3})
    assert config.data.options == {"poses": "sheet", "limit_identities": 3}
    result = invoke("train", "--data-option", "poses=front", "--steps", "1", "--out", str(tmp_path / "bad"))
    assert result.exit_code != 0 and "unknown poses 'front'; use sheet" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "bad" / "checkpoint.pt").exists()


@pytest.mark.gpu
def test_a_cpu_run_resumes_on_the_gpu_and_back_and_evaluates_there(tmp_path):
    """`--resume` picks the device anew (auto: the GPU): the batch stream saved by one kind of device
    cannot seed the other's generator, so the run goes on from a fresh one and says so."""
    out = tmp_path / "run"
    assert invoke("train", *TINY, "--steps", "4", "--device", "cpu", "--out", str(out)).exit_code == 0
    on_gpu = invoke("train", "--resume", str(out), "--steps", "8", "--device", "cuda")
    assert on_gpu.exit_code == 0 and "saved on another kind of device" in on_gpu.output, on_gpu.output
    back = invoke("train", "--resume", str(out), "--steps", "10", "--device", "cpu")
    assert back.exit_code == 0 and "saved on another kind of device" in back.output, back.output
    evaluated = invoke("evaluate", str(out), "--seeds", "1", "--quiet")  # --device auto: the GPU
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((out / "evaluation.json").read_text())["step"] == 10
