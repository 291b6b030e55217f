"""The results scripts end to end at smoke size: the screens of DSA's and DrNet's presets
(benchmarks/results/screen.py), the equal-budget comparison (benchmarks/results/compare.py), the quality
curve (benchmarks/results/quality.py --curve) and the GPU script that drives it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def _script(name: str, *args, timeout: int = 600) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, str(RESULTS / name), *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def _table_rows(output: str) -> list[list[str]]:
    lines = [line for line in output.splitlines() if line.startswith("| ") and not line.startswith("| change")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_a_screen_trains_each_row_through_the_cli_with_the_command_it_prints(tmp_path):
    # One row changes a training setting, one a model setting; one call trains both.
    changed = {"beta_f 0.1": ("beta-f-0-1", "train", "f_kl_weight", 0.1), "z_dim 4": ("z-dim-4", "model", "z_dim", 4)}
    out = tmp_path / "screen"
    output = _script("screen.py", "--model", "dsa", "--data", "sprites", "--preset", "tiny", "--minutes", "0.03",
                     "--limit", "9", "--rows", *changed, "--out", out)
    rows = _table_rows(output)
    assert [r[0] for r in rows] == list(changed)
    for cells in rows:
        assert int(cells[1]) > 0 and all(0 <= float(c) <= 100 for c in cells[2:9])  # steps, then seven heads
    # The printed command is the one that trained the row: run again, it writes the same config.
    for cells in rows:
        folder, section, field, value = changed[cells[0]]
        command = shlex.split(cells[-1].strip("`").replace("RUN", str(tmp_path / folder)))
        assert command[:2] == ["pyro-dvae", "train"] and "--model" in command
        done = subprocess.run([str(Path(sys.executable).parent / command[0]), *command[1:], "--steps", "1", "--quiet"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        screened = tomllib.loads((out / folder / "config.toml").read_text())
        again = tomllib.loads((tmp_path / folder / "config.toml").read_text())
        assert screened[section][field] == again[section][field] == value
        assert {k: v for k, v in screened["train"].items() if k not in ("steps", "max_minutes")} == \
            {k: v for k, v in again["train"].items() if k not in ("steps", "max_minutes")}
        assert screened["model"] == again["model"]
    # Finished rows are kept: a second call trains nothing and prints the same table.
    assert _table_rows(_script("screen.py", "--model", "dsa", "--preset", "tiny", "--rows", *changed, "--out", out,
                               "--table")) == rows


def test_a_screen_refuses_a_row_it_does_not_define(tmp_path):
    done = subprocess.run([sys.executable, str(RESULTS / "screen.py"), "--model", "dsa", "--rows", "nonsense",
                           "--out", tmp_path], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown rows ['nonsense']" in done.stderr and "beta_f 0.1" in done.stderr
    # Moving MNIST's own rows (the position's 2-D z, the DVAE's translate decoder) exist only there.
    decoder = "the DVAE's translate decoder"
    on_sprites = subprocess.run([sys.executable, str(RESULTS / "screen.py"), "--model", "drnet", "--rows", decoder,
                                 "--out", tmp_path], capture_output=True, text=True, timeout=120)
    assert on_sprites.returncode == 2 and "unknown rows" in on_sprites.stderr
    on_digits = subprocess.run([sys.executable, str(RESULTS / "screen.py"), "--model", "drnet", "--data",
                                "moving-mnist-1", "--rows", "nonsense", "--out", tmp_path],
                               capture_output=True, text=True, timeout=120)
    assert decoder in on_digits.stderr and "z_dim 2" in on_digits.stderr and "no adversarial loss" in on_digits.stderr


def test_the_comparison_runs_every_family_end_to_end_and_prints_both_tables(tmp_path):
    output = _script("compare.py", "--data", "sprites", "--preset", "tiny", "--minutes", "0.03",
                     "--predictor-minutes", "0.02", "--limit", "9", "--seeds", "1", "--samples", "2",
                     "--out", tmp_path)
    disentanglement, prediction = output.split("| context -> horizon")
    families = [line.split("|")[2].strip() for line in disentanglement.splitlines() if line.startswith("| sprites")]
    assert families == ["dvae", "dsa", "drnet"]
    assert len([line for line in prediction.splitlines() if line.startswith("| sprites")]) == 3
    for family in families:
        result = json.loads((tmp_path / "sprites" / family / "compare.json").read_text())
        assert result["steps"] > 0 and 0 <= result["metrics"]["dynamics_kept.action_accuracy"] <= 1
        assert 0 <= result["prediction"]["metrics"]["action_accuracy"] <= 1


def test_the_comparison_trains_the_authors_settings_beside_the_preset_and_spreads_over_seeds(tmp_path):
    # Seed 1's training was interrupted before (a checkpoint, no record of its minutes): it starts again,
    # rather than resuming with a whole budget more than the other runs had.
    interrupted = tmp_path / "sprites" / "dvae-authors-seed1"
    interrupted.mkdir(parents=True)
    (interrupted / "checkpoint.pt").write_bytes(b"left by a killed run")
    output = _script("compare.py", "--data", "sprites", "--models", "dvae", "--settings", "authors",
                     "--train-seeds", "2", "--preset", "tiny", "--minutes", "0.02", "--predictor-minutes", "0.01",
                     "--limit", "9", "--seeds", "1", "--samples", "1", "--out", tmp_path)
    rows = [line.split("|") for line in output.splitlines() if line.startswith("| sprites")]
    assert [r[2].strip() for r in rows] == ["dvae (authors)", "dvae (authors)"]  # one row per table
    assert rows[0][3].strip() == "2" and "±" in rows[0][6]  # two training seeds: mean ± spread
    for seed in (0, 1):
        folder = tmp_path / "sprites" / ("dvae-authors" + (f"-seed{seed}" if seed else ""))
        config = tomllib.loads((folder / "config.toml").read_text())
        assert config["train"]["seed"] == seed and config["train"]["f_kl_weight"] == 1.0
        assert config["model"]["z_prior"] == "conditional-gaussian" and config["train"]["elbo"] == "trace"


def test_a_step_matched_quality_curve_trains_to_each_mark_and_a_finished_folder_is_read_not_trained(tmp_path):
    args = ["--preset", "tiny", "--curve", "0.5", "1", "--steps-at", "3", "6", "--limit", "9", "--seeds", "1",
            "--out", tmp_path]
    output = _script("quality.py", *args)
    reports = [json.loads((tmp_path / "seed0" / f"evaluation-{mark}min.json").read_text()) for mark in ("0.5", "1")]
    assert [r["step"] for r in reports] == [3, 6] and all(r["step_matched"] for r in reports)
    assert [row[:2] for row in _table_rows(output)[1:]] == [["0.5", "3-3"], ["1", "6-6"]]
    assert (tmp_path / "curve.png").stat().st_size > 0
    checkpoint = (tmp_path / "seed0" / "checkpoint.pt").stat().st_mtime_ns
    again = _script("quality.py", *args)
    assert "every mark evaluated before; not trained again" in again
    assert (tmp_path / "seed0" / "checkpoint.pt").stat().st_mtime_ns == checkpoint
    assert _table_rows(again)[1:] == _table_rows(output)[1:]


def test_the_gpu_curve_script_runs_on_the_cpu_with_the_tiny_preset(tmp_path):
    """benchmarks/speed/gpu_paper.sh's documented CPU smoke check: a curve in minutes, the times to 95 and 99%."""
    script = RESULTS.parent / "speed" / "gpu_paper.sh"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MARKS": "0.02 0.021 0.3", "PRESET": "tiny", "DEVICE": "cpu", "LIMIT": "9", "EVAL_SEEDS": "1",
           "OUT": str(tmp_path)}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    steps = [json.loads((tmp_path / "seed0" / f"evaluation-{mark}min.json").read_text())["step"]
             for mark in ("0.02", "0.021", "0.3")]
    # The first chunk (data set-up and prior fits included) overruns the second mark, which reads the
    # run as it is (it once asked resume() for negative minutes); the third resumes for the minutes left.
    assert 0 < steps[0] <= steps[1] < steps[2]
    assert "every head >= 95%" in done.stdout and "every head >= 99%" in done.stdout
