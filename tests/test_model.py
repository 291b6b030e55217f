"""The Pyro model and guide: sites, plates, shapes, the ELBO, the prior extension point."""

from __future__ import annotations

import math

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch import nn

from pyro_dvae import posterior
from pyro_dvae.config import preset
from pyro_dvae.elbo import elbo_loss
from pyro_dvae.errors import UserInputError
from pyro_dvae.models.base import PLATE_FRAMES, PLATE_SETS, SITE_F, SITE_X, SITE_Z
from pyro_dvae.models.dvae import DVAE, DVAEConfig
from pyro_dvae.nets import SHARPEST_SHIFT, gaussian_params
from pyro_dvae.priors import make_z_prior, register_z_prior, z_prior_names


def tiny_model(**overrides) -> DVAE:
    cfg = preset("tiny").model
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return DVAE(cfg)


def traces(model: DVAE, x: torch.Tensor):
    guide_trace = poutine.trace(model.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x)
    return model_trace, guide_trace


@pytest.mark.parametrize("frames", [2, 3, 5])
@pytest.mark.parametrize("image_size,channels", [(16, 3), (32, 1), (64, 3)])
def test_sites_plates_and_shapes(frames, image_size, channels):
    model = tiny_model(frames=frames, image_size=image_size, channels=channels, f_dim=5, z_dim=3)
    x = torch.rand(4, frames, channels, image_size, image_size)
    model_trace, guide_trace = traces(model, x)
    model_trace.compute_log_prob()
    sites = {n: s for n, s in model_trace.nodes.items() if s["type"] == "sample"}
    assert set(sites) == {PLATE_SETS, PLATE_FRAMES, SITE_F, SITE_Z, SITE_X}
    assert sites[SITE_F]["value"].shape == (4, 1, 5)
    assert sites[SITE_Z]["value"].shape == (4, frames, 3)
    assert sites[SITE_X]["is_observed"] and torch.equal(sites[SITE_X]["value"], x)
    assert sites[SITE_X]["log_prob"].shape == (4, frames)
    assert sites[SITE_Z]["log_prob"].shape == (4, frames)
    assert sites[SITE_F]["log_prob"].shape == (4, 1)
    # f lives in the sets plate only; z and x in both plates.
    assert [f.name for f in sites[SITE_F]["cond_indep_stack"]] == [PLATE_SETS]
    assert {f.name for f in sites[SITE_Z]["cond_indep_stack"]} == {PLATE_SETS, PLATE_FRAMES}
    # The guide replays into the model: same latent values.
    assert torch.equal(guide_trace.nodes[SITE_Z]["value"], sites[SITE_Z]["value"])


def test_static_code_uses_every_frame_and_only_through_pairs():
    model = tiny_model()
    x = torch.rand(2, 3, 3, 16, 16)
    base = model.static_posterior(x).mean
    changed = x.clone()
    changed[:, 2] = torch.rand_like(changed[:, 2])
    assert not torch.allclose(model.static_posterior(changed).mean, base)
    # Only set 0's frames changed -> only set 0's f changes (sets do not leak into each other).
    one = x.clone()
    one[0, 1] = torch.rand_like(one[0, 1])
    after = model.static_posterior(one).mean
    assert not torch.allclose(after[0], base[0]) and torch.allclose(after[1], base[1])


