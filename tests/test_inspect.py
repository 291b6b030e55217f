"""`pyro-dvae sample` / `inspect` and the posterior queries behind them, on one tiny squares run."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from cli_helpers import invoke
from PIL import Image

from pyro_dvae import posterior
from pyro_dvae.config import preset
from pyro_dvae.models.dvae import DVAE
from pyro_dvae.training import train

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

from pyro_dvae import arviz_export  # noqa: E402

INSPECT_FIGURES = {"latent_manifold", "dynamics_trace", "trajectories", "reconstructions", "swaps",
                   "static_consistency", "interpolation", "interpolation_dynamic", "arviz_z_forest"}
SAMPLE_FIGURES = {"prior_sequences", "prior_shared_dynamics", "prior_swaps"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = preset("tiny", "squares").override("data", options={"num_sets": 32})
    return train(config.override("train", steps=20), tmp_path_factory.mktemp("inspect") / "run", progress=False)


@pytest.fixture(scope="module")
def cli_outputs(run, tmp_path_factory):
    """Runs each (command, seed) once, into its own folder, on demand; returns the folder."""
    root, done = tmp_path_factory.mktemp("outputs"), {}

    def output(command: str, seed: int, copy: int = 0):
        key = (command, seed, copy)
        if key not in done:
            out = root / f"{command}-{seed}-{copy}"
            extra = ["--draws", "10", "--sequences", "3", "--frames", "4"] if command == "inspect" else []
            torch.manual_seed(1000 + len(done))  # as in a fresh process: only --seed may fix the outputs
            result = invoke(command, str(run.path), "--out", str(out), "--seed", str(seed), *extra)
            assert result.exit_code == 0, result.output
            done[key] = out
        return done[key]

    return output



def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255


@pytest.mark.parametrize(("command", "figures"), [("inspect", INSPECT_FIGURES), ("sample", SAMPLE_FIGURES)])
def test_outputs_are_real_images_listed_in_the_index(cli_outputs, command, figures):
    out = cli_outputs(command, 1)
    assert {p.stem for p in out.glob("*.png")} == figures
    index = (out / "index.md").read_text()
    for name in figures:
        image = _pixels(out / f"{name}.png")
        assert min(image.shape[:2]) > 100 and image.std() > 0.05, name  # decoded, and not blank
        assert f"### {name}.png\n\n" in index and f"]({name}.png)" in index


def test_inspect_reports_numbers_and_the_arviz_export(cli_outputs):
    out = cli_outputs("inspect", 1)
    results = json.loads((out / "results.json").read_text())
    assert 0 < results["static_consistency_ratio"] < float("inf")
    assert "| static_consistency_ratio |" in (out / "index.md").read_text()
    assert len(results["sequences"]) == 3
    idata = az.from_netcdf(out / "posterior.nc")
    assert idata.posterior["z"].sizes["sequence"] == 3 and idata.posterior["z"].sizes["frame"] == 4
    assert list(idata.posterior["z"].coords["sequence"].values) == results["sequences"]
    summary = (out / "arviz_summary.csv").read_text()
    assert "r_hat" in summary.splitlines()[0] and "f[" in summary and "z[" in summary


@pytest.mark.parametrize("command", ["inspect", "sample"])
def test_same_seed_same_files_other_seed_other_files(cli_outputs, command):
    first, again, other = cli_outputs(command, 1), cli_outputs(command, 1, copy=1), cli_outputs(command, 2)
    pngs = sorted(p.name for p in first.glob("*.png"))
    assert all((first / name).read_bytes() == (again / name).read_bytes() for name in pngs)
    assert any((first / name).read_bytes() != (other / name).read_bytes() for name in pngs)
    if command == "inspect":
        a, b = az.from_netcdf(first / "posterior.nc"), az.from_netcdf(again / "posterior.nc")
        for var in ("f", "z"):
            np.testing.assert_array_equal(a.posterior[var].values, b.posterior[var].values)
        assert json.loads((first / "results.json").read_text()) == json.loads((again / "results.json").read_text())


def _sets(run, first: int, n_frames: int = 16) -> torch.Tensor:
    data = run.data("test")
    return data.frames(torch.arange(first, first + 4)[:, None], torch.arange(n_frames))


def test_swap_law(run):
    """Swapping B's f into A and A's f back gives A's reconstruction; swaps really swap."""
    model, xa, xb = run.model, _sets(run, 0), _sets(run, 4)

    def seeded():  # T = 16 > N = 3: f averages random subsets, so every call gets the same ones
        return torch.Generator().manual_seed(0)

    a, b = posterior.encode(model, xa, seeded()), posterior.encode(model, xb, seeded())
    swapped = a.with_static(b.f)
    restored = swapped.with_static(a.f)
    torch.testing.assert_close(posterior.decode(model, *restored), posterior.reconstruct(model, xa, seeded()),
                               rtol=0, atol=0)
    assert not torch.allclose(posterior.decode(model, *swapped), posterior.decode(model, *a))
    # The image-level swap is the same operation.
    g = seeded()
    f_b = posterior.encode(model, xb, g).f
    expected = posterior.decode(model, *posterior.encode(model, xa, g).with_static(f_b))
    torch.testing.assert_close(posterior.swap(model, xb, xa, seeded()), expected, rtol=0, atol=0)
    # In the swap grid, the diagonal (own f, own z) is the reconstruction.
    grid = posterior.swap_grid(model, a.f, a.z[:, 0])
    torch.testing.assert_close(grid.diagonal(0, 0, 1).movedim(-1, 0), posterior.decode(model, *a)[:, 0])


