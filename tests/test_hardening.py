"""Hostile but fair input: every class of bad input is a one-line error with a non-zero exit and
nothing half-written; interrupts are safe and exact; plugins load from installed packages."""

from __future__ import annotations

import shutil
import signal
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pyro_dvae import priors, train
from pyro_dvae.atomic import DirectoryLock
from pyro_dvae.checkpoint import load_checkpoint, save_checkpoint
from pyro_dvae.cli import main
from pyro_dvae.errors import TrainingDiverged, TrainingInterrupted
from pyro_dvae.evaluation import judges
from pyro_dvae.models.plans import SVIPlan
from pyro_dvae.registry import Z_PRIORS
from pyro_dvae.runs import load_run
from pyro_dvae.training import FamilyStage, resume

TINY = ["train", "--data", "squares", "--preset", "tiny", "--quiet", "--data-option", "num_sets=16"]


def fails_cleanly(result, *fragments: str, exit_code: int = 1) -> str:
    """The run ended with ``exit_code`` and one line of error naming the problem, no traceback."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError)
    lines = [line for line in result.output.splitlines() if line.strip()]
    error = lines[-1]
    assert error.startswith("Error: ") and all(f in error for f in fragments), result.output
    return error


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hardening") / "run"
    result = CliRunner().invoke(main, [*TINY, "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


# -- 1. config and option validation, in one place -------------------------------------------


@pytest.mark.parametrize(("toml", "fragment"), [
    ('[train]\nsteps = "3"', "steps must be an integer"),
    ("[train]\nbatch_size = 2.5", "batch_size must be an integer"),
    ("[train]\nkl_warmup = -5", "kl_warmup must be >= 0"),
    ("[train]\nlr_anneal = 1.5", "lr_anneal is a share of the run, in [0, 1)"),
    ("[train]\nlr_anneal_factor = 0", "lr_anneal_factor must be in (0, 1]"),
    ("[train]\nweight_average = -0.5", "weight_average is a decay per step, in [0, 1)"),
    ("[train]\neval_batches = 0", "eval_batches must be >= 1"),
    ("[train]\nlr = nan", "lr must be a number"),
    ('[train]\ndevice = "tpu"', "unknown device 'tpu'"),
    ("[model]\nf_dim = true", "f_dim must be an integer"),
    ("model = 3", "[model] is not a section"),
    ("[data.options]\nframes_per_set = 0", "frames_per_set=0"),
])
def test_bad_config_files_are_refused_before_any_work(tmp_path, toml, fragment):
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = CliRunner().invoke(main, [*TINY, "--config", str(config), "--out", str(tmp_path / "run")])
    fails_cleanly(result, fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--seed", str(2**64 + 1)], "seed must be between 0 and 2**63 - 1"),
    (["--data-option", "num_sets=0"], "out of range"),
    (["--data-option", "seed=1.5"], "seed=1.5 for 'squares' must be an integer"),
    (["--data-option", "size=2"], "size=2"),  # a square of side 0: blank frames
    (["--batch-size", "1000000000"], "GiB for one training step"),
    (["--model-option", "hidden=100000000"], "GiB for one training step"),
])
def test_bad_flags_and_absurd_sizes_are_refused(tmp_path, flags, fragment):
    result = CliRunner().invoke(main, [*TINY, *flags, "--out", str(tmp_path / "run")])
    fails_cleanly(result, fragment)
    assert not (tmp_path / "run").exists()


def test_a_binary_config_file_is_refused(tmp_path):
    config = tmp_path / "weights.toml"
    config.write_bytes(bytes(range(256)) * 4)
    fails_cleanly(CliRunner().invoke(main, [*TINY, "--config", str(config)]), "is not text")


def test_a_device_in_the_config_file_is_kept_not_replaced_by_auto(tmp_path):
    config = tmp_path / "cpu.toml"
    config.write_text('[train]\ndevice = "cpu"\n')
    result = CliRunner().invoke(main, [*TINY, "--config", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert load_run(tmp_path / "run").config.train.device == "cpu"


def test_figure_sizes_that_would_exhaust_memory_are_refused(tiny_run):
    error = fails_cleanly(CliRunner().invoke(main, ["sample", str(tiny_run), "--sequences", "100000"]), "GB")
    assert "sequences x frames <= 10,000" in error


@pytest.mark.parametrize("command", [["sample", "RUN"], ["inspect", "RUN"], ["predict", "RUN"],
                                     ["train-predictor", "RUN"], ["data", "preview", "sprites"],
                                     ["judge", "train", "sprites"]])
def test_seeds_beyond_64_bits_are_refused_by_every_command(tiny_run, command):
    argv = [str(tiny_run) if a == "RUN" else a for a in command] + ["--seed", str(2**64 + 1)]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2 and "Invalid value for '--seed'" in result.output
    assert "Traceback" not in result.output


# -- 2. write errors -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["evaluate", "RUN", "--out", "/proc/pyro-dvae-test/evaluation.json"],
    ["sample", "RUN", "--out", "/proc/pyro-dvae-test/samples"],
    ["inspect", "RUN", "--out", "/sys/pyro-dvae-test/inspect", "--draws", "2"],
])
def test_unwritable_outputs_are_one_line_errors(tiny_run, command):
    result = CliRunner().invoke(main, [str(tiny_run) if a == "RUN" else a for a in command])
    fails_cleanly(result, "pyro-dvae-test")


@pytest.mark.parametrize("command", [
    ["data", "preview", "sprites", "--out", "/proc/pyro-dvae-test/preview.png"],
    ["data", "export", "sprites", "--out", "/proc/pyro-dvae-test/sprites"],
    ["judge", "train", "sprites", "--limit-identities", "2", "--steps", "1", "--batch-size", "4", "--test-limit", "1",
     "--quiet", "--out", "/proc/pyro-dvae-test/judge.pt"],
])
def test_data_and_judge_commands_report_unwritable_outputs_in_one_line(command):
    fails_cleanly(CliRunner().invoke(main, command), "/proc/pyro-dvae-test")


def test_an_object_array_is_refused_without_advice_to_unpickle(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"frames": 1}, None], dtype=object), allow_pickle=True)
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "objects.npy"), "--preset", "tiny",
                                       "--out", str(tmp_path / "run")])
    assert "allow_pickle" not in fails_cleanly(result, "Python objects")


def test_training_into_an_unwritable_folder_leaves_nothing(tmp_path):
    result = CliRunner().invoke(main, [*TINY, "--out", "/proc/pyro-dvae-test/run"])
    fails_cleanly(result, "/proc/pyro-dvae-test/run")
    blocked = tmp_path / "blocked"  # a file where a parent folder should be
    blocked.write_text("")
    fails_cleanly(CliRunner().invoke(main, [*TINY, "--out", str(blocked / "run")]), str(blocked))


# -- 3. checkpoints and run directories ------------------------------------------------------


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def test_a_judge_file_named_checkpoint_is_refused(tiny_run, tmp_path):
    folder = copy_run(tiny_run, tmp_path / "run")
    settings = judges.default_settings("sprites", width=8)
    judges.save_judge(judges.Judge(judges.SpritesJudgeNet(8), settings), folder / "checkpoint.pt")
    fails_cleanly(CliRunner().invoke(main, ["evaluate", str(folder)]), "is a judge file")


def test_a_checkpoint_with_other_shapes_or_types_is_refused_with_the_difference(tiny_run, tmp_path):
    folder = copy_run(tiny_run, tmp_path / "run")
    payload = load_checkpoint(folder / "checkpoint.pt")
    name = next(iter(payload["model"]))
    payload["model"][name] = torch.zeros(7, 1)
    save_checkpoint(folder / "checkpoint.pt", {k: v for k, v in payload.items() if k not in ("format", "version")})
    resume_command = ["train", "--resume", str(folder), "--steps", "5"]
    for command in (["sample", str(folder)], ["evaluate", str(folder)], resume_command):
        fails_cleanly(CliRunner().invoke(main, command), name, "(7, 1)")
    payload["config"]["train"]["steps"] = "3"
    save_checkpoint(folder / "checkpoint.pt", {k: v for k, v in payload.items() if k not in ("format", "version")})
    fails_cleanly(CliRunner().invoke(main, ["inspect", str(folder)]), "invalid config", "steps must be an integer")
    del payload["rng"]
    save_checkpoint(folder / "checkpoint.pt", {k: v for k, v in payload.items() if k not in ("format", "version")})
    fails_cleanly(CliRunner().invoke(main, ["train", "--resume", str(folder), "--steps", "5"]), "rng")


def test_a_checkpoint_from_another_run_is_not_continued(tiny_run, tmp_path):
    other = tmp_path / "other"
    assert CliRunner().invoke(main, [*TINY, "--steps", "2", "--seed", "1", "--out", str(other)]).exit_code == 0
    shutil.copy(tiny_run / "checkpoint.pt", other / "checkpoint.pt")
    error = fails_cleanly(CliRunner().invoke(main, ["train", "--resume", str(other), "--steps", "4"]),
                          "belongs to another run")
    assert "train.seed" in error


def test_torn_metrics_stale_temporaries_and_a_run_without_checkpoint(tiny_run, tmp_path):
    folder = copy_run(tiny_run, tmp_path / "run")
    with open(folder / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 3, "split": "tra')  # a killed write
    stale = folder / ".checkpoint.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    run = resume(folder, steps=4, progress=False)
    assert [m["step"] for m in run.metrics() if m["split"] == "train"][-1] == 4
    assert not stale.exists() and not list(folder.glob(".*.tmp"))
    (folder / "checkpoint.pt").unlink()
    fails_cleanly(CliRunner().invoke(main, ["sample", str(folder)]), "stopped before its first checkpoint")


def test_atomic_writes_give_files_the_mode_a_plain_write_would(tiny_run):
    import os

    mask = os.umask(0)
    os.umask(mask)
    written = [tiny_run / "config.toml", tiny_run / "metrics.jsonl", tiny_run / "checkpoint.pt",
               *(tiny_run / "figures").glob("*.png")]
    assert len(written) > 4 and {f.stat().st_mode & 0o777 for f in written} == {0o666 & ~mask}


def test_a_second_trainer_on_a_run_in_use_is_refused(tiny_run, tmp_path):
    folder = copy_run(tiny_run, tmp_path / "run")
    before = (folder / "metrics.jsonl").read_text()
    with DirectoryLock(folder, ".checkpoint.pt.lock", "training checkpoint.pt"):
        fails_cleanly(CliRunner().invoke(main, ["train", "--resume", str(folder), "--steps", "4"]), "is in use by")
    assert (folder / "metrics.jsonl").read_text() == before  # nothing rewritten
    assert resume(folder, steps=4, progress=False).step == 4  # the lock went with its holder


def test_loading_a_crafted_checkpoint_leaks_no_torch_warning(tmp_path):
    legacy = tmp_path / "checkpoint.pt"
    torch.save({"format": "pyro-dvae-checkpoint", "w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint(legacy)


# -- 4. interrupts ---------------------------------------------------------------------------


def press_ctrl_c_during(monkeypatch, cls, name: str, at_calls: set[int]) -> None:
    """Deliver a real SIGINT (as Ctrl-C does) inside ``cls.name`` on the given calls."""
    real, calls = getattr(cls, name), {"n": 0}

    def pressed(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] in at_calls:
            signal.raise_signal(signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(cls, name, pressed)


def test_ctrl_c_in_a_step_saves_a_checkpoint_that_resumes_bitwise(tiny_config, tmp_path, monkeypatch):
    config = tiny_config.override("train", steps=10, log_every=3, eval_every=4, checkpoint_every=100, kl_warmup=6)
    full = train(config, tmp_path / "full", progress=False)
    # After the batch of step 5 is drawn, before its update: the old handler saved step 4 with the
    # random state of step 5, and the resumed run diverged.
    press_ctrl_c_during(monkeypatch, SVIPlan, "step", {5})
    with pytest.raises(TrainingInterrupted, match="step 5"):
        train(config, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    assert load_run(tmp_path / "cut").step == 5
    resumed = resume(tmp_path / "cut", progress=False)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_ctrl_c_twice_and_during_the_checkpoint_write_never_tears_a_file(tiny_config, tmp_path, monkeypatch):
    import pyro_dvae.checkpoint as checkpoint

    press_ctrl_c_during(monkeypatch, SVIPlan, "step", {3})
    press_ctrl_c_during(monkeypatch, checkpoint.torch, "save", {1, 2})  # twice inside the write
    with pytest.raises(TrainingInterrupted, match="step 3"):
        train(tiny_config.override("train", steps=10, checkpoint_every=100), tmp_path / "run", progress=False)
    assert load_run(tmp_path / "run").step == 3 and not list((tmp_path / "run").glob(".*.tmp"))


def test_ctrl_c_at_start_up_and_in_the_figures_exits_130_without_traceback(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(FamilyStage, "open_data", interrupted)
        result = CliRunner().invoke(main, [*TINY, "--out", str(tmp_path / "early")])
    fails_cleanly(result, "interrupted", exit_code=130)
    assert not (tmp_path / "early").exists()
    monkeypatch.setattr(FamilyStage, "figures", interrupted)
    result = CliRunner().invoke(main, [*TINY, "--out", str(tmp_path / "late")])
    fails_cleanly(result, "interrupted while drawing the figures", exit_code=130)
    assert load_run(tmp_path / "late").step == 20


def test_a_nan_before_the_first_checkpoint_says_there_is_none(tiny_config, tmp_path, monkeypatch):
    real = SVIPlan.loss
    monkeypatch.setattr(SVIPlan, "loss", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(TrainingDiverged, match="no checkpoint exists yet"):
        train(tiny_config.override("train", steps=10, checkpoint_every=5), tmp_path / "run", progress=False)


# -- 5. data warnings ------------------------------------------------------------------------


def test_unreadable_files_are_one_short_warning_without_source_lines(tmp_path):
    rng = np.random.default_rng(0)
    for name in "abcde":
        folder = tmp_path / "sets" / name
        folder.mkdir(parents=True)
        for t in range(4):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{t}.png")
    (tmp_path / "sets" / "a" / "broken.png").write_bytes(b"not a png")
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "sets"), "--preset", "tiny", "--steps", "1",
                                       "--quiet", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "warning: skipped 1 unusable file" in result.stderr and "a/broken.png" in result.stderr
    assert "warnings.warn" not in result.stderr and ".py:" not in result.stderr


# -- 6. plugins from installed packages ------------------------------------------------------


def install_fake_package(root: Path, entry_points: str) -> None:
    info = root / "demo_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_a_prior_from_an_installed_package_trains_by_name(tmp_path, monkeypatch):
    install_fake_package(tmp_path / "site", "[pyro_dvae.z_priors]\n"
                                            "demo-gaussian = pyro_dvae.priors:ConditionalGaussianPrior\n"
                                            "demo-broken = no_such_module_anywhere:Prior\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    try:
        # A broken plugin stops only the runs that ask for it, and is named.
        result = CliRunner().invoke(main, [*TINY, "--z-prior", "demo-broken", "--out", str(tmp_path / "broken")])
        fails_cleanly(result, "demo-broken", "no_such_module_anywhere", "uninstall")
        result = CliRunner().invoke(main, [*TINY, "--z-prior", "demo-gaussian", "--out", str(tmp_path / "run")])
        assert result.exit_code == 0, result.output
        run = load_run(tmp_path / "run")
        assert run.config.model.z_prior == "demo-gaussian" and "demo-gaussian" in priors.z_prior_names()
        # Built-ins come through the same door: an entry point of the installed pyro-dvae.
        assert {"conditional-gaussian", "fitted-aggregate"} <= {
            entry.name for entry in metadata.entry_points(group=Z_PRIORS.group) if entry.value.startswith("pyro_dvae.")}
    finally:
        for name in ("demo-gaussian", "demo-broken"):
            Z_PRIORS.unregister(name)


# -- TensorBoard -----------------------------------------------------------------------------


def test_tensorboard_gets_the_same_numbers_as_metrics_jsonl(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = CliRunner().invoke(main, [*TINY, "--steps", "10", "--tensorboard", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    logged = [m for m in load_run(tmp_path / "run").metrics() if m["split"] == "train"]
    scalars = events.Scalars("train/elbo_per_frame")
    assert [s.step for s in scalars] == [m["step"] for m in logged] and len(logged) >= 2
    assert [s.value for s in scalars] == pytest.approx([m["elbo_per_frame"] for m in logged], rel=1e-6)
    assert "test/elbo_per_frame" in events.Tags()["scalars"]


def test_tensorboard_without_the_package_is_a_one_line_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    result = CliRunner().invoke(main, [*TINY, "--tensorboard", "--out", str(tmp_path / "run")])
    fails_cleanly(result, "pip install 'pyro-dvae[tensorboard]'")
    assert not (tmp_path / "run").exists()