def test_static_consistency_compares_n_frame_subsets_when_n_is_over_half_the_set():
    """N = 5 and sets of 8 frames (one-digit Moving MNIST's evaluation): the subsets have N frames
    (4, half the set, made `pyro-dvae evaluate` fail with 'sets have 4 frames; the model compares N=5')."""
    model = tiny_model(frames=5).eval()
    assert posterior.subset_size(model, 8) == 5
    x = torch.rand(4, 8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ratio = posterior.static_consistency(model, x, 4, torch.Generator().manual_seed(1))
    assert 0 < ratio < float("inf")


def test_kl_scale_scales_only_the_latent_terms():
    model = tiny_model()
    x = torch.rand(3, 3, 3, 16, 16)
    with torch.no_grad():
        full = elbo_loss(model.model, model.guide, x, analytic_kl=True)
        zero = elbo_loss(model.model, model.guide, x, analytic_kl=True, kl_scale=1e-6)
        torch.manual_seed(0)
        f, z = model.guide(x)
        nll = -model.observation_dist(f, z).log_prob(x).sum()
    # With the KL weight near 0 only the reconstruction term is left, and the KL is >= 0.
    assert zero == pytest.approx(float(nll), rel=0.2)
    assert full > zero


def test_f_kl_weight_scales_exactly_the_static_codes_kl():
    """beta_f: the training objective is -(log-lik - KL_z - beta_f KL_f); at 1 it is the ELBO."""
    model = tiny_model()
    x = torch.rand(4, 3, 3, 16, 16)

    def loss(weight):
        torch.manual_seed(0)  # the same draws of f and z for every weight
        with torch.no_grad():
            return float(model.elbo_loss(x, analytic_kl=True, f_kl_weight=weight))

    with torch.no_grad():
        q_f = model.static_posterior(x)
        kl_f = float(torch.distributions.kl_divergence(q_f, model.f_prior((4, 1))).sum())
    assert kl_f > 0
    assert loss(1.0) - loss(0.25) == pytest.approx(0.75 * kl_f, rel=1e-4)
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = float(elbo_loss(model.model, model.guide, x, analytic_kl=True))
    assert loss(1.0) == elbo

    def mc(weight):  # the Monte Carlo estimator is affine in the weight too (same draws)
        torch.manual_seed(1)
        with torch.no_grad():
            return float(model.elbo_loss(x, f_kl_weight=weight))
    assert mc(0.5) == pytest.approx((mc(0.0) + mc(1.0)) / 2, rel=1e-5)


def test_z_kl_weight_scales_exactly_the_dynamic_codes_kl_and_leaves_f_alone():
    """beta_z: -(log-lik - beta_z KL_z - beta_f KL_f); the two weights act on their own terms."""
    model = tiny_model()
    x = torch.rand(4, 3, 3, 16, 16)

    def loss(f_weight, z_weight):
        torch.manual_seed(0)
        with torch.no_grad():
            return float(model.elbo_loss(x, analytic_kl=True, f_kl_weight=f_weight, z_kl_weight=z_weight))

    torch.manual_seed(0)
    with torch.no_grad():
        guide_trace = poutine.trace(model.guide).get_trace(x)
        q_z = guide_trace.nodes[SITE_Z]["fn"]
        kl_z = float(torch.distributions.kl_divergence(q_z, model.z_prior(guide_trace.nodes[SITE_F]["value"])).sum())
    assert kl_z > 0
    assert loss(1.0, 4.0) - loss(1.0, 1.0) == pytest.approx(3 * kl_z, rel=1e-4)
    # Affine in each weight separately: the f term does not move with beta_z.
    assert loss(0.5, 4.0) - loss(0.5, 1.0) == pytest.approx(loss(1.0, 4.0) - loss(1.0, 1.0), rel=1e-4)


def test_the_plan_trains_with_beta_f_and_reports_held_out_elbos():
    from pyro_dvae.config import TrainConfig
    from pyro_dvae.models.plans import SVIPlan

    model = tiny_model()
    x = torch.rand(4, 3, 3, 16, 16)
    weighted = SVIPlan(model, TrainConfig(f_kl_weight=0.1, elbo="meanfield"))
    plain = SVIPlan(model, TrainConfig(elbo="meanfield"))
    draws = {}
    for name, plan in (("weighted", weighted), ("plain", plain)):
        for what, fn in (("loss", lambda p: p.loss(x, step=10)), ("heldout", lambda p: p.heldout(x))):
            torch.manual_seed(0)
            with torch.no_grad():
                draws[name, what] = float(fn(plan))
    assert draws["weighted", "loss"] < draws["plain", "loss"]  # KL_f > 0 is weighed by 0.1
    assert draws["weighted", "heldout"] == draws["plain", "heldout"]  # held out: the ELBO itself
    with pytest.raises(UserInputError, match="f_kl_weight"):
        TrainConfig(f_kl_weight=0).validate()
    with pytest.raises(UserInputError, match="jit"):
        TrainConfig(f_kl_weight=0.5, elbo="jit").validate()


def test_a_smaller_f_kl_weight_buys_a_more_informative_static_code():
    """The learning side of beta_f: the same short training with beta_f = 0.05 ends with f
    carrying several times more nats about each held-out set (KL of q(f|x_S) from p(f))."""
    from pyro_dvae.config import TrainConfig
    from pyro_dvae.data import load_frame_sets
    from pyro_dvae.models.plans import SVIPlan

    sets = load_frame_sets("squares", "train", image_size=16, num_sets=64)
    held_out = sets.sample(32, 3, torch.Generator().manual_seed(1))
    results = {}
    for weight in (1.0, 0.05):
        torch.manual_seed(0)
        model = tiny_model()
        plan = SVIPlan(model, TrainConfig(lr=3e-3, f_kl_weight=weight))
        batches = torch.Generator().manual_seed(0)
        for step in range(1, 301):
            plan.step(sets.sample(16, 3, batches), step)
        with torch.no_grad():
            q_f = model.static_posterior(held_out)
            kl_f = torch.distributions.kl_divergence(q_f, model.f_prior((32, 1))).mean()
        results[weight] = float(kl_f)
    assert results[0.05] > 3 * results[1.0]  # measured: 46 against 7.8 nats


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous-bernoulli", "gaussian", "gaussian-linear"])
def test_likelihoods_give_finite_elbo_and_images_in_unit_range(likelihood):
    model = tiny_model(likelihood=likelihood)
    x = torch.rand(2, 3, 3, 16, 16)
    loss = elbo_loss(model.model, model.guide, x)
    assert torch.isfinite(loss)
    f, z = model.guide(x)
    mean = model.pixel_mean(f, z)
    assert mean.shape == x.shape and mean.min() >= 0 and mean.max() <= 1


def test_model_samples_without_data():
    model = tiny_model()
    x = model.model(shape=(4, 6))
    assert x.shape == (4, 6, 3, 16, 16)
    assert set(x.unique().tolist()) <= {0.0, 1.0}  # Bernoulli draws


def test_config_validation_rejects_bad_values():
    with pytest.raises(UserInputError, match="frames"):
        DVAE(DVAEConfig(frames=1))
    with pytest.raises(UserInputError, match="image_size"):
        DVAE(DVAEConfig(image_size=48))
    with pytest.raises(UserInputError, match="likelihood"):
        DVAE(DVAEConfig(likelihood="poisson"))
    with pytest.raises(UserInputError, match="unknown z prior 'nope'"):
        DVAE(DVAEConfig(z_prior="nope"))


# A prior written against the public interface, inside this test file: p(z | f) as a mixture of
# K Gaussians whose weights depend on f. Nothing in the package knows about it.
@register_z_prior("test-mixture")
class MixturePrior(nn.Module):
    def __init__(self, cfg, components: int = 3):
        super().__init__()
        self.k, self.z_dim = components, cfg.z_dim
        self.logits = nn.Linear(cfg.f_dim, components)
        self.params = nn.Linear(cfg.f_dim, 2 * components * cfg.z_dim)

    def forward(self, f):
        loc, scale = gaussian_params(self.params(f).reshape(*f.shape[:-1], self.k, 2 * self.z_dim))
        mix = dist.Categorical(logits=self.logits(f))
        return dist.MixtureSameFamily(mix, dist.Normal(loc, scale).to_event(1))


def test_user_prior_plugs_in_by_name_and_trains():
    assert "test-mixture" in z_prior_names()
    model = tiny_model(z_prior="test-mixture")
    assert isinstance(model.z_prior, MixturePrior)
    x = torch.rand(4, 3, 3, 16, 16)
    model_trace, _ = traces(model, x)
    site = model_trace.nodes[SITE_Z]
    f = model_trace.nodes[SITE_F]["value"]
    assert site["fn"].batch_shape == (4, 3)
    assert torch.allclose(site["fn"].log_prob(site["value"]), model.z_prior(f).log_prob(site["value"]))
    # No closed-form KL for a mixture: meanfield falls back to Monte Carlo and still trains it.
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = model.z_prior.logits.weight.clone()
    loss = elbo_loss(model.model, model.guide, x, analytic_kl=True)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.z_prior.logits.weight)