def test_interpolation_ends_at_both_identities(run):
    model = run.model
    codes = posterior.encode(model, _sets(run, 0), torch.Generator().manual_seed(0))
    frames = posterior.interpolate_static(model, codes.f[0], codes.f[1], codes.z[0, :3], steps=5)
    assert frames.shape == (5, 3, 3, 16, 16)
    torch.testing.assert_close(frames[0], posterior.decode(model, codes.f[:1], codes.z[:1, :3])[0])
    torch.testing.assert_close(frames[-1], posterior.decode(model, codes.f[1:2], codes.z[:1, :3])[0])


def test_inference_data_dims_coords_and_netcdf_round_trip(run, tmp_path):
    x = _sets(run, 0, n_frames=5)[:3]
    torch.manual_seed(3)
    idata = arviz_export.posterior_inference_data(run.model, x, [7, 9, 11], draws=6, chains=2,
                                                  generator=torch.Generator().manual_seed(3))
    f, z = idata.posterior["f"], idata.posterior["z"]
    assert f.dims == ("chain", "draw", "sequence", "f_dim") and f.shape == (2, 6, 3, 8)
    assert z.dims == ("chain", "draw", "sequence", "frame", "z_dim") and z.shape == (2, 6, 3, 5, 2)
    assert list(z.coords["sequence"].values) == [7, 9, 11] and list(z.coords["frame"].values) == [0, 1, 2, 3, 4]
    assert list(f.coords["f_dim"].values) == list(range(8)) and list(z.coords["z_dim"].values) == [0, 1]
    assert float(z.std()) > 0 and float(f.std()) > 0  # draws, not copies of the mean
    path = arviz_export.save_netcdf(idata, tmp_path / "posterior.nc")
    back = az.from_netcdf(path)
    for var in ("f", "z"):
        assert back.posterior[var].dims == idata.posterior[var].dims
        np.testing.assert_array_equal(back.posterior[var].values, idata.posterior[var].values)
        for dim in idata.posterior[var].dims[2:]:
            np.testing.assert_array_equal(back.posterior[var].coords[dim].values,
                                          idata.posterior[var].coords[dim].values)


def test_manifold_for_z_above_two_dims_follows_two_principal_directions():
    config = preset("tiny", "squares").override("model", z_dim=4).model
    model = DVAE(config).eval()
    # Posterior codes that vary mostly along two known orthogonal directions.
    basis = torch.linalg.qr(torch.randn(4, 4))[0].T
    z = torch.randn(200, 2) * torch.tensor([10.0, 1.0]) @ basis[:2] + 0.01 * torch.randn(200, 4)
    directions = posterior.principal_directions(z)
    assert directions.shape == (2, 4)
    torch.testing.assert_close(directions @ directions.T, torch.eye(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(directions.T @ directions, basis[:2].T @ basis[:2], atol=1e-3, rtol=0)  # same plane
    assert abs(float(directions[0] @ basis[0])) > 0.99  # the first is the direction of largest spread

    f = torch.randn(2, config.f_dim)
    grid = posterior.prior_grid(model, f[0], steps=5, directions=directions).reshape(5, 5, 4)
    moves = grid - grid[2, 2]
    assert torch.linalg.matrix_rank(moves.reshape(-1, 4), atol=1e-4) == 2  # a plane, not more
    outside = moves.reshape(-1, 4) - moves.reshape(-1, 4) @ directions.T @ directions
    assert outside.abs().max() < 1e-4
    down, across = grid[1:, :] - grid[:-1, :], grid[:, 1:] - grid[:, :-1]
    torch.testing.assert_close(down @ directions[1], torch.zeros(4, 5), atol=1e-4, rtol=0)
    torch.testing.assert_close(across @ directions[0], torch.zeros(5, 4), atol=1e-4, rtol=0)
    assert (down @ directions[0]).min() > 0 and (across @ directions[1]).min() > 0
    panels = posterior.latent_manifold(model, f, steps=5, directions=directions)
    assert panels.shape == (2, 5, 5, 3, 16, 16)


def test_figures_show_z_on_its_axes_up_to_two_dims_and_on_its_principal_directions_beyond():
    z = torch.randn(50, 4) * torch.tensor([1.0, 5.0, 0.1, 2.0])
    directions, names = posterior.figure_directions(z)
    torch.testing.assert_close(directions, posterior.principal_directions(z))
    assert names == ("PC1 of z", "PC2 of z") and abs(float(directions[0, 1])) > 0.9  # the widest axis first
    assert posterior.figure_directions(z[:, :2]) == (None, ("z1", "z2"))
    assert posterior.figure_directions(z[:, :1]) == (None, ("z1",))


def test_two_dim_grid_spans_the_z_axes(run):
    f = posterior.encode(run.model, _sets(run, 0), torch.Generator().manual_seed(0)).f[0]
    grid = posterior.prior_grid(run.model, f, steps=4).reshape(4, 4, 2)
    assert torch.equal(grid[:, 0, 0], grid[:, 3, 0]) and torch.equal(grid[0, :, 1], grid[3, :, 1])
    assert (grid[1:, :, 0] > grid[:-1, :, 0]).all() and (grid[:, 1:, 1] > grid[:, :-1, 1]).all()


@pytest.mark.parametrize("command", ["inspect", "sample"])
def test_bad_run_or_out_is_a_one_line_error(run, tmp_path, command):
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for args, message in [([str(tmp_path / "missing")], "does not exist"),
                          ([str(not_a_run)], "is not a run directory"),
                          ([str(a_file)], "not a safe pyro-dvae checkpoint"),
                          ([str(run.path), "--out", str(a_file)], "is a file")]:
        result = invoke(command, *args)
        assert result.exit_code == 1, result.output
        assert len(result.output.strip().splitlines()) == 1 and message in result.output, result.output
