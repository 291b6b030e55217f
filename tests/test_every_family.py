"""What every model family must do, one test each, parametrised over the families: learn to put
colour in the static code and position in the dynamic one, keep its ELBO equal to Pyro's (Pyro
families), and run every command of the CLI on a run of its own (with an exact resume)."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import invoke
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from squares_measures import centre, colour

from pyro_dvae import posterior
from pyro_dvae.config import preset
from pyro_dvae.data import load_frame_sets
from pyro_dvae.elbo import elbo_loss
from pyro_dvae.models import get_family
from pyro_dvae.runs import load_run
from pyro_dvae.training import train

FAMILIES = ["dvae", "dsa", "drnet"]

#: Per family: the settings of a short learning run on squares, and the swap tolerances (colour
#: error, pixels) its test holds it to.
LEARNING = {
    "dvae": dict(model=dict(conv_width=32, pair_width=32, hidden=64), data=dict(num_sets=256), steps=1500,
                 frames=8, colour=0.15, pixels=1.5),
    "dsa": dict(model=dict(conv_width=32, hidden=64, rnn_hidden=32, frames=6),
                data=dict(num_sets=256, motion="bounce", frames_per_set=12), steps=1500, frames=6, colour=0.2,
                pixels=2.0),
    "drnet": dict(model=dict(conv_width=32, hidden=64, f_dim=8, z_dim=4, frames=8),
                  data=dict(num_sets=256, motion="bounce", frames_per_set=12), steps=1000, frames=6, colour=0.2,
                  pixels=2.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_swapping_the_static_code_moves_colour_and_keeps_position(family, tmp_path):
    """After a short run (under a minute) on squares, a swap (static code of A, dynamic codes of B)
    shows A's colour at B's positions; an untrained model of the family does neither."""
    case = LEARNING[family]
    config = preset("tiny", "squares", family).override("model", **case["model"]).override("data", options=case["data"])
    config = config.override("train", steps=case["steps"], batch_size=32, lr=2e-3, log_every=100,
                             eval_every=case["steps"], checkpoint_every=case["steps"])
    run = train(config, tmp_path / "run", progress=False)
    test = load_frame_sets("squares", "test", **{k: v for k, v in case["data"].items() if k != "num_sets"})
    a, b = torch.arange(32), torch.arange(32, 64)
    frames = torch.arange(case["frames"])
    xa, xb = test.frames(a[:, None], frames), test.frames(b[:, None], frames)
    differ = test.colours[a] != test.colours[b]

    def errors(model):
        swapped = posterior.swap(model, xa, xb)  # static code from A, dynamics from B
        return ((colour(swapped) - colour(xa)).abs().mean(-1)[differ].mean(),
                (colour(swapped) - colour(xb)).abs().mean(-1)[differ].mean(),
                (centre(swapped) - centre(xb)).norm(dim=-1).mean(), (centre(swapped) - centre(xa)).norm(dim=-1).mean())

    colour_a, colour_b, position_b, position_a = errors(run.model)
    assert colour_a < case["colour"] < colour_b  # colour follows the static code's source
    assert position_b < case["pixels"] < position_a  # position (pixels) follows the dynamic codes' source
    untrained = errors(get_family(family).build(run.config.model).eval())
    assert not (untrained[0] < case["colour"] < untrained[1] and untrained[2] < case["pixels"] < untrained[3])
    if family == "dsa":  # a prior over time: it prefers the real order of posterior trajectories
        with torch.no_grad():
            f, z = posterior.encode(run.model, xa)
            shuffled_z = z[:, torch.randperm(z.shape[1], generator=torch.Generator().manual_seed(1))]
            ordered = run.model.dynamics_prior(f, z).log_prob(z).sum(-1)
            shuffled = run.model.dynamics_prior(f, shuffled_z).log_prob(shuffled_z).sum(-1)
        assert (ordered > shuffled).float().mean() > 0.8


ELBO_CASES = [("dvae", {}, False), ("dvae", {}, True), ("dsa", {"posterior": "factorised"}, False),
              ("dsa", {"posterior": "full"}, False), ("dsa", {"posterior": "full"}, True)]


@pytest.mark.parametrize("family,options,analytic", ELBO_CASES,
                         ids=[f"{f}-{'-'.join(o.values()) or 'default'}-{'meanfield' if a else 'trace'}"
                              for f, o, a in ELBO_CASES])
def test_the_elbo_is_pyros_trace_elbo(family, options, analytic):
    """The trainer's ELBO equals Pyro's Trace_ELBO (TraceMeanField_ELBO with analytic KLs), value
    and gradients, for every Pyro family: the objective is the one Pyro would optimise."""
    cfg = preset("tiny", "squares", family).model
    for key, value in options.items():
        setattr(cfg, key, value)
    torch.manual_seed(0)
    model = get_family(family).build(cfg)
    x = torch.rand(5, cfg.frames, 3, 16, 16)
    pyro_elbo = TraceMeanField_ELBO() if analytic else Trace_ELBO()
    torch.manual_seed(1)
    ours = elbo_loss(model.model, model.guide, x, analytic_kl=analytic)
    torch.manual_seed(1)
    pyros = pyro_elbo.differentiable_loss(model.model, model.guide, x)
    assert torch.isfinite(ours) and torch.allclose(ours, pyros, rtol=1e-5)
    parameters = [p for p in model.parameters() if p.requires_grad]
    ours_grads = torch.autograd.grad(ours, parameters, allow_unused=True)
    pyros_grads = torch.autograd.grad(pyros, parameters, allow_unused=True)
    trained = [(g1, g2) for g1, g2 in zip(ours_grads, pyros_grads, strict=True) if g1 is not None]
    assert len(trained) == len(parameters)  # every parameter is trained by the ELBO
    assert all(torch.allclose(g1, g2, rtol=1e-4, atol=1e-6) for g1, g2 in trained)


#: Per family: its extra training options, and what `sample` draws.
COMMANDS = {
    "dvae": ([], {"prior_sequences", "prior_shared_dynamics", "prior_swaps"}),
    "dsa": (["--data-option", "motion=bounce", "--model-option", "posterior=full"],
            {"prior_sequences", "prior_shared_dynamics", "prior_swaps"}),
    "drnet": (["--data-option", "motion=bounce"], {"transfers", "transfer_grid"}),
}



@pytest.mark.parametrize("family", FAMILIES)
def test_every_command_runs_on_a_run_of_each_family(family, tmp_path):
    options, sample_figures = COMMANDS[family]
    config = preset("tiny", "squares", family).override(
        "data", options={"num_sets": 16, **({"motion": "bounce"} if family != "dvae" else {})})
    if family == "dsa":
        config = config.override("model", posterior="full")
    full = train(config.override("train", steps=10), tmp_path / "full", progress=False)

    run_dir = tmp_path / "run"
    result = invoke("train", "--model", family, "--data", "squares", "--preset", "tiny", "--steps", "6", "--quiet",
                    "--data-option", "num_sets=16", *options, "--out", run_dir)
    assert result.exit_code == 0, result.output
    assert f"model: {family}" in result.output and f'family = "{family}"' in (run_dir / "config.toml").read_text()
    # Later commands read the family from the run (no --model), and resuming is exact.
    result = invoke("train", "--resume", run_dir, "--steps", "10", "--quiet")
    assert result.exit_code == 0, result.output
    resumed = load_run(run_dir)
    assert resumed.step == 10 and type(resumed.model) is type(full.model)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name

    result = invoke("sample", run_dir, "--out", tmp_path / "samples", "--sequences", "3", "--frames", "4")
    assert result.exit_code == 0, result.output
    assert {p.stem for p in (tmp_path / "samples").glob("*.png")} == sample_figures

    result = invoke("inspect", run_dir, "--out", tmp_path / "inspect", "--sequences", "3", "--frames", "4",
                    "--draws", "4")
    assert result.exit_code == 0, result.output
    figures = {p.stem for p in (tmp_path / "inspect").glob("*.png")}
    assert {"swaps", "interpolation", "reconstructions"} <= figures
    results = json.loads((tmp_path / "inspect" / "results.json").read_text())
    assert results["model"] == family and "static_consistency_ratio" in results

    result = invoke("evaluate", run_dir, "--seeds", "1", "--out", tmp_path / "eval.json", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["model"] == family and report["protocol"] == "generic"
    has_elbo = get_family(family).build(resumed.config.model).can("elbo_loss")
    assert ("elbo_per_frame" in report["metrics"]["reconstruction"]) == has_elbo
    if family == "drnet":  # no prior: what it cannot do is said in one line, and drawn from other codes
        assert "other test sequence" in report["resampled_from"]["static"]
        assert "latent_manifold" not in figures
        assert "cannot draw dynamics from a prior" in (tmp_path / "inspect" / "index.md").read_text()
        result = invoke("sample", run_dir, "--out", tmp_path / "s2", "--from", "prior")
        assert result.exit_code == 1 and "DrNet has no prior" in result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "s2").exists()
