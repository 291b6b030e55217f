"""The results scripts end to end at smoke size: the screens of DSA's and DrNet's presets
(benchmarks/results/screen.py), the equal-budget comparison (benchmarks/results/compare.py), the quality
curve (benchmarks/results/quality.py --curve) and the GPU script that drives it."""

from __future__ import annotations

import json
import os
import shlex
import shutil
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
    interrupted = tmp_path / "sprites" / "dvae-seed1"
    interrupted.mkdir(parents=True)
    (interrupted / "checkpoint.pt").write_bytes(b"left by a killed run")
    output = _script("compare.py", "--data", "sprites", "--models", "dvae", "--settings", "authors",
                     "--train-seeds", "2", "--preset", "tiny", "--minutes", "0.02", "--predictor-minutes", "0.01",
                     "--limit", "9", "--seeds", "1", "--samples", "1", "--out", tmp_path)
    rows = [line.split("|") for line in output.splitlines() if line.startswith("| sprites")]
    assert [r[2].strip() for r in rows] == ["dvae (authors)", "dvae (authors)"]  # one row per table
    assert rows[0][3].strip() == "2" and "±" in rows[0][6]  # two training seeds: mean ± spread
    for seed in (0, 1):
        # The tiny preset already makes the authors' choices, so the preset's run serves the authors' row.
        assert not (tmp_path / "sprites" / ("dvae-authors" + (f"-seed{seed}" if seed else ""))).exists()
        folder = tmp_path / "sprites" / ("dvae" + (f"-seed{seed}" if seed else ""))
        config = tomllib.loads((folder / "config.toml").read_text())
        assert config["train"]["seed"] == seed and config["train"]["f_kl_weight"] == 1.0
        assert config["model"]["z_prior"] == "conditional-gaussian" and config["train"]["elbo"] == "trace"


