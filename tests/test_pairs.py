"""Two-digit Moving MNIST: the digit-pair judge, the protocol with and without labels, the public file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import invoke, one_line_error
from hypothesis import given
from hypothesis import strategies as st
from test_evaluation import _documented_keys, _report_keys

from pyro_dvae.data.moving_mnist import MovingMNIST, box_centres, render
from pyro_dvae.evaluation import pairs
from pyro_dvae.evaluation.judges import PAIRS, default_settings, get_judge, matched_distances, pair_index, round_trip
from pyro_dvae.evaluation.protocol import Batch

N_TEST = 48  # sequences of the two-digit test split read below (x 20 frames)




@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    # Judges must never be written to the user's real cache by the tests.
    monkeypatch.setenv("PYRO_DVAE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def judge():
    """The shipped digit-pair judge (no training: a fresh install evaluates at once)."""
    return get_judge(default_settings("digit-pairs"), progress=False)


@pytest.fixture(scope="module")
def test_data():
    return MovingMNIST("test", digits=2, num_sequences=N_TEST)


# -- pairs and matchings -----------------------------------------------------------------------


def test_pairs_are_unordered_and_cover_every_multiset():
    assert len(PAIRS) == 55 == len(set(PAIRS))
    digits = torch.cartesian_prod(torch.arange(10), torch.arange(10))
    assert torch.equal(pair_index(digits), pair_index(digits.flip(-1)))  # {a, b} = {b, a}
    assert len(set(pair_index(digits).tolist())) == 55  # repeated digits are pairs of their own
    assert all(PAIRS[int(pair_index(torch.tensor([a, b])))] == (min(a, b), max(a, b)) for a, b in digits.tolist())


@given(st.lists(st.floats(-100, 100), min_size=8, max_size=8))
def test_matched_distances_do_not_depend_on_the_order_of_either_pair(values):
    centres, reference = torch.tensor(values, dtype=torch.float64).reshape(2, 2, 2)
    d = matched_distances(centres, reference)
    for a, b in ((centres.flip(0), reference), (centres, reference.flip(0)), (centres.flip(0), reference.flip(0))):
        assert torch.allclose(matched_distances(a, b).sum(), d.sum())
    assert d.sum() <= (centres - reference).norm(dim=-1).sum() + 1e-9  # never worse than the given order
    assert torch.equal(matched_distances(reference, reference), torch.zeros(2, dtype=torch.float64))


# -- the judge ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 32])
def test_the_shipped_judge_reads_the_generators_pairs_and_centres(judge, test_data, size):
    """Checked against the generator's labels on real held-out frames (digit images never seen in
    training), at 64 px and through the 32 px round trip of the default run."""
    x = round_trip(test_data.frames(torch.arange(N_TEST)[:, None], torch.arange(20)), size)
    probs, centres = judge.digit_pairs(x)
    pair_accuracy = (probs.argmax(-1) == pair_index(test_data.labels)[:, None]).float().mean()
    distance = matched_distances(centres, box_centres(test_data.positions))
    assert pair_accuracy > 0.88  # chance: 1 in 55; 93% on the whole split
    assert distance.median() < 1.0 and (distance <= 2).all(-1).float().mean() > 0.9
    # The report shipped with it holds the whole test split's numbers the docs quote.
    assert judge.report["test_accuracy"][str(size)]["pair"] > 0.92


# -- the protocol, on a model that draws exactly what its codes say -----------------------------


class Oracle:
    """A "model" whose f is a sequence's two digit images and z a frame's two corners: it draws
    the true frames, so every metric measures the judge and the protocol's wiring alone.
    ``ignore`` makes it deaf to one code (a model that failed to disentangle)."""

    def __init__(self, data: MovingMNIST, ignore: str | None = None):
        self.data, self.ignore = data, ignore

    def can(self, query: str) -> bool:
        return False  # no priors: "resampled" codes come from other sequences, as for DrNet

    def decode(self, f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        b, t = z.shape[:2]
        corners = z.reshape(b, t, 2, 2).long()
        if self.ignore == "z":
            corners = corners[:, :1].expand(-1, t, -1, -1)  # the digits never move
        images = f.long()[:, None].expand(-1, t, -1)
        if self.ignore == "f":
            images = images[0].expand(b, -1, -1)  # every sequence shows the first one's digits
        frames = render(self.data._images, images.reshape(b * t, 2), corners.reshape(b * t, 2, 2))
        return frames.reshape(b, t, 1, 64, 64)


def _oracle_terms(judge, data, labelled: bool, ignore: str | None = None) -> dict[str, float]:
    sets, frames = torch.arange(N_TEST), torch.arange(0, 20, 3)
    x = data.frames(sets[:, None], frames)
    labels = pairs._labels(data, sets, frames) if labelled else {}
    codes = data.digit_indices.float(), data.positions[sets[:, None], frames].reshape(N_TEST, len(frames), 4).float()
    sums, _ = pairs._terms(Oracle(data, ignore), judge, Batch(x, labels), codes, torch.Generator().manual_seed(0))
    return {name: total / count for name, (total, count) in sums.items()}


def test_a_perfect_model_scores_the_judges_accuracy_with_labels_and_without(judge, test_data):
    labelled = _oracle_terms(judge, test_data, labelled=True)
    label_free = _oracle_terms(judge, test_data, labelled=False)
    # What the judge reads of real frames (about 90% of pairs, under a pixel) is what a perfect model scores.
    assert labelled["swap.pair"] > 0.8 and labelled["static_kept.pair"] > 0.8
    assert labelled["dynamics_kept.pair_constant"] > 0.8
    assert labelled["swap.position_error_px"] < 1.5 and labelled["swap.within_2px"] > 0.8
    assert labelled["reconstruction.real_position_error_px"] < 1.5
    assert "reconstruction.real_position_error_px" not in label_free  # no truth to measure the judge by
    for key in ("swap.pair", "static_kept.pair", "dynamics_kept.pair_constant", "reconstruction.reconstructed_pair"):
        assert abs(labelled[key] - label_free[key]) < 0.05, key  # the label-free report agrees
    # Without labels both positions compared are the judge's readings, so their errors add up.
    assert abs(labelled["swap.position_error_px"] - label_free["swap.position_error_px"]) < 0.5
    assert abs(labelled["swap.within_2px"] - label_free["swap.within_2px"]) < 0.1


@pytest.mark.parametrize("labelled", [True, False])
def test_a_model_deaf_to_one_code_fails_the_matching_metric(judge, test_data, labelled):
    no_z = _oracle_terms(judge, test_data, labelled, ignore="z")
    assert no_z["swap.position_error_px"] > 5 and no_z["swap.within_2px"] < 0.3
    assert no_z["swap.pair"] > 0.9  # the identity still follows f
    no_f = _oracle_terms(judge, test_data, labelled, ignore="f")
    assert no_f["swap.pair"] < 0.2 and no_f["static_kept.pair"] < 0.2


# -- every family, through the CLI --------------------------------------------------------------


@pytest.mark.parametrize("family", ["dvae", "dsa", "drnet"])
def test_every_family_evaluates_on_two_digits(tmp_path, family):
    run = tmp_path / "run"
    result = invoke("train", "--data", "moving-mnist", "--model", family, "--preset", "tiny", "--steps", "2",
                    "--data-option", "num_sequences=24", "--out", run, "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("evaluate", run, "--limit", "8", "--seeds", "1", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((run / "evaluation.json").read_text())
    assert report["protocol"] == "moving-mnist" and report["references"].startswith("labels")
    keys = _report_keys(report)
    assert {"swap.pair", "swap.position_error_px", "static_kept.pair", "dynamics_kept.pair_constant"} <= keys
    assert keys <= _documented_keys()
    assert "compared with labels" in result.output
    if family == "dsa":  # its own dynamics prior predicts; each predicted frame's pair is judged
        result = invoke("predict", run, "--limit", "4", "--samples", "1", "--out", tmp_path / "pred")
        assert result.exit_code == 0, result.output
        per_step = json.loads((tmp_path / "pred" / "prediction.json").read_text())["metrics"]["pair_per_step"]
        assert len(per_step) == 10 and all(0 <= v <= 1 for v in per_step)


# -- the public file's layout --------------------------------------------------------------------


def test_a_file_in_the_public_layout_is_read_like_the_public_file_and_evaluated_label_free(tmp_path):
    result = invoke("data", "export", "moving-mnist", "--out", tmp_path, "--sequences", "30")
    assert result.exit_code == 0, result.output
    array = np.load(tmp_path / "mnist_test_seq.npy")
    assert array.shape == (20, 30, 64, 64) and array.dtype == np.uint8
    generated = MovingMNIST("test", digits=2, num_sequences=30)
    np.testing.assert_array_equal(array[:, 5], (generated.sequence(5)[:, 0] * 255).round().numpy())

    run = tmp_path / "run"
    result = invoke("train", "--data", tmp_path / "mnist_test_seq.npy", "--preset", "tiny", "--steps", "2",
                    "--out", run, "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("evaluate", run, "--seeds", "1", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((run / "evaluation.json").read_text())
    assert report["protocol"] == "moving-mnist (label-free)" and report["references"].startswith("label-free")
    assert {"swap.pair", "swap.position_error_px"} <= {f"{s}.{m}" for s, ms in report["metrics"].items() for m in ms}
    assert "compared with label-free" in result.output


def test_the_paper_setting_script_trains_on_the_public_layout_evaluates_label_free_and_draws_fig3_and_4b(tmp_path):
    """benchmarks/results/mnist_paper.sh end to end at smoke size (its defaults: 10,000 sequences, 60 minutes)."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "mnist_paper.sh"
    env = {**os.environ, "OUT": str(tmp_path), "MINUTES": "0.1", "SEQUENCES": "40", "LIMIT": "4",
           "EVAL_SEEDS": "1", "PRESET": "tiny", "DEVICE": "cpu",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert np.load(tmp_path / "data" / "mnist_test_seq.npy").shape == (20, 40, 64, 64)
    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert config["model"]["image_size"] == 64 and config["data"]["source"].endswith("mnist_test_seq.npy")
    report = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert report["protocol"] == "moving-mnist (label-free)"
    for figure in ("latent_manifold.png", "dynamics_trace.png"):  # the paper's Fig. 3 and Fig. 4b
        assert (tmp_path / "inspect" / figure).stat().st_size > 10_000


@pytest.mark.parametrize("bad,what", [
    (np.zeros((20, 3, 64, 64), np.float32), "dtype float32"),
    (np.zeros((19, 3, 64, 64), np.uint8), "(19, 3, 64, 64)"),
    (np.zeros((20, 3, 64, 48), np.uint8), "(20, 3, 64, 48)"),
])
def test_a_public_layout_file_with_a_wrong_shape_dtype_or_frame_count_is_a_one_line_error(tmp_path, bad, what):
    np.save(tmp_path / "mnist_test_seq.npy", bad)
    result = invoke("train", "--data", tmp_path / "mnist_test_seq.npy", "--preset", "tiny", "--steps", "1",
                    "--out", tmp_path / "run")
    one_line_error(result, what, "(20, n, 64, 64) uint8")
    assert not (tmp_path / "run").exists()


def test_the_protocol_option_judges_other_grey_data_label_free_and_refuses_what_it_cannot(tmp_path):
    frames = MovingMNIST("test", digits=2, num_sequences=30, sequence_length=10).frames(
        torch.arange(30)[:, None], torch.arange(10))
    np.save(tmp_path / "mine.npy", (frames[:, :, 0] * 255).round().to(torch.uint8).numpy())
    run = tmp_path / "run"
    assert invoke("train", "--data", tmp_path / "mine.npy", "--preset", "tiny", "--steps", "2", "--out", run,
                  "--quiet").exit_code == 0
    for extra, protocol in (([], "generic"), (["--protocol", "moving-mnist"], "moving-mnist (label-free)")):
        result = invoke("evaluate", run, "--seeds", "1", "--quiet", "--out", tmp_path / "report.json", *extra)
        assert result.exit_code == 0, result.output
        assert json.loads((tmp_path / "report.json").read_text())["protocol"] == protocol
    one_line_error(invoke("evaluate", run, "--protocol", "sprites"), "needs its own labelled test set", "sprites")
    one_line_error(invoke("evaluate", run, "--protocol", "nonsense"), "unknown protocol", "moving-mnist")
