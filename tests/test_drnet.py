"""DrNet (Denton & Birodkar 2017) as a model family: its losses and two optimisers, every command
on a tiny run, exact resume, and a short learning test on moving squares."""

from __future__ import annotations

import torch

from pyro_dvae import posterior
from pyro_dvae.config import preset
from pyro_dvae.models.drnet import DrNet, DrNetPlan


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


# (learning, every command and an exact resume: tests/test_every_family.py)


def test_static_consistency_reads_sets_shorter_than_the_training_window():
    """DrNet trains on 20-frame windows; the evaluation's 8-frame sets are compared on subsets of
    at most half their frames, so that subsets differ between draws."""
    config = preset("tiny", "squares", "drnet").override("model", frames=20)
    model = DrNet(config.model).eval()
    assert model.subset_frames > 8 and posterior.subset_size(model, 8) == 4
    x = torch.rand(5, 8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ratio = posterior.static_consistency(model, x, 4, torch.Generator().manual_seed(1))
    assert 0 < ratio < float("inf")