def test_calibrated_step_budgets_give_each_run_its_steps_and_finished_runs_are_read_from_their_records(tmp_path):
    budgets, records, out = tmp_path / "budgets.json", tmp_path / "records", tmp_path / "runs"
    common = ["--data", "sprites", "--models", "dvae", "dsa", "--preset", "tiny", "--budgets", budgets, "--out", out]
    _script("compare.py", *common, "--calibrate", "--calibration-minutes", "0.1", "--budget-minutes", "0.2")
    measured = json.loads(budgets.read_text())
    assert set(measured) == {"sprites-16/dvae-preset", "sprites-16/dsa-preset"}
    for budget in measured.values():
        # steps reached in the calibration, plus its rate times the minutes left
        assert budget["steps"] > budget["calibration_steps"] > 0 and budget["steps_per_s"] > 0
        assert abs(budget["steps"] - budget["calibration_steps"] - budget["steps_per_s"] * 0.1 * 60) <= 1
    # Smaller budgets than calibrated keep the test short; a run takes its setting's budget in steps.
    for budget in measured.values():
        budget["steps"] = 4 if budget is measured["sprites-16/dvae-preset"] else 6
    assert measured["sprites-16/dvae-preset"]["cost"] != measured["sprites-16/dsa-preset"]["cost"]
    budgets.write_text(json.dumps(measured))
    args = [*common, "--record", records, "--train-seeds", "2", "--limit", "9", "--seeds", "1", "--samples", "1",
            "--predictor-steps", "3"]
    output = _script("compare.py", *args)
    for family, steps in (("dvae", 4), ("dsa", 6)):
        for seed in (0, 1):
            result = json.loads((records / "sprites-16" / f"{family}-preset-seed{seed}.json").read_text())
            assert result["steps"] == result["budget"]["steps"] == steps and result["seed"] == seed
            assert result["predictor_steps"] == (3 if family == "dvae" else 0) and result["machine"]
    assert "| sprites 16x16 | dsa | 2 | 0.2 min = 6 steps | 6 |" in output
    # The records are the results: with the run folders gone, nothing is trained and the table is the same.
    shutil.rmtree(out)
    assert _script("compare.py", *args) == output and not out.exists()
    # --table prints what is recorded and names what is not, training nothing.
    table = _script("compare.py", *args[:-10], "--train-seeds", "3", "--table")
    assert "not yet: sprites-16/dvae-preset-seed2, sprites-16/dsa-preset-seed2" in table and not out.exists()
    assert "| sprites 16x16 | dsa | 2 | 0.2 min = 6 steps | 6 |" in table
    # A budget never calibrated is a one-line error naming the fix.
    done = subprocess.run([sys.executable, str(RESULTS / "compare.py"), "--data", "moving-mnist-1", "--models", "dsa",
                           "--preset", "tiny", "--budgets", budgets, "--out", out, "--record", records],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "no step budget for moving-mnist-1-16/dsa-preset" in done.stderr
    assert "--calibrate" in done.stderr and "Traceback" not in done.stderr


def test_settings_that_cost_the_same_per_step_share_one_budget_and_an_unchanged_preset_is_one_run():
    sys.path[:0] = [str(RESULTS.parent), str(RESULTS)]
    try:
        import compare
    finally:
        del sys.path[:2]
    cost = {(data, family, setting): compare.cost_signature(compare.setting_config(setting, data, family, "cpu"))
            for data in ("sprites", "moving-mnist-1") for family in ("dvae", "dsa", "drnet")
            for setting in ("authors", "preset")}
    for data in ("sprites", "moving-mnist-1"):
        # DSA's and DrNet's authors' settings change learning rates and KL weights only; the DVAE's its networks.
        assert cost[data, "dsa", "authors"] == cost[data, "dsa", "preset"]
        assert cost[data, "drnet", "authors"] == cost[data, "drnet", "preset"]
        assert cost[data, "dvae", "authors"] != cost[data, "dvae", "preset"]
    budgets = {"sprites-32/dsa-authors": {"steps": 900, "minutes": 14.5, "cost": "a", "date": "d", "commit": "c"},
               "sprites-32/dsa-preset": {"steps": 1000, "minutes": 14.5, "cost": "a", "date": "d", "commit": "c"},
               "sprites-64/dsa-preset": {"steps": 500, "minutes": 14.5, "cost": "a", "date": "d", "commit": "c"},
               "sprites-32/dvae-preset": {"steps": 2000, "minutes": 14.5, "cost": "b", "date": "d", "commit": "c"}}
    assert compare.pooled_budget(budgets, "sprites-32/dsa-authors")["steps"] == 950  # not the 64x64 one
    assert compare.pooled_budget(budgets, "sprites-32/dvae-preset")["steps"] == 2000
    # One-digit Moving MNIST's DrNet preset kept all its authors' choices: the two rows are one run.
    assert compare.setting_config("authors", "moving-mnist-1", "drnet", "cpu") == \
        compare.setting_config("preset", "moving-mnist-1", "drnet", "cpu")


def test_an_interrupted_step_budget_run_resumes_to_its_budget(tmp_path):
    args = ["--data", "sprites", "--models", "dsa", "--preset", "tiny", "--limit", "9", "--seeds", "1",
            "--samples", "1", "--out", tmp_path]
    _script("compare.py", *args, "--steps", "3")
    folder = tmp_path / "sprites" / "dsa"
    # A finished run of the same setting made by another script (evaluated, no record of ours) is used as it is.
    copied = tmp_path / "copied" / "sprites" / "dsa"
    shutil.copytree(folder, copied)
    for name in ("trained.json", "compare.json"):
        (copied / name).unlink()
    before = (copied / "checkpoint.pt").stat().st_mtime_ns
    _script("compare.py", *args[:-1], tmp_path / "copied", "--steps", "3")
    assert (copied / "checkpoint.pt").stat().st_mtime_ns == before
    assert json.loads((copied / "compare.json").read_text())["steps"] == 3
    for name in ("trained.json", "compare.json", "evaluation.json"):  # as if killed after step 3
        (folder / name).unlink()
    _script("compare.py", *args, "--steps", "6")
    result = json.loads((folder / "compare.json").read_text())
    assert result["steps"] == 6
    logged = [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert 3 in logged and 6 in logged and logged == sorted(logged)  # continued, not started again


def test_at_64x64_every_setting_folds_the_frames_and_the_dvae_preset_takes_its_measured_setting(tmp_path):
    _script("compare.py", "--data", "sprites", "--models", "dvae", "dsa", "--settings", "preset", "authors",
            "--image-size", "64", "--preset", "tiny", "--steps", "2", "--predictor-steps", "2", "--limit", "4",
            "--seeds", "1", "--samples", "1", "--out", tmp_path)
    example = tomllib.loads((RESULTS.parents[1] / "examples" / "sprites-64.toml").read_text())
    for folder in ("dvae", "dvae-authors", "dsa"):  # the tiny DSA preset makes its authors' choices: one run
        config = tomllib.loads((tmp_path / "sprites-64" / folder / "config.toml").read_text())
        assert config["model"]["image_size"] == 64 and config["model"]["space_to_depth"] == 4  # tiny is 16x16
        if folder == "dvae":
            assert config["model"]["decoder"] == example["model"]["decoder"]
            assert config["train"]["weight_average"] == example["train"]["weight_average"]
        elif folder == "dvae-authors":
            assert config["model"]["decoder"] == "concat" and not config["train"]["weight_average"]


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
