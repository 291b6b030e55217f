"""DSA (Li & Mandt 2018) as a model family: sites, the ELBO, the sequential prior, ordered data,
learning, and every command on a tiny DSA run."""

from __future__ import annotations

import pytest
import torch
from cli_helpers import invoke
from pyro import poutine

from pyro_dvae.config import preset
from pyro_dvae.data import load_frame_sets
from pyro_dvae.data.sprites import SpritesActions, sprites_eval_sequences
from pyro_dvae.models import get_family
from pyro_dvae.models.base import PLATE_FRAMES, PLATE_SETS, SITE_F, SITE_X, SITE_Z
from pyro_dvae.models.dsa import DSA, DSAConfig
from pyro_dvae.models.dsa.nets import SequentialPrior
from pyro_dvae.nets import gaussian_params


def tiny_dsa(**overrides) -> DSA:
    cfg = preset("tiny", "squares", "dsa").model
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return DSA(cfg)


def traces(model, x):
    guide_trace = poutine.trace(model.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(x)
    return model_trace, guide_trace


@pytest.mark.parametrize("posterior_form", ["factorised", "full"])
@pytest.mark.parametrize("length", [2, 5])
def test_sites_plates_and_shapes(posterior_form, length):
    model = tiny_dsa(posterior=posterior_form, f_dim=5, z_dim=3)
    x = torch.rand(4, length, 3, 16, 16)
    model_trace, guide_trace = traces(model, x)
    model_trace.compute_log_prob()
    sites = {n: s for n, s in model_trace.nodes.items() if s["type"] == "sample"}
    assert set(sites) == {PLATE_SETS, PLATE_FRAMES, SITE_F, SITE_Z, SITE_X}
    assert sites[SITE_F]["value"].shape == (4, 1, 5)
    # The whole trajectory z_1:T is one site: event (T, z_dim) under the sequences plate.
    assert sites[SITE_Z]["value"].shape == (4, 1, length, 3)
    assert sites[SITE_Z]["fn"].event_shape == (length, 3)
    assert sites[SITE_Z]["log_prob"].shape == (4, 1)
    assert sites[SITE_X]["is_observed"] and torch.equal(sites[SITE_X]["value"], x)
    assert sites[SITE_X]["log_prob"].shape == (4, length)
    assert [f.name for f in sites[SITE_Z]["cond_indep_stack"]] == [PLATE_SETS]
    assert {f.name for f in sites[SITE_X]["cond_indep_stack"]} == {PLATE_SETS, PLATE_FRAMES}
    assert torch.equal(guide_trace.nodes[SITE_Z]["value"], sites[SITE_Z]["value"])


def test_f_kl_weight_weighs_only_the_static_codes_term_in_dsa():
    """beta_f reaches DSA through the shared ELBO: only f's log p - log q is weighted, z's (the
    LSTM prior's) is not, so the loss is affine in the weight with f's term as its slope."""
    model = tiny_dsa()
    x = torch.rand(5, 4, 3, 16, 16)

    def loss(weight):
        torch.manual_seed(2)
        with torch.no_grad():
            return float(model.elbo_loss(x, f_kl_weight=weight))

    torch.manual_seed(2)
    with torch.no_grad():
        model_trace, guide_trace = traces(model, x)
    f_term = float(model_trace.nodes[SITE_F]["fn"].log_prob(model_trace.nodes[SITE_F]["value"]).sum()
                   - guide_trace.nodes[SITE_F]["fn"].log_prob(guide_trace.nodes[SITE_F]["value"]).sum())
    assert loss(0.0) - loss(1.0) == pytest.approx(f_term, rel=1e-3, abs=1e-2)


def test_prior_of_z_t_depends_on_earlier_codes_in_dsa_only():
    torch.manual_seed(0)
    f, z = torch.randn(3, 8), torch.randn(3, 5, 2)
    earlier, later = z.clone(), z.clone()
    earlier[:, 1] += 1.0  # change z_2
    later[:, -1] += 1.0  # change z_T
    dsa = tiny_dsa()
    base = dsa.dynamics_prior(f, z).mean
    moved = dsa.dynamics_prior(f, earlier).mean
    assert torch.allclose(moved[:, :2], base[:, :2])  # p(z_1), p(z_2 | z_1): before the change
    assert not torch.allclose(moved[:, 2:], base[:, 2:], atol=1e-4)  # every later step reads z_2
    assert torch.allclose(dsa.dynamics_prior(f, later).mean, base)  # nothing reads the future
    cfg = preset("tiny", "squares").model
    dvae = get_family("dvae").build(cfg)
    f = torch.randn(3, cfg.f_dim)
    assert torch.allclose(dvae.dynamics_prior(f, earlier).mean, dvae.dynamics_prior(f, z).mean)


def test_sequential_prior_density_is_the_product_of_its_steps():
    """The vectorised log_prob equals the chain rule computed one step at a time."""
    dsa = tiny_dsa(z_dim=3)
    prior, z = dsa.dynamics, torch.randn(4, 6, 3)
    total = torch.zeros(4)
    for t in range(6):
        # p(z_t | z_<t) from the LSTM run over the first t codes only.
        h, c = prior.h0.expand(1, 4, -1).contiguous(), prior.c0.expand(1, 4, -1).contiguous()
        if t:
            _, (h, c) = prior.lstm(z[:, :t], (h, c))
        loc, scale = gaussian_params(prior.out(h[0]))
        total += torch.distributions.Normal(loc, scale).log_prob(z[:, t]).sum(-1)
    dist = SequentialPrior(prior, 6, 3, (4,))
    assert torch.allclose(dist.log_prob(z), total, atol=1e-4)
    assert dist.sample().shape == (4, 6, 3) and dist.sample((2,)).shape == (2, 4, 6, 3)


def test_full_posterior_reads_f_and_the_factorised_one_does_not():
    x = torch.rand(2, 4, 3, 16, 16)
    f1, f2 = torch.randn(2, 8), torch.randn(2, 8)
    factorised, full = tiny_dsa(posterior="factorised"), tiny_dsa(posterior="full")
    assert torch.allclose(factorised.encode_dynamic(x, f1)[0], factorised.encode_dynamic(x, f2)[0])
    assert not torch.allclose(full.encode_dynamic(x, f1)[0], full.encode_dynamic(x, f2)[0])


def test_static_code_reads_order():
    """Unlike the DVAE's pairwise guide, DSA's q(f | x_1:T) reads the frames in order."""
    model = tiny_dsa()
    x = torch.rand(2, 4, 3, 16, 16)
    loc, _ = model.encode_static(x)
    assert not torch.allclose(model.encode_static(x.flip(1))[0], loc)


def test_config_validation():
    for bad in (dict(frames=1), dict(posterior="half"), dict(rnn_hidden=0)):
        with pytest.raises(Exception, match="frames|posterior|rnn_hidden"):
            DSA(DSAConfig(**bad))


# -- ordered data ------------------------------------------------------------------------------


def test_windows_are_consecutive_frames_in_order():
    data = load_frame_sets("squares", "train", ordered=True, num_sets=16, frames_per_set=10, motion="bounce")
    g = torch.Generator().manual_seed(0)
    x = data.sample_windows(64, 4, g)
    g = torch.Generator().manual_seed(0)
    sets = torch.randint(len(data), (64,), generator=g)
    starts = (torch.rand(64, generator=g) * 7).long()
    expected = data.frames(sets[:, None], starts[:, None] + torch.arange(4))
    assert torch.equal(x, expected)
    assert starts.min() == 0 and starts.max() == 6  # every valid start is reachable, none beyond


def test_sprites_ordered_view_is_the_action_sequences():
    data = load_frame_sets("sprites", "train", ordered=True, limit_identities=2)
    assert isinstance(data, SpritesActions) and len(data) == 18 and int(data.set_sizes.max()) == 8
    seqs = sprites_eval_sequences("train", limit_identities=2)
    assert torch.equal(data.frames(torch.arange(18)[:, None], torch.arange(8)), seqs.frames())


# -- settings of other families ------------------------------------------------------------------
# (learning, the ELBO and every command: tests/test_every_family.py)



def test_dvae_only_settings_are_refused_for_dsa(tmp_path):
    result = invoke("train", "--model", "dsa", "--data", "squares", "--preset", "tiny", "--z-prior", "standard-normal",
                    "--out", tmp_path / "run")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "dsa model has no setting z_prior" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
