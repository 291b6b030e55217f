"""The model-family seam: the registry, configs per family, runs of 0.1.0, and a family with
fewer capabilities (no priors, no guide) going through the one trainer and every command."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from cli_helpers import invoke
from torch import nn

from pyro_dvae import posterior
from pyro_dvae.config import ModelConfig, RunConfig, TrainConfig, preset, read_config_file
from pyro_dvae.errors import UserInputError
from pyro_dvae.models import Family, family_names, get_family, register_family
from pyro_dvae.models.base import CapabilityError, SequenceModel
from pyro_dvae.models.dvae import DVAE, DVAEConfig
from pyro_dvae.nets import Emitter, FrameFeatures
from pyro_dvae.registry import FAMILIES
from pyro_dvae.runs import load_run
from pyro_dvae.training import resume, train

OLD_RUN = Path(__file__).parent / "data" / "dvae-0.1.0-tiny"



def test_registry_and_presets_of_every_family():
    assert {"dvae", "dsa"} <= set(family_names())
    for name in family_names():
        family = get_family(name)
        for preset_name in ("paper", "cpu", "tiny"):
            config = preset(preset_name, "sprites", name)
            assert isinstance(config.model, family.config_class) and config.model.family == name
            config.validate()
            # The config survives its own round trip, family included.
            assert RunConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UserInputError, match="unknown model family 'nope'; use one of"):
        get_family("nope")


def test_paper_presets_follow_the_papers():
    dsa = preset("paper", "sprites", "dsa").model
    assert (dsa.f_dim, dsa.z_dim, dsa.frames, dsa.image_size, dsa.conv_width) == (256, 32, 8, 64, 256)
    dvae = preset("paper", "sprites").model
    assert (dvae.f_dim, dvae.z_dim, dvae.frames, dvae.conv_width) == (256, 2, 3, 256)


def test_unknown_family_is_a_one_line_cli_error(tmp_path):
    result = invoke("train", "--model", "vae9000", "--out", tmp_path / "run")
    assert result.exit_code == 1 and "unknown model family 'vae9000'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


# -- runs written by 0.1.0 -----------------------------------------------------------------------


@pytest.fixture
def old_run(tmp_path) -> Path:
    return Path(shutil.copytree(OLD_RUN, tmp_path / "old"))


def test_a_0_1_0_run_loads_as_a_dvae_and_every_command_reads_it(old_run, tmp_path):
    assert "family" not in (old_run / "config.toml").read_text()
    run = load_run(old_run)
    assert isinstance(run.model, DVAE) and run.config.model.family == "dvae" and run.step == 4
    payload = torch.load(old_run / "checkpoint.pt", weights_only=True)
    for name, tensor in run.model.state_dict().items():
        assert torch.equal(tensor, payload["model"][name]), name
    x = run.data("test").sample(2, 3)
    assert torch.isfinite(run.model.elbo_loss(x)) and posterior.reconstruct(run.model, x).shape == x.shape
    for args in (["train", "--resume", old_run, "--steps", "6", "--quiet"],
                 ["sample", old_run, "--out", tmp_path / "s", "--sequences", "2", "--frames", "3"],
                 ["inspect", old_run, "--out", tmp_path / "i", "--sequences", "2", "--frames", "3", "--draws", "3"],
                 ["evaluate", old_run, "--seeds", "1", "--quiet", "--out", tmp_path / "e.json"]):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
    assert load_run(old_run).step == 6
    # Its config file still works as --config, and reads as a DVAE config.
    assert RunConfig.from_dict(read_config_file(OLD_RUN / "config.toml")).model == DVAEConfig(
        **{k: v for k, v in read_config_file(OLD_RUN / "config.toml")["model"].items()})


# -- a family with fewer capabilities ----------------------------------------------------------------


@dataclass
class ToyConfig(ModelConfig):
    family: str = "toy-autoencoder"


class ToyAutoencoder(SequenceModel):
    """A deterministic autoencoder: f is the mean frame feature, z each frame's own; no priors."""

    family = "toy-autoencoder"
    missing_reason = "a plain autoencoder has no prior"

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.features = FrameFeatures(cfg)
        width = cfg.conv_width * 16
        self.to_f, self.to_z = nn.Linear(width, cfg.f_dim), nn.Linear(width, cfg.z_dim)
        self.emitter = Emitter(cfg)

    def encode_static(self, x, generator=None, n_subsets=8):
        f = self.to_f(self.features(x).flatten(-3)).mean(1)
        return f, torch.zeros_like(f)

    def encode_dynamic(self, x, f):
        z = self.to_z(self.features(x).flatten(-3))
        return z, torch.zeros_like(z)

    def decode(self, f, z):
        return torch.sigmoid(self.emitter(f.unsqueeze(-2), z))