def test_standard_normal_prior_ignores_f():
    cfg = preset("tiny").model
    cfg.z_prior = "standard-normal"
    prior = make_z_prior(cfg)
    d1, d2 = prior(torch.randn(4, 1, cfg.f_dim)), prior(torch.randn(4, 1, cfg.f_dim))
    assert d1.batch_shape == (4, 1) and d1.event_shape == (cfg.z_dim,)
    assert torch.equal(d1.mean, d2.mean) and torch.equal(d1.stddev, torch.ones_like(d1.stddev))


# -- options of the quality study: FiLM, MLP and translate decoders, flow p(f), fixed Gaussian pixel scale ---

OPTIONS = [dict(decoder="film"), dict(decoder="mlp"), dict(decoder="translate"),
           dict(decoder="translate", shift_sharpening=2), dict(f_prior="flow"),
           dict(likelihood="gaussian", pixel_scale=0.1), dict(likelihood="gaussian-linear", pixel_scale=0.1),
           dict(likelihood="gaussian-linear"), dict(space_to_depth=2), dict(space_to_depth=2, decoder="film"),
           dict(space_to_depth=2, decoder="translate"), dict(decoder="translate", canvases=2, z_dim=4)]


def test_a_config_written_with_the_retired_locate_option_loads_without_it():
    """Runs of commit d27080e wrote ``locate = false`` (an option measured and removed)."""
    from pyro_dvae.config import RunConfig

    written = preset("tiny", "moving-mnist").to_dict()
    written["model"]["locate"] = False
    assert RunConfig.from_dict(written).model == preset("tiny", "moving-mnist").model


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(map(str, o.values())))
def test_options_keep_sites_shapes_and_pyros_elbo(options):
    model = tiny_model(**options)
    x = torch.rand(4, 3, 3, 16, 16)
    model_trace, _ = traces(model, x)
    model_trace.compute_log_prob()
    assert model_trace.nodes[SITE_F]["value"].shape == (4, 1, 8)
    assert model_trace.nodes[SITE_F]["log_prob"].shape == (4, 1)
    assert model_trace.nodes[SITE_X]["log_prob"].shape == (4, 3)
    torch.manual_seed(3)
    ours = elbo_loss(model.model, model.guide, x)
    if hasattr(model.emitter, "trained_steps"):  # shift_sharpening's step count as before the first
        model.emitter.trained_steps.sub_(1)
    torch.manual_seed(3)
    assert torch.allclose(ours, Trace_ELBO().differentiable_loss(model.model, model.guide, x), rtol=1e-5)
    # Every parameter the option adds is trained by the ELBO.
    grads = torch.autograd.grad(ours, list(model.parameters()), allow_unused=True)
    assert all(g is not None for g in grads)


