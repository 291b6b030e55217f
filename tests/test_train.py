"""Training: the ELBO improves, the model learns the static/dynamic split, resume is exact,
NaN and Ctrl-C are handled, checkpoints are atomic and safe to load."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from pyro_dvae.checkpoint import load_checkpoint, save_checkpoint
from pyro_dvae.errors import TrainingDiverged, TrainingInterrupted, UserInputError
from pyro_dvae.models.plans import SVIPlan
from pyro_dvae.runs import load_run
from pyro_dvae.training import resume, train
from pyro_dvae.training.averaging import WeightAverage


def test_elbo_is_finite_and_rises(tiny_config, tmp_path):
    config = tiny_config.override("train", steps=60, log_every=10, eval_every=20)
    run = train(config, tmp_path / "run", progress=False)
    heldout = [m["elbo_per_frame"] for m in run.metrics() if m["split"] == "test"]
    batches = [m["elbo_per_frame"] for m in run.metrics() if m["split"] == "train"]
    assert len(heldout) == 3 and all(torch.isfinite(torch.tensor(heldout)))
    assert heldout[-1] > heldout[0] + 50  # nats per frame: far beyond noise
    assert batches[-1] > batches[0]
    for name in ("reconstructions", "prior_samples", "latent_manifold", "training_curves"):
        assert (run.figures_dir / f"{name}.png").stat().st_size > 1000


def test_resume_equals_uninterrupted_run(tiny_config, tmp_path):
    config = tiny_config.override("train", steps=16, log_every=4, eval_every=6, checkpoint_every=5,
                                  kl_warmup=10)
    full = train(config, tmp_path / "full", progress=False)
    half = train(config.override("train", steps=8), tmp_path / "half", progress=False)
    resumed = resume(tmp_path / "half", steps=16, progress=False)
    assert resumed.step == full.step == 16
    for (name, p_full), p_res in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(p_full, p_res), name
    assert half.step == 8
    # Metrics continue without duplicates.
    steps = [m["step"] for m in resumed.metrics() if m["split"] == "train"]
    assert steps == sorted(set(steps))


def test_a_run_saved_on_another_kind_of_device_resumes_and_says_it_is_not_bit_exact(tiny_config, tmp_path, capsys):
    """A CUDA generator's state (16 bytes) cannot seed the CPU's batch stream, nor the reverse: a run
    trained on a GPU and resumed on a CPU (or the reverse, as `--resume` picks the device anew) goes on
    from a fresh stream and says so, where it used to stop with torch's 'RNG state is wrong size'."""
    train(tiny_config.override("train", steps=4), tmp_path / "run", progress=False)
    path = tmp_path / "run" / "checkpoint.pt"
    payload = load_checkpoint(path)
    payload["rng"] |= {"batches": torch.zeros(16, dtype=torch.uint8), "cuda": torch.zeros(16, dtype=torch.uint8)}
    save_checkpoint(path, {k: v for k, v in payload.items() if k not in ("format", "version")})
    capsys.readouterr()
    resumed = resume(tmp_path / "run", steps=8, progress=False)
    assert resumed.step == 8 and all(torch.isfinite(p).all() for p in resumed.model.parameters())
    assert "saved on another kind of device" in capsys.readouterr().out
    resume(tmp_path / "run", steps=10, progress=False)  # saved on this device now: no such message
    assert "another kind of device" not in capsys.readouterr().out


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tiny_config, tmp_path, monkeypatch):
    real = SVIPlan.loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 13 else loss

    monkeypatch.setattr(SVIPlan, "loss", poisoned)
    config = tiny_config.override("train", steps=30, log_every=5, checkpoint_every=10, eval_every=100)
    with pytest.raises(TrainingDiverged, match="step 13"):
        train(config, tmp_path / "run", progress=False)
    kept = load_run(tmp_path / "run")
    assert kept.step == 10
    assert all(torch.isfinite(p).all() for p in kept.model.parameters())


def test_ctrl_c_saves_a_checkpoint_that_resumes(tiny_config, tmp_path, monkeypatch):
    real = SVIPlan.loss
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(SVIPlan, "loss", interrupted)
    config = tiny_config.override("train", steps=20, checkpoint_every=100, eval_every=100)
    with pytest.raises(TrainingInterrupted, match="step 7"):
        train(config, tmp_path / "run", progress=False)
    assert load_run(tmp_path / "run").step == 7
    assert resume(tmp_path / "run", progress=False).step == 20