class MSEPlan:
    """A plan of the kind DrNet's will be: its own optimiser and objective, no ELBO."""

    metric = "negative_mse_per_frame"

    def __init__(self, model, cfg: TrainConfig):
        self.model, self.optimizer = model, torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def kl_scale(self, step):
        return 1.0

    def _loss(self, x):
        return ((self.model.decode(*self.model.encode(x)) - x) ** 2).mean((-1, -2, -3)).sum()

    def step(self, x, step):
        loss = self._loss(x)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def heldout(self, x):
        return self._loss(x)

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state)


def _toy_presets(name, source):
    return {"model": dict(image_size=16, f_dim=4, z_dim=2, frames=4, conv_width=8, hidden=16),
            "train": dict(steps=8, batch_size=8, log_every=4, eval_every=4, checkpoint_every=4, eval_batches=1)}


@pytest.fixture(scope="module")
def toy_family():
    family = register_family(Family("toy-autoencoder", "a test family", ToyConfig, ToyAutoencoder, MSEPlan,
                                    "windows", _toy_presets))
    yield family
    FAMILIES.unregister(family.name)


def test_a_family_without_priors_trains_resumes_and_says_what_it_cannot_do(toy_family, tmp_path):
    config = preset("tiny", "squares", "toy-autoencoder").override("data", options={"num_sets": 16})
    run = train(config, tmp_path / "run", progress=False)
    assert isinstance(run.model, ToyAutoencoder) and run.step == 8
    assert {"negative_mse_per_frame"} <= set(run.metrics()[0]) and (run.figures_dir / "reconstructions.png").exists()
    assert not (run.figures_dir / "prior_samples.png").exists()  # no prior: no prior figures
    assert resume(run.path, steps=12, progress=False).step == 12
    # Its plan does not list its optimisers: the trainer cannot lower their rate, and says so before any step.
    with pytest.raises(UserInputError, match="MSEPlan does not list its optimizers"):
        train(config.override("train", lr_anneal=0.5), tmp_path / "annealed", progress=False)
    assert not run.model.can("sample_static") and run.model.can("elbo_loss") is False

    with pytest.raises(CapabilityError):
        posterior.sample_prior(run.model, 2, 3)
    result = invoke("sample", run.path, "--out", tmp_path / "samples", "--from", "prior")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == ("Error: a toy-autoencoder model cannot draw static codes from a prior "
                                     "(a plain autoencoder has no prior); use a run of a family that can "
                                     "(e.g. --model dvae)")
    assert not (tmp_path / "samples").exists()  # refused before anything was written
    # Without --from prior, sample recombines held-out codes instead (all a family without priors can do).
    result = invoke("sample", run.path, "--out", tmp_path / "samples", "--frames", "4")
    assert result.exit_code == 0, result.output
    assert {p.stem for p in (tmp_path / "samples").glob("*.png")} == {"transfers", "transfer_grid"}

    # inspect leaves out what needs a prior or a guide, and says so; evaluate has no ELBO to report.
    result = invoke("inspect", run.path, "--out", tmp_path / "inspect", "--sequences", "2", "--frames", "3")
    assert result.exit_code == 0, result.output
    index = (tmp_path / "inspect" / "index.md").read_text()
    assert "## Left out" in index and "cannot draw from a posterior guide" in index
    assert not (tmp_path / "inspect" / "latent_manifold.png").exists()
    assert (tmp_path / "inspect" / "swaps.png").exists()
    result = invoke("evaluate", run.path, "--seeds", "1", "--quiet", "--out", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "e.json").read_text())["metrics"]
    assert "mse" in metrics["reconstruction"] and "elbo_per_frame" not in metrics["reconstruction"]