def test_film_decoder_starts_as_concat_and_lets_f_reach_every_layer():
    concat, film = tiny_model(), tiny_model(decoder="film")
    film.load_state_dict(concat.state_dict(), strict=False)  # the shared layers; FiLM starts at zero
    f, z = torch.randn(2, 1, 8), torch.randn(2, 3, 2)
    assert torch.allclose(film.emitter(f, z), concat.emitter(f, z))
    with torch.no_grad():
        film.emitter.film.weight.normal_()
    assert not torch.allclose(film.emitter(f, z), concat.emitter(f, z))
    assert {name for name, _ in film.named_parameters()} - {name for name, _ in concat.named_parameters()} == {
        "emitter.film.weight", "emitter.film.bias"}


def test_mlp_decoder_mixes_f_and_z_before_the_deconvolutions_where_concat_adds_them():
    """Concat's 4x4 map is leaky_relu(A f + B z + c): its pre-activation is additive in f and z,
    so a(f1, z1) + a(f2, z2) = a(f1, z2) + a(f2, z1). The MLP decoder's hidden layer breaks that."""

    def pre_activation(emitter, f, z):  # undo the last LeakyReLU(0.2), which is invertible
        h = emitter.project(torch.cat([f, z], dim=-1))
        return torch.where(h >= 0, h, h / 0.2)

    torch.manual_seed(0)
    f1, f2, z1, z2 = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 2), torch.randn(4, 2)
    for decoder, additive in (("concat", True), ("mlp", False)):
        emitter = tiny_model(decoder=decoder).emitter
        with torch.no_grad():
            interaction = (pre_activation(emitter, f1, z1) + pre_activation(emitter, f2, z2)
                           - pre_activation(emitter, f1, z2) - pre_activation(emitter, f2, z1))
        assert torch.allclose(interaction, torch.zeros_like(interaction), atol=1e-5) == additive
    concat, mlp = tiny_model(), tiny_model(decoder="mlp")
    assert mlp.emitter.project[0].out_features == preset("tiny").model.hidden
    assert mlp.emitter(torch.randn(2, 1, 8), torch.randn(2, 3, 2)).shape == (2, 3, 3, 16, 16)
    # The paper's decoder keeps its parameter names, so checkpoints written before the option load.
    assert "emitter.project.0.weight" in dict(concat.named_parameters())
    assert "emitter.project.2.weight" not in dict(concat.named_parameters())


