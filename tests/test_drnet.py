"""DrNet (Denton & Birodkar 2017) as a model family: its losses and two optimisers, every command
on a tiny run, exact resume, and a short learning test on moving squares."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from squares_measures import centre, colour

from pyro_dvae import posterior
from pyro_dvae.cli import main
from pyro_dvae.config import preset
from pyro_dvae.data import load_frame_sets
from pyro_dvae.models.drnet import DrNet, DrNetPlan
from pyro_dvae.runs import load_run
from pyro_dvae.training import train


def tiny(**train_overrides):
    config = preset("tiny", "squares", "drnet").override("train", **train_overrides)
    torch.manual_seed(0)
    model = DrNet(config.model)
    return model, DrNetPlan(model, config.train)


def test_presets_follow_the_authors_code():
    paper = preset("paper", "moving-mnist", "drnet")
    m, t = paper.model, paper.train
    assert (m.f_dim, m.z_dim, m.adversarial_weight, m.adam_beta1) == (128, 10, 1e-4, 0.5)
    assert (m.image_size, m.frames) == (64, 20)
    assert (t.lr, t.batch_size) == (2e-3, 100)
    assert preset("paper", "sprites", "drnet").model.frames == 8  # Sprites sequences are 8 frames long


def test_one_discriminator_update_lowers_its_loss_on_a_fixed_batch():
    model, plan = tiny()
    pose_a, pose_b = torch.randn(16, 2), torch.randn(16, 2)
    pose_b[:8] = pose_a[:8] + 0.05 * torch.randn(8, 2)  # same-video pairs are alike
    before = plan.discriminator_loss(pose_a, pose_b)
    plan.discriminator_optimizer.zero_grad()
    before.backward()
    plan.discriminator_optimizer.step()
    assert plan.discriminator_loss(pose_a, pose_b) < before


def _one_update_of_the_encoders(adversarial_weight: float) -> tuple[float, float, bool]:
    """C's certainty |C - 1/2| before and after one update of E_c, E_p, D; whether C stayed fixed."""
    model, plan = tiny()
    model.cfg.adversarial_weight = adversarial_weight
    x = torch.rand(16, 4, 3, 16, 16)
    c1, c2, p1, p2 = x.unbind(1)
    with torch.no_grad():  # a confident discriminator, not saturated: its output depends on the poses
        for p in model.discriminator.parameters():
            p.normal_(0, 0.5)

    def certainty() -> float:
        with torch.no_grad():
            out = torch.sigmoid(model.discriminator(model.pose_encoder(p1), model.pose_encoder(p2)))
        return float((out - 0.5).abs().mean())

    frozen = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    before = certainty()
    loss, _ = plan.main_loss(c1, c2, p1, p2)
    plan.optimizer.zero_grad()
    loss.backward()
    plan.optimizer.step()
    unchanged = all(torch.equal(v, model.discriminator.state_dict()[k]) for k, v in frozen.items())
    return before, certainty(), unchanged


def test_a_pose_update_with_the_discriminator_frozen_moves_it_towards_one_half():
    before, after, unchanged = _one_update_of_the_encoders(adversarial_weight=100.0)
    assert 0.2 < before < 0.45 and unchanged
    assert after < before - 0.01
    # The adversarial term is what moves it: the same update without it leaves C more certain.
    before_0, after_0, _ = _one_update_of_the_encoders(adversarial_weight=0.0)
    assert before_0 == before and after < after_0


def test_similarity_loss_is_zero_for_identical_frames_and_positive_otherwise():
    model, plan = tiny()
    x = torch.rand(8, 3, 16, 16)
    with torch.no_grad():
        _, same = plan.main_loss(x, x, x, x)
        _, other = plan.main_loss(x, torch.rand_like(x), x, x)
    assert same["similarity"] == 0 and other["similarity"] > 0


