"""Video prediction in latent space: SSIM, shapes and determinism, every family through the CLI,
and a DVAE predictor that beats repeating the last frame."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from cli_helpers import invoke

from pyro_dvae import posterior
from pyro_dvae.config import TrainConfig, preset
from pyro_dvae.data import load_frame_sets
from pyro_dvae.evaluation.metrics import ssim
from pyro_dvae.prediction import PredictorConfig, dynamics_predictor, forecast, train_predictor
from pyro_dvae.prediction.predictor import default_predictor_config, load_predictor
from pyro_dvae.runs import load_run
from pyro_dvae.training import train

BOUNCING = {"num_sets": 16, "motion": "bounce", "frames_per_set": 12}



def test_ssim_is_one_for_identical_frames_and_falls_with_noise():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32).mul(0.5).add(0.25)
    assert torch.allclose(ssim(x, x), torch.ones(4))
    values = [float(ssim(x, (x + s * torch.randn_like(x)).clamp(0, 1)).mean()) for s in (0.02, 0.1, 0.3)]
    assert 1 > values[0] > values[1] > values[2]
    assert ssim(x[:, :1, :8, :8], x[:, :1, :8, :8]).shape == (4,)  # frames smaller than the window


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny run of every family on bouncing squares (DVAE and DrNet with a predictor)."""
    root, out = tmp_path_factory.mktemp("prediction"), {}
    for family in ("dvae", "dsa", "drnet"):
        config = preset("tiny", "squares", family).override("data", options=BOUNCING)
        run = train(config.override("train", steps=6), root / family, progress=False)
        if family != "dsa":
            settings = dataclasses.replace(default_predictor_config(run), hidden=8, window=6)
            train_predictor(run, TrainConfig(steps=5, batch_size=8, log_every=5, eval_every=5, checkpoint_every=5,
                                             eval_batches=1), settings, progress=False)
        out[family] = load_run(run.path)
    return out


