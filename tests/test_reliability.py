"""Nothing lost, whatever happens to the machine: a full or read-only disk, a file-size limit, a
damaged or contested cache, a reader during training, a NaN in the middle of a run. Each failure
ends in one line naming the path and the cause, with the last complete checkpoint intact, and the
run resumes from it (docs/reliability.md)."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pyro_dvae.cli import main
from pyro_dvae.data import load_frame_sets
from pyro_dvae.errors import DataWarning
from pyro_dvae.models.plans import SVIPlan
from pyro_dvae.runs import load_run
from pyro_dvae.training import engine

TINY = ["train", "--data", "squares", "--preset", "tiny", "--quiet", "--data-option", "num_sets=16"]


def fails_cleanly(result, *fragments: str, exit_code: int = 1) -> str:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError)
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert all(f in error for f in fragments), result.output
    return error


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(),
                                                  strict=True))


def no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".partial" in p.name]


# -- 1. a disk that fills, a file system that turns read-only ----------------------------------


@pytest.mark.parametrize("cause", [errno.ENOSPC, errno.EROFS])
def test_a_checkpoint_write_that_fails_keeps_the_last_one_and_the_run_resumes_to_the_same_bits(
        tmp_path, monkeypatch, cause):
    full = CliRunner().invoke(main, [*TINY, "--steps", "20", "--out", str(tmp_path / "full")])
    assert full.exit_code == 0, full.output
    real, writes = engine.save_checkpoint, []

    def third_write_fails(path, payload):
        writes.append(payload["step"])
        if len(writes) == 2:  # the checkpoint of step 20: the disk is full (or read-only) now
            raise OSError(cause, os.strerror(cause), str(path))
        real(path, payload)

    with monkeypatch.context() as patch:
        patch.setattr(engine, "save_checkpoint", third_write_fails)
        result = CliRunner().invoke(main, [*TINY, "--steps", "20", "--out", str(tmp_path / "run")])
    error = fails_cleanly(result, str(tmp_path / "run" / "checkpoint.pt"), os.strerror(cause), "(step 10) is intact",
                          "--resume")
    assert "training stopped at step 20" in error
    assert load_run(tmp_path / "run").step == 10 and no_partial_files(tmp_path / "run")
    # Space is back: the run resumes from its last checkpoint and ends as the uninterrupted one.
    result = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "run"), "--steps", "20", "--quiet"])
    assert result.exit_code == 0, result.output
    assert same_weights(load_run(tmp_path / "run"), load_run(tmp_path / "full"))


def test_a_metrics_line_that_cannot_be_written_is_one_line_naming_the_file(tmp_path, monkeypatch):
    real = engine.Engine._log

    def log(self, record):
        if record["step"] >= 15:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.out / "metrics.jsonl"))
        real(self, record)

    monkeypatch.setattr(engine.Engine, "_log", log)
    result = CliRunner().invoke(main, [*TINY, "--steps", "20", "--out", str(tmp_path / "run")])
    fails_cleanly(result, "metrics.jsonl", "No space left on device", "(step 10) is intact")


def test_a_file_size_limit_ends_the_run_with_efbig_not_a_killed_process(tmp_path):
    """Under ``ulimit -f`` the kernel would kill a writer with SIGXFSZ; the CLI ignores the signal so
    that the write fails with EFBIG, which is reported like a full disk."""
    limit = 64 * 1024  # above the config and the metrics, below one checkpoint of the tiny preset

    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "pyro_dvae", *TINY, "--out", str(tmp_path / "run")],
                            capture_output=True, text=True, preexec_fn=set_limit, timeout=300)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: cannot write") and "File too large" in lines[-1], result.stderr
    assert "Traceback" not in result.stderr and no_partial_files(tmp_path / "run")


def test_a_figure_that_cannot_be_written_leaves_a_complete_run(tmp_path, monkeypatch):
    from pyro_dvae.training import FamilyStage

    def figures(self, engine):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(engine.out / "figures" / "reconstructions.png"))

    monkeypatch.setattr(FamilyStage, "figures", figures)
    result = CliRunner().invoke(main, [*TINY, "--out", str(tmp_path / "run")])
    fails_cleanly(result, "reconstructions.png", "No space left on device", "run is complete at step 20")
    assert load_run(tmp_path / "run").step == 20


# -- 2. caches ---------------------------------------------------------------------------------


def write_arrays_as_images(folder: Path, sets: int = 3, frames: int = 4) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for s in range(sets):
        (folder / f"set{s}").mkdir(parents=True)
        for f in range(frames):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"set{s}" / f"{f}.png")


def cache_files(folder: Path) -> list[Path]:
    return sorted((folder / ".pyro-dvae-cache").rglob("*.npy"))


@pytest.mark.parametrize("damage", ["truncate", "flip a header byte", "replace"])
def test_a_damaged_cache_is_detected_and_decoded_again_never_read_as_garbage(tmp_path, damage):
    write_arrays_as_images(tmp_path / "imgs")
    first = load_frame_sets(tmp_path / "imgs", image_size=16, test_fraction=0.0)
    expected = first.frames(torch.arange(3)[:, None], torch.arange(4))
    array = cache_files(tmp_path / "imgs")[0]
    raw = bytearray(array.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) - 100]
    elif damage == "flip a header byte":
        raw[raw.index(b"(") + 1] ^= 0x02  # a digit of the shape becomes another digit
    else:  # the same header, other frames
        raw[-50:] = bytes(50)
    array.write_bytes(bytes(raw))
    with pytest.warns(DataWarning, match="damaged"):
        again = load_frame_sets(tmp_path / "imgs", image_size=16, test_fraction=0.0)
    assert torch.equal(again.frames(torch.arange(3)[:, None], torch.arange(4)), expected)


def test_a_changed_source_file_is_decoded_again(tmp_path):
    write_arrays_as_images(tmp_path / "imgs")
    before = load_frame_sets(tmp_path / "imgs", image_size=16, test_fraction=0.0).frames(
        torch.arange(3)[:, None], torch.arange(4))
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "imgs" / "set0" / "0.png")
    os.utime(tmp_path / "imgs" / "set0" / "0.png", ns=(time.time_ns() + 10**9,) * 2)
    after = load_frame_sets(tmp_path / "imgs", image_size=16, test_fraction=0.0).frames(
        torch.arange(3)[:, None], torch.arange(4))
    assert after[0].sum() < before[0].sum() and torch.equal(after[1:], before[1:])


def _open(folder: str) -> int:
    return len(load_frame_sets(Path(folder), image_size=16, test_fraction=0.0))


def test_two_processes_building_the_same_cache_end_with_one_good_cache(tmp_path):
    write_arrays_as_images(tmp_path / "imgs", sets=6)
    with get_context("spawn").Pool(2) as pool:
        sizes = pool.map(_open, [str(tmp_path / "imgs")] * 2)
    assert sizes == [6, 6]
    manifest = json.loads(next((tmp_path / "imgs" / ".pyro-dvae-cache").rglob("manifest.json")).read_text())
    assert len(manifest["entries"]) == 6 and len(cache_files(tmp_path / "imgs")) == 6
    assert no_partial_files(tmp_path / "imgs")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # a good cache: read without a word
        assert _open(str(tmp_path / "imgs")) == 6


# -- 3. readers while a run trains -------------------------------------------------------------


def test_readers_during_training_read_the_last_complete_checkpoint_and_say_which(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "--steps", "400", "--out", str(run_dir)]
    trainer = subprocess.Popen([sys.executable, "-m", "pyro_dvae", *args, "--config", str(_every_step(tmp_path))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run_dir / "checkpoint.pt").is_file():
            assert trainer.poll() is None and time.time() < deadline, trainer.stderr.read()
            time.sleep(0.05)
        steps = []
        while trainer.poll() is None and len(steps) < 30:
            steps.append(load_run(run_dir).step)  # never a torn file, never an error
        assert len(steps) >= 5 and steps == sorted(steps)
        result = CliRunner().invoke(main, ["sample", str(run_dir), "--out", str(tmp_path / "s"), "--frames", "3",
                                           "--sequences", "2"])
        assert result.exit_code == 0, result.output
        said = result.output.strip().splitlines()[-1]
        assert said.startswith(f"read {run_dir} at step ") and (
            "training now" in said or trainer.poll() is not None)
    finally:
        trainer.send_signal(signal.SIGINT)
        trainer.wait(timeout=60)


def _every_step(tmp_path: Path) -> Path:
    path = tmp_path / "every-step.toml"
    path.write_text("[train]\ncheckpoint_every = 1\nlog_every = 1\neval_every = 1000\n")
    return path


# -- 6. a NaN in the middle of a run -----------------------------------------------------------


def test_a_nan_names_its_step_and_the_last_good_checkpoint_and_a_lower_rate_continues(tmp_path, monkeypatch):
    real = SVIPlan.loss

    def nan_from_step_14(self, x, step):
        loss = real(self, x, step)
        return loss * float("nan") if step >= 14 and self.cfg.lr > 5e-4 else loss

    monkeypatch.setattr(SVIPlan, "loss", nan_from_step_14)
    result = CliRunner().invoke(main, [*TINY, "--steps", "20", "--out", str(tmp_path / "run")])
    error = fails_cleanly(result, "NaN/inf at step 14", "checkpoint.pt (step 10)", "--lr", "--kl-warmup")
    assert "--resume" in error and load_run(tmp_path / "run").step == 10
    result = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "run"), "--steps", "20", "--lr", "3e-4",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    run = load_run(tmp_path / "run")
    assert run.step == 20 and run.config.train.lr == 3e-4


# -- hostile input that used to get through ----------------------------------------------------


def test_data_options_that_are_not_a_table_are_a_one_line_error(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[data]\nsource = "squares"\noptions = "num_sets=16"\n')
    result = CliRunner().invoke(main, ["train", "--preset", "tiny", "--config", str(config), "--out",
                                       str(tmp_path / "run")])
    fails_cleanly(result, "[data] options must be a table")
    assert not (tmp_path / "run").exists()


def test_quiet_decoding_of_unusable_files_prints_the_warning_and_the_error_only(tmp_path):
    (tmp_path / "videos").mkdir()
    for i in range(6):
        (tmp_path / "videos" / f"broken{i}.mp4").write_bytes(b"not a video")
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "videos"), "--preset", "tiny", "--quiet",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "decoding videos" not in result.output and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: no usable videos")


def test_an_export_refused_for_its_options_leaves_no_folder(tmp_path):
    result = CliRunner().invoke(main, ["data", "export", "sprites", "--out", str(tmp_path / "export"),
                                       "--limit-identities", "100000"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert not (tmp_path / "export").exists()


def test_ctrl_c_in_the_checkpoint_write_after_fitting_the_priors_exits_cleanly(tmp_path, monkeypatch):
    real, writes = engine.save_checkpoint, []

    def interrupted_write(path, payload):
        writes.append(payload["step"])
        if len(writes) == 3:  # step 10, step 20, then the write after the priors were fitted
            os.kill(os.getpid(), signal.SIGINT)
        real(path, payload)

    monkeypatch.setattr(engine, "save_checkpoint", interrupted_write)
    result = CliRunner().invoke(main, [*TINY, "--f-prior", "fitted-flow", "--out", str(tmp_path / "run")])
    fails_cleanly(result, "interrupted after training", "run is complete at step 20", exit_code=130)
    run = load_run(tmp_path / "run")
    assert run.step == 20 and bool(run.model.f_prior.fitted)  # the write finished, with the fit