def test_translate_decoder_draws_one_canvas_per_f_that_z_only_moves():
    torch.manual_seed(0)
    emitter = tiny_model(decoder="translate").emitter
    f, z1, z2 = torch.randn(2, 1, 8), torch.randn(2, 3, 2), torch.randn(2, 3, 2)

    def shift_by(dx: int, dy: int) -> None:  # every z shifts by (dx, dy) pixels, with no blur
        emitter.shift[-1].weight.zero_()
        emitter.shift[-1].bias.copy_(torch.tensor([dx, dy], dtype=torch.float32))
        emitter.log_shift_width.fill_(-3.0)

    with torch.no_grad():
        emitter.background.fill_(-3.0)
        emitter.shift[-1].weight.normal_()
        assert not torch.allclose(emitter(f, z1), emitter(f, z2))  # z moves the canvas ...
        shift_by(0, 0)
        canvas = emitter(f, z1)
        # ... and nothing else: with the shift fixed, every z and every frame of a set give one image,
        assert torch.allclose(emitter(f, z2), canvas) and torch.allclose(canvas[:, 1:], canvas[:, :1])
        assert not torch.allclose(canvas[0], canvas[1])  # which f draws.
        shift_by(2, -1)
        moved = emitter(f, z1)
    # 2 pixels right and 1 up, and what the move uncovers is the background.
    assert torch.allclose(moved[..., :-1, 2:], canvas[..., 1:, :-2], atol=1e-5)
    assert torch.allclose(moved[..., :2], torch.full_like(moved[..., :2], -3.0), atol=1e-5)
    assert torch.allclose(moved[..., -1, :], torch.full_like(moved[..., -1, :], -3.0), atol=1e-5)
    assert emitter.project[0].in_features == preset("tiny").model.f_dim  # the canvas never reads z


def test_two_canvases_move_independently_and_show_the_background_where_neither_draws():
    """With canvases=2 (two digits), each canvas goes where its own point from z puts it."""
    emitter = tiny_model(decoder="translate", canvases=2, z_dim=4, channels=1).emitter
    side, background = preset("tiny").model.image_size, -4.0
    drawn = torch.full((2, side, side), background)
    drawn[0, 5, 5] = drawn[1, 10, 3] = 6.0  # one ink pixel on each canvas
    emitter._draw = lambda h, f_flat: drawn.reshape(1, 2, side, side).expand(len(h), -1, -1, -1)

    def frame(*shifts: int) -> torch.Tensor:  # canvas k moves by (shifts[2k], shifts[2k + 1]) = (x, y)
        with torch.no_grad():
            emitter.background.fill_(background)
            emitter.log_shift_width.fill_(-3.0)  # no blur
            emitter.shift[-1].weight.zero_()
            emitter.shift[-1].bias.copy_(torch.tensor(shifts, dtype=torch.float32))
            return emitter(torch.randn(1, 1, 8), torch.randn(1, 1, 4))[0, 0, 0]

    def ink(x: torch.Tensor) -> set[tuple[int, int]]:
        return {tuple(p) for p in (x > 0).nonzero().tolist()}

    assert ink(frame(0, 0, 0, 0)) == {(5, 5), (10, 3)}
    assert ink(frame(2, 1, 0, 0)) == {(6, 7), (10, 3)}  # the first moves, the second stays
    assert ink(frame(2, 1, -3, 4)) == {(6, 7), (14, 0)}  # and the second moves on its own
    still = frame(0, 0, 0, 0)
    assert torch.allclose(still[still < 0], torch.tensor(background))  # background where neither draws