@pytest.mark.parametrize("family", ["dvae", "dsa", "drnet"])
def test_shapes_determinism_and_a_zero_horizon(runs, family):
    run = runs[family]
    x = run.data("test", ordered=True).sample_windows(3, 7, torch.Generator().manual_seed(0))
    predict, stochastic = dynamics_predictor(run)
    assert stochastic == (family == "dsa")  # its prior; the latent predictors are deterministic by default

    def draw(seed, horizon=4, samples=2):
        torch.manual_seed(seed)
        return forecast(run.model, predict, x[:, :3], horizon, samples, torch.Generator().manual_seed(seed))

    context, predicted = draw(0)
    assert context.shape == (3, 3, 3, 16, 16) and predicted.shape == (2, 3, 4, 3, 16, 16)
    assert torch.equal(draw(0)[1], predicted)  # same seed, same prediction
    if stochastic:
        assert not torch.equal(draw(1)[1], predicted)
    # A horizon of 0 gives back the reconstruction of the context, and nothing more.
    context0, nothing = draw(0, horizon=0)
    assert nothing.shape[2] == 0
    torch.manual_seed(0)
    assert torch.allclose(context0, posterior.reconstruct(run.model, x[:, :3], torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("family", ["dvae", "dsa", "drnet"])
def test_predict_cli_writes_figures_and_per_step_metrics(runs, family, tmp_path):
    result = invoke("predict", runs[family].path, "--context", "3", "--horizon", "4", "--samples", "2",
                    "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "p" / "prediction.json").read_text())
    assert report["model"] == family and report["horizon"] == 4 and report["samples"] == (2 if family == "dsa" else 1)
    for key in ("psnr_mean", "ssim_mean", "psnr_best", "ssim_best"):
        assert len(report["metrics"][key]) == 4
    best, mean = report["metrics"]["ssim_best"], report["metrics"]["ssim_mean"]
    assert all(b >= m - 1e-6 for b, m in zip(best, mean, strict=True))  # the best sample is at least the mean
    assert {p.stem for p in (tmp_path / "p").glob("*.png")} == {"predictions", "rollout"}


def test_train_predictor_cli_trains_resumes_and_refuses_what_makes_no_sense(tmp_path):
    config = preset("tiny", "squares").override("data", options=BOUNCING)
    run = train(config.override("train", steps=4), tmp_path / "run", progress=False)
    result = invoke("predict", run.path, "--out", tmp_path / "p")
    assert result.exit_code == 1 and "train one with `pyro-dvae train-predictor" in result.output
    result = invoke("train-predictor", run.path, "--steps", "6", "--window", "5", "--hidden", "8", "--stochastic",
                    "--quiet")
    assert result.exit_code == 0, result.output
    assert "stochastic predictor at step 6" in result.output
    sampled = load_predictor(load_run(run.path))  # a Gaussian over z_t+1: its rollouts are drawn
    z, f = torch.randn(3, 2, sampled.lstm.input_size - 8), torch.randn(3, 8)
    assert sampled.cfg.stochastic and not torch.equal(sampled.rollout(z, f, 4), sampled.rollout(z, f, 4))
    result = invoke("train-predictor", run.path, "--resume", "--steps", "9", "--quiet")
    assert result.exit_code == 0 and "step 9" in result.output, result.output
    result = invoke("train-predictor", run.path, "--steps", "6", "--quiet")
    assert result.exit_code == 1 and "already has a predictor" in result.output
    for flags in ([], ["--deterministic"]):  # the default, and its explicit form: rollouts that repeat exactly
        (run.path / "predictor.pt").unlink()
        result = invoke("train-predictor", run.path, "--steps", "4", "--hidden", "8", *flags, "--quiet")
        assert result.exit_code == 0 and "deterministic predictor at step 4" in result.output, result.output
    predictor = load_predictor(load_run(run.path))
    assert torch.equal(predictor.rollout(z, f, 4), predictor.rollout(z, f, 4))
    dsa = train(preset("tiny", "squares", "dsa").override("data", options=BOUNCING).override("train", steps=2),
                tmp_path / "dsa", progress=False)
    result = invoke("train-predictor", dsa.path, "--quiet")
    assert result.exit_code == 1 and "own dynamics prior" in result.output


def test_predictor_resume_equals_an_uninterrupted_predictor(tmp_path):
    config = preset("tiny", "squares").override("data", options=BOUNCING).override("train", steps=3)
    small = TrainConfig(steps=8, batch_size=8, log_every=4, eval_every=4, checkpoint_every=4, eval_batches=1)
    a = train(config, tmp_path / "a", progress=False)
    b = train(config, tmp_path / "b", progress=False)
    full = train_predictor(a, small, PredictorConfig(hidden=8, window=6), progress=False)
    from pyro_dvae.prediction import resume_predictor

    train_predictor(b, TrainConfig(**{**small.__dict__, "steps": 4}), PredictorConfig(hidden=8, window=6),
                    progress=False)
    resumed = resume_predictor(load_run(b.path), steps=8, progress=False)
    for (name, x), y in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


@pytest.mark.slow
def test_a_dvae_predictor_beats_repeating_the_last_frame(tmp_path):
    """Squares bouncing at constant speed: after short training the predicted frames are closer
    to the truth than the last context frame repeated (by mean squared error)."""
    data = {"num_sets": 256, "motion": "bounce", "frames_per_set": 12}
    config = preset("tiny", "squares").override("data", options=data)
    config = config.override("model", conv_width=32, pair_width=32, hidden=64, z_dim=2)
    config = config.override("train", steps=1500, batch_size=32, lr=2e-3, log_every=100, eval_every=1500,
                             checkpoint_every=1500)
    run = train(config, tmp_path / "run", progress=False)
    train_predictor(run, TrainConfig(steps=600, batch_size=32, lr=3e-3, log_every=100, eval_every=600,
                                     checkpoint_every=600, eval_batches=1),
                    PredictorConfig(hidden=64, window=10), progress=False)
    run = load_run(run.path)
    test = load_frame_sets("squares", "test", motion="bounce", frames_per_set=12)
    x = test.frames(torch.arange(64)[:, None], torch.arange(10))
    predict, _ = dynamics_predictor(run)
    torch.manual_seed(0)
    _, predicted = forecast(run.model, predict, x[:, :5], 5, 1)
    model_error = ((predicted[0] - x[:, 5:]) ** 2).mean()
    repeat_error = ((x[:, 4:5].expand(-1, 5, -1, -1, -1) - x[:, 5:]) ** 2).mean()
    assert model_error < 0.8 * repeat_error