def test_checkpoint_loading_never_runs_code(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "checkpoint.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"format": "pyro-dvae-checkpoint", "payload": Exploit()}, fh)
    with pytest.raises(UserInputError, match="not a safe pyro-dvae checkpoint"):
        load_checkpoint(evil)
    with pytest.raises(UserInputError):
        load_run(tmp_path)
    assert not marker.exists()


def test_foreign_and_corrupt_checkpoints_are_refused(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(UserInputError, match="not a pyro-dvae checkpoint"):
        load_checkpoint(foreign)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UserInputError, match="not a safe pyro-dvae checkpoint"):
        load_checkpoint(corrupt)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp files left


def test_run_directory_round_trip(tiny_config, tmp_path):
    run = train(tiny_config.override("train", steps=5), tmp_path / "run", progress=False)
    loaded = load_run(tmp_path / "run")
    assert loaded.config == run.config and loaded.step == 5
    for a, b in zip(run.model.parameters(), loaded.model.parameters(), strict=True):
        assert torch.equal(a, b)
    x = loaded.data("test").sample(2, 3)
    assert x.shape == (2, 3, 3, 16, 16)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert all({"step", "split", "elbo_per_frame"} <= set(json.loads(line)) for line in lines)
    with pytest.raises(UserInputError, match="already holds a run"):
        train(tiny_config, tmp_path / "run", progress=False)


@pytest.mark.parametrize("elbo", ["meanfield", "jit"])
def test_every_elbo_option_trains(tiny_config, tmp_path, elbo):
    config = tiny_config.override("train", steps=40, elbo=elbo, eval_every=20, log_every=10)
    run = train(config, tmp_path / elbo, progress=False)
    heldout = [m["elbo_per_frame"] for m in run.metrics() if m["split"] == "test"]
    assert heldout[-1] > heldout[0] + 50


@pytest.mark.parametrize("decoder", ["film", "mlp", "translate", "translate-sharpening"])
def test_every_decoder_option_learns(tiny_config, tmp_path, decoder):
    sharpening = {"shift_sharpening": 20} if decoder.endswith("-sharpening") else {}
    config = tiny_config.override("model", decoder=decoder.removesuffix("-sharpening"), **sharpening)
    config = config.override("train", steps=40, eval_every=20, log_every=10)
    run = train(config, tmp_path / decoder, progress=False)
    heldout = [m["elbo_per_frame"] for m in run.metrics() if m["split"] == "test"]
    assert run.config.model.decoder == decoder.removesuffix("-sharpening") and heldout[-1] > heldout[0] + 50
    if sharpening:  # the schedule counted every training step and halved the widest kernel twice
        assert run.model.emitter.trained_steps.item() == 40
        assert run.model.emitter.shift_width().item() == pytest.approx(run.config.model.image_size / 4 / 4)


def test_space_to_depth_learns(tiny_config, tmp_path):
    config = tiny_config.override("model", space_to_depth=2).override("train", steps=40, eval_every=20,
                                                                         log_every=10)
    run = train(config, tmp_path / "folded", progress=False)
    heldout = [m["elbo_per_frame"] for m in run.metrics() if m["split"] == "test"]
    assert run.model.frame_features.net[0].downscale_factor == 2 and heldout[-1] > heldout[0] + 50


@pytest.mark.gpu
def test_training_step_never_synchronises_with_the_gpu(tiny_config, tmp_path):
    """Data sampling, ELBO, backward and Adam all stay on the device (the host reads only at logs)."""
    from pyro_dvae.training import Engine, FamilyStage

    config = tiny_config.override("train", device="cuda")
    trainer = Engine(config, tmp_path / "run", FamilyStage(config), progress=False)
    trainer.setup()
    trainer.step(1)  # warm-up: lazy CUDA initialisation may synchronise once
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(2, 5):
            trainer.step(step)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_a_spent_wall_clock_budget_ends_the_run_like_a_finished_one(tiny_config, tmp_path, capsys):
    config = tiny_config.override("train", steps=1000, max_minutes=1e-6, checkpoint_every=500, eval_every=500)
    run = train(config, tmp_path / "run", progress=False)
    assert run.step == 1 and load_run(tmp_path / "run").step == 1  # checkpointed where it stopped
    assert [m["step"] for m in run.metrics() if m["split"] == "test"] == [1]
    assert (run.figures_dir / "reconstructions.png").exists()
    printed = capsys.readouterr()
    assert "budget of 1e-06 min was spent at step 1 of 1000" in printed.out + printed.err
    # Without a budget the run continues from there to its planned length.
    assert resume(tmp_path / "run", steps=5, max_minutes=0, progress=False).step == 5


def test_lr_anneal_lowers_the_rate_for_the_last_share_of_the_steps_and_a_resume_follows_its_own_steps(
        tiny_config, tmp_path):
    config = tiny_config.override("train", steps=12, lr=2e-3, lr_anneal=0.25, log_every=1, eval_every=100,
                                  checkpoint_every=100)
    run = train(config, tmp_path / "run", progress=False)

    def rates(metrics):
        return [(m["step"], m["lr"]) for m in metrics if m["split"] == "train"]

    full, low = 2e-3, pytest.approx(2e-4)
    assert rates(run.metrics()) == [(s, full) for s in range(1, 10)] + [(s, low) for s in (10, 11, 12)]
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["optimizer"]["param_groups"][0]["lr"]
    assert saved == low  # the rate in the optimiser itself, not only in the log
    # A resume anneals the last quarter of its own --steps: to 16, step 12 is already inside it ...
    assert rates(resume(tmp_path / "run", steps=16, progress=False).metrics())[-4:] == [(s, low) for s in range(13, 17)]
    # ... to 40, steps 17-30 are back at the full rate and 31-40 lowered again.
    logged = dict(rates(resume(tmp_path / "run", steps=40, progress=False).metrics()))
    assert [logged[s] for s in range(17, 41)] == [full] * 14 + [low] * 10


def test_lr_anneal_under_a_wall_clock_budget_lowers_the_rate_once_for_its_last_share(tiny_config, tmp_path):
    config = tiny_config.override("train", steps=10**6, max_minutes=0.05, lr=2e-3, lr_anneal=0.5, log_every=1,
                                  eval_every=10**6, checkpoint_every=10**6)
    run = train(config, tmp_path / "run", progress=False)
    rates = [m["lr"] for m in run.metrics() if m["split"] == "train"]
    switch = rates.index(pytest.approx(2e-4))
    assert switch > 0 and set(rates[:switch]) == {2e-3}
    assert rates[switch:] == [pytest.approx(2e-4)] * (len(rates) - switch)  # lowered once, for the rest


def test_weight_average_is_the_warmed_up_moving_average_of_the_trained_weights():
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.5)
    expected = [p.detach().clone() for p in model.parameters()]
    for step in range(1, 6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(float(step))
        average.update(step)
        decay = min(0.5, (1 + step) / (10 + step))  # warmed up: 2/11, 3/12, ... until 0.5
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, model.parameters(), strict=True)]
    saved = average.checkpoint(model)
    for (name, p), e in zip(model.named_parameters(), expected, strict=True):
        assert torch.allclose(saved["model"][name], e) and torch.equal(saved["model_training"][name], p)
        assert not torch.allclose(e, p)


def test_a_run_that_averages_its_weights_is_used_with_the_average_and_resumes_exactly(tiny_config, tmp_path):
    config = tiny_config.override("train", steps=16, weight_average=0.8, log_every=4, eval_every=6,
                                  checkpoint_every=5)
    train(config, tmp_path / "full", progress=False)
    full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    # What evaluate, sample and predict load is the average, not the last trained weights ...
    loaded = load_run(tmp_path / "full").model.state_dict()
    assert all(torch.equal(value, full["model"][name]) for name, value in loaded.items())
    differ = [n for n, v in full["model_training"].items() if v.is_floating_point() and not torch.equal(v, loaded[n])]
    assert len(differ) > len(loaded) // 2, differ
    # ... and a resume continues both the trained weights and their average exactly.
    train(config.override("train", steps=8), tmp_path / "half", progress=False)
    resume(tmp_path / "half", steps=16, progress=False)
    resumed = load_checkpoint(tmp_path / "half" / "checkpoint.pt")
    for key in ("model", "model_training"):
        for name, value in full[key].items():
            assert torch.equal(value, resumed[key][name]), (key, name)