def test_shift_sharpening_halves_the_widest_shift_kernel_per_period_of_training_steps():
    torch.manual_seed(0)
    emitter = tiny_model(decoder="translate", shift_sharpening=3).emitter
    side = preset("tiny").model.image_size
    f, z = torch.randn(2, 1, 8), torch.randn(2, 3, 2)
    with torch.no_grad():
        emitter.log_shift_width.fill_(math.log(100.0))  # a learned width wider than every cap
    assert emitter.shift_width().item() == pytest.approx(side / 4)
    for _ in range(6):  # training forward passes, one per step
        emitter(f, z)
    assert emitter.shift_width().item() == pytest.approx(side / 4 / 4)  # two halvings
    with torch.no_grad():
        emitter(f, z)  # held-out ELBOs and evaluation do not advance it
    emitter.eval()
    emitter(f, z)
    assert emitter.trained_steps.item() == 6
    # The schedule resumes from a checkpoint, and ends at its floor.
    restored = tiny_model(decoder="translate", shift_sharpening=3).emitter
    restored.load_state_dict(emitter.state_dict())
    assert restored.shift_width().item() == pytest.approx(side / 16)
    restored.trained_steps.fill_(300)
    assert restored.shift_width().item() == pytest.approx(SHARPEST_SHIFT)
    with torch.no_grad():
        restored.log_shift_width.fill_(math.log(0.5))  # below the cap, the learned width holds
    assert restored.shift_width().item() == pytest.approx(0.5)
    # Without it the state dict is the one runs saved before the option existed.
    assert "trained_steps" not in tiny_model(decoder="translate").emitter.state_dict()
    # Only translate reads it: one-digit Moving MNIST's preset sets it, and `decoder=film` on top of
    # that preset builds the film decoder unchanged.
    assert tiny_model(decoder="film", shift_sharpening=3).state_dict().keys() == \
        tiny_model(decoder="film").state_dict().keys()


def test_space_to_depth_runs_a_64px_frame_through_the_convolutions_of_a_32px_one():
    """space_to_depth=2 folds each 2x2 pixel block into channels: lossless (every pixel reaches the
    features, every pixel of the output is drawn), and the stride-2 layers are those of a frame of
    half the side, at the same widths."""
    torch.manual_seed(0)
    folded, half = tiny_model(image_size=64, space_to_depth=2), tiny_model(image_size=32)

    def layers(module, kind):
        return [m for m in module.modules() if isinstance(m, kind)]

    for part, kind in (("frame_features", nn.Conv2d), ("emitter", nn.ConvTranspose2d)):
        ours, theirs = layers(getattr(folded, part), kind), layers(getattr(half, part), kind)
        assert [m.weight.shape[2:] for m in ours] == [m.weight.shape[2:] for m in theirs]
        assert [m.stride for m in ours] == [m.stride for m in theirs]
    assert layers(folded.frame_features, nn.Conv2d)[0].in_channels == 4 * 3
    assert layers(folded.emitter, nn.ConvTranspose2d)[-1].out_channels == 4 * 3
    # Lossless: every one of the 64x64x3 inputs moves the features, and the logits are 64x64.
    x = torch.rand(2, 3, 3, 64, 64, requires_grad=True)
    folded.frame_features(x).sum().backward()
    assert (x.grad[0, 0] != 0).all()
    logits = folded.emitter(torch.randn(2, 1, 8), torch.randn(2, 3, 2))
    assert logits.shape == (2, 3, 3, 64, 64)
    # The last deconvolution's 12 output channels are the 2x2 blocks of the 3 colour channels.
    with torch.no_grad():
        h = folded.emitter.project(torch.randn(1, 10)).reshape(1, 8, 4, 4)
        blocks, drawn = folded.emitter.deconv[:-1](h), folded.emitter.deconv(h)
    assert blocks.shape == (1, 12, 32, 32) and drawn.shape == (1, 3, 64, 64)
    assert torch.equal(drawn[0, 1, 1::2, 0::2], blocks[0, 1 * 4 + 2, :, :])  # green, lower-left pixels
    # The paper's layout keeps its state dict (runs saved before the option load), and bad values
    # are one-line errors.
    assert tiny_model(space_to_depth=1).state_dict().keys() == tiny_model().state_dict().keys()
    for bad in (3, 4):  # not a power of two the layers allow; 16 // 4 leaves no convolution
        with pytest.raises(UserInputError, match="space_to_depth"):
            tiny_model(space_to_depth=bad)