def test_draws_four_distinct_frames_of_each_window():
    x = torch.arange(5 * 6).float().reshape(5, 6, 1, 1, 1).expand(5, 6, 1, 2, 2)
    picked = torch.stack(DrNetPlan.draw_frames(x), 1)[..., 0, 0, 0]  # frame ids (5, 4)
    assert all(len(set(row.tolist())) == 4 for row in picked)
    assert ((picked // 6) == torch.arange(5)[:, None]).all()  # all from their own window


# -- every command, exact resume ---------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_every_command_runs_on_a_drnet_run_and_resume_is_exact(tmp_path):
    config = preset("tiny", "squares", "drnet").override("data", options={"num_sets": 16, "motion": "bounce"})
    full = train(config.override("train", steps=12), tmp_path / "full", progress=False)
    args = ["train", "--model", "drnet", "--data", "squares", "--preset", "tiny", "--steps", "6", "--quiet",
            "--data-option", "num_sets=16", "--data-option", "motion=bounce", "--out", tmp_path / "run"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    result = invoke("train", "--resume", tmp_path / "run", "--steps", "12", "--quiet")
    assert result.exit_code == 0, result.output
    resumed = load_run(tmp_path / "run")
    assert isinstance(resumed.model, DrNet) and resumed.step == 12
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name

    result = invoke("sample", tmp_path / "run", "--out", tmp_path / "s", "--frames", "4", "--sequences", "3")
    assert result.exit_code == 0, result.output
    assert {p.stem for p in (tmp_path / "s").glob("*.png")} == {"transfers", "transfer_grid"}
    result = invoke("sample", tmp_path / "run", "--out", tmp_path / "s2", "--from", "prior")
    assert result.exit_code == 1 and "DrNet has no prior" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "s2").exists()

    result = invoke("inspect", tmp_path / "run", "--out", tmp_path / "i", "--frames", "4", "--sequences", "3")
    assert result.exit_code == 0, result.output
    figures = {p.stem for p in (tmp_path / "i").glob("*.png")}
    assert {"swaps", "interpolation", "interpolation_dynamic", "reconstructions"} <= figures
    assert "latent_manifold" not in figures
    assert "cannot draw dynamics from a prior" in (tmp_path / "i" / "index.md").read_text()

    result = invoke("evaluate", tmp_path / "run", "--seeds", "1", "--quiet", "--out", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["model"] == "drnet" and "other test sequence" in report["resampled_from"]["static"]
    assert "elbo_per_frame" not in report["metrics"]["reconstruction"]


# -- learning ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_swapping_content_moves_colour_and_keeps_position(tmp_path):
    """After a short run on bouncing squares, content carries the colour and pose the position."""
    config = preset("tiny", "squares", "drnet").override(
        "data", options={"num_sets": 256, "motion": "bounce", "frames_per_set": 12})
    config = config.override("model", conv_width=32, hidden=64, f_dim=8, z_dim=4, frames=8)
    config = config.override("train", steps=1000, batch_size=32, log_every=100, eval_every=1000,
                             checkpoint_every=1000)
    run = train(config, tmp_path / "run", progress=False)
    test = load_frame_sets("squares", "test", motion="bounce", frames_per_set=12)
    a, b = torch.arange(32), torch.arange(32, 64)
    xa, xb = test.frames(a[:, None], torch.arange(6)), test.frames(b[:, None], torch.arange(6))
    differ = test.colours[a] != test.colours[b]
    swapped = posterior.swap(run.model, xa, xb)  # content from A, pose from B
    colour_err_a = (colour(swapped) - colour(xa)).abs().mean(-1)[differ].mean()
    colour_err_b = (colour(swapped) - colour(xb)).abs().mean(-1)[differ].mean()
    pos_err_b = (centre(swapped) - centre(xb)).norm(dim=-1).mean()
    pos_err_a = (centre(swapped) - centre(xa)).norm(dim=-1).mean()
    assert colour_err_a < 0.2 < colour_err_b
    assert pos_err_b < 2.0 < pos_err_a


def test_static_consistency_reads_sets_shorter_than_the_training_window():
    """DrNet trains on 20-frame windows; the evaluation's 8-frame sets are compared on subsets of
    at most half their frames, so that subsets differ between draws."""
    config = preset("tiny", "squares", "drnet").override("model", frames=20)
    model = DrNet(config.model).eval()
    assert model.subset_frames > 8 and posterior.subset_size(model, 8) == 4
    x = torch.rand(5, 8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ratio = posterior.static_consistency(model, x, 4, torch.Generator().manual_seed(1))
    assert 0 < ratio < float("inf")