def test_flow_prior_is_a_normalised_density_that_samples_and_scores():
    cfg = preset("tiny").model
    cfg.f_dim, cfg.f_prior = 2, "flow"
    prior = DVAE(cfg).f_prior
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0, 0.3)  # not the identity map
        d = prior((3,))
        assert d.batch_shape == (3,) and d.event_shape == (2,) and d.sample((5,)).shape == (5, 3, 2)
        # Integrates to one: a Riemann sum of exp(log p) over a wide 2-D grid.
        axis = torch.linspace(-8, 8, 401)
        grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
        mass = prior(()).log_prob(grid).exp().sum() * (axis[1] - axis[0]) ** 2
    assert mass == pytest.approx(1.0, abs=0.02)


def test_fixed_pixel_scale_has_no_learned_scale():
    assert not hasattr(tiny_model(likelihood="gaussian", pixel_scale=0.1), "log_pixel_scale")
    assert hasattr(tiny_model(likelihood="gaussian"), "log_pixel_scale")
    with pytest.raises(UserInputError, match="pixel_scale"):
        DVAE(DVAEConfig(likelihood="gaussian", pixel_scale=-1.0))
    with pytest.raises(UserInputError, match="decoder"):
        DVAE(DVAEConfig(decoder="attention"))


# -- the two-stage p(f): N(0, I) while training, a flow fitted to the posterior codes after -------


def _trains_like_the_papers_prior(config, tmp_path, **model_options):
    """Train ``config`` and ``config`` with ``model_options``; the second, a two-stage prior, must
    train bit for bit as the first (every shared parameter ends equal). Returns the second run."""
    from pyro_dvae import train

    paper = train(config, tmp_path / "paper", progress=False)
    fitted = train(config.override("model", **model_options), tmp_path / "fitted", progress=False)
    fitted_state = fitted.model.state_dict()
    for name, value in paper.model.state_dict().items():
        assert torch.equal(value, fitted_state[name]), name
    return fitted


def _resumes_like(run, config, tmp_path):
    """A run of ``config`` stopped half way and resumed ends (fit included) exactly as ``run``."""
    from pyro_dvae import resume, train

    train(config.override("train", steps=config.train.steps // 2), tmp_path / "half", progress=False)
    resumed = resume(tmp_path / "half", steps=config.train.steps, progress=False)
    for name, value in run.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def _fitted_after_training(config, tmp_path, **prior):
    """A tiny run with a two-stage prior, checked to train like the paper's prior, reloaded from disk:
    (the run, its reloaded model, 64 training sets); the named prior must be fitted, in eval mode."""
    from pyro_dvae import load_run

    fitted = _trains_like_the_papers_prior(config, tmp_path, **prior)
    model = load_run(tmp_path / "fitted").model
    site = getattr(model, next(iter(prior)))
    assert site.is_fitted and not site.training
    return fitted, model, fitted.data("train").sample(64, 3, torch.Generator().manual_seed(9))


def test_a_fitted_flow_run_trains_like_the_papers_prior_then_fits_the_codes(tiny_config, tmp_path):
    config = tiny_config.override("train", steps=12, log_every=4, eval_every=6, checkpoint_every=6)
    fitted, model, x = _fitted_after_training(config, tmp_path, f_prior="fitted-flow")
    # After training, p(f) outside training mode is the flow, and it fits the posterior codes
    # better than N(0, I) does (mean log-density of fresh posterior draws).
    prior = model.f_prior
    with torch.no_grad():
        loc, scale = model.encode_static(x)
        f = loc + scale * torch.randn_like(loc)
        assert prior((64,)).log_prob(f).mean() > prior.standard((64,)).log_prob(f).mean()
        assert model.sample_static(5).shape == (5, 8)
    prior.train()
    assert isinstance(prior((2,)), torch.distributions.Independent)  # N(0, I) while training
    # A resumed run fits exactly as an uninterrupted one: the fit depends on the final model only.
    _resumes_like(fitted, config.override("model", f_prior="fitted-flow"), tmp_path)


def test_the_fitted_flow_learns_a_density_far_from_the_standard_normal():
    """Codes bunched on a shifted, narrow, curved set: the fit must find them, and a second fit with
    the same seed gives the same flow whatever came before (fits start afresh)."""
    from pyro_dvae.priors import FittedFlowFPrior

    cfg = preset("tiny").model
    g = torch.Generator().manual_seed(0)
    u = torch.randn(4096, 1, generator=g)
    f = torch.cat([3 + 0.3 * u, 0.5 * u**2 + 0.1 * torch.randn(4096, cfg.f_dim - 1, generator=g)], 1)
    prior = FittedFlowFPrior(cfg).eval()
    first = prior.fit(f, seed=7)
    assert first > prior.standard((len(f),)).log_prob(f).mean() + 5  # nats per code
    state = {k: v.clone() for k, v in prior.state_dict().items()}
    prior.fit(f[:100] * 2, seed=1)
    assert prior.fit(f, seed=7) == first
    assert all(torch.equal(v, prior.state_dict()[k]) for k, v in state.items())


# -- the two-stage p(z | f): the paper's Gaussian while training, the aggregate posterior after ------


def test_the_aggregate_prior_is_the_equally_weighted_mixture_of_its_exemplars():
    import math

    from pyro_dvae.priors import FittedAggregateZPrior

    cfg = preset("tiny").model
    prior = FittedAggregateZPrior(cfg, exemplars=5).eval()
    f = torch.randn(3, 1, cfg.f_dim)
    assert isinstance(prior(f), dist.Independent)  # unfitted: the paper's conditional Gaussian
    g = torch.Generator().manual_seed(0)
    loc = 10 * torch.randn(7, cfg.z_dim, generator=g)
    scale = 0.1 + torch.rand(7, cfg.z_dim, generator=g)
    with pytest.raises(ValueError, match="needs 5"):
        prior.fit(loc[:4], scale[:4])
    prior.fit(loc, scale)
    d = prior(f)
    assert d.batch_shape == (3, 1) and d.event_shape == (cfg.z_dim,)
    z = 10 * torch.randn(3, 4, cfg.z_dim, generator=g)
    by_hand = torch.logsumexp(dist.Normal(loc[:5], scale[:5]).log_prob(z[..., None, :]).sum(-1), -1) - math.log(5)
    assert torch.allclose(d.expand((3, 4)).log_prob(z), by_hand, atol=1e-4)
    # Every draw comes from one of the exemplars (within 6 of its scales), and all of them are used.
    draws = d.sample((400,)).reshape(-1, cfg.z_dim)
    distance = ((draws[:, None] - loc[:5]) / scale[:5]).abs().amax(-1)
    assert (distance.amin(-1) < 6).all() and set(distance.argmin(-1).tolist()) == set(range(5))
    prior.train()
    assert isinstance(prior(f), dist.Independent)  # training mode: the Gaussian the ELBO trains
    again = FittedAggregateZPrior(cfg, exemplars=5)
    again.load_state_dict(prior.state_dict())
    assert again.is_fitted and torch.equal(again.exemplar_loc, loc[:5])


def test_a_fitted_aggregate_run_trains_like_the_papers_prior_then_fits_the_dynamics(tiny_config, tmp_path):
    config = tiny_config.override("train", steps=12, log_every=4, eval_every=6, checkpoint_every=6)
    fitted, model, x = _fitted_after_training(config, tmp_path, z_prior="fitted-aggregate")
    # The aggregate posterior scores fresh posterior draws of training frames above the Gaussian.
    prior = model.z_prior
    with torch.no_grad():
        f, _ = model.encode_static(x)
        z_loc, z_scale = model.encode_dynamic(x, f)
        z = z_loc + z_scale * torch.randn_like(z_loc)
        gaussian = super(type(prior), prior).forward(f.unsqueeze(-2))
        assert prior(f.unsqueeze(-2)).log_prob(z).mean() > gaussian.log_prob(z).mean()
        assert model.sample_dynamics(f[:5], 7).shape == (5, 7, 2)
    # The held-out ELBO with the fitted prior is still Pyro's estimator (Monte Carlo KL for z).
    torch.manual_seed(3)
    ours = elbo_loss(model.model, model.guide, x)
    if hasattr(model.emitter, "trained_steps"):  # shift_sharpening's step count as before the first
        model.emitter.trained_steps.sub_(1)
    torch.manual_seed(3)
    assert torch.allclose(ours, Trace_ELBO().differentiable_loss(model.model, model.guide, x), rtol=1e-5)
    torch.manual_seed(3)
    analytic = elbo_loss(model.model, model.guide, x, analytic_kl=True)  # no closed form: falls back
    torch.manual_seed(3)
    assert torch.allclose(analytic, TraceMeanField_ELBO().differentiable_loss(model.model, model.guide, x), rtol=1e-5)
    # A resumed run fits exactly as an uninterrupted one.
    _resumes_like(fitted, config.override("model", z_prior="fitted-aggregate"), tmp_path)
