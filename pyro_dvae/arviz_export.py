"""Posterior draws of f and z as ArviZ InferenceData: NetCDF export, summary table, forest plot.

The one module that imports ArviZ (so that other commands start without it). Variables are named
after the model's sample sites, with named dims and coords::

    f : ("chain", "draw", "sequence", "f_dim")
    z : ("chain", "draw", "sequence", "frame", "z_dim")

``sequence`` holds the sets' indices in their data split and ``frame`` the frames' indices in
their set. Written for ArviZ 0.17 and later (``from_dict``, ``to_netcdf``, ``summary``,
``plot_forest``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from . import posterior
from .models.base import SITE_F, SITE_Z, SequenceModel

with warnings.catch_warnings():
    # ArviZ >= 0.22 announces its 1.0 refactor at import; it says nothing about this use.
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

F_DIMS = ("sequence", "f_dim")
Z_DIMS = ("sequence", "frame", "z_dim")


def _by_chain(draws: Tensor, chains: int) -> np.ndarray:
    n = draws.shape[0]
    if n % chains:
        raise ValueError(f"{n} draws do not split into {chains} chains of equal length")
    return draws.detach().cpu().numpy().reshape(chains, n // chains, *draws.shape[1:])


def to_inference_data(f: Tensor, z: Tensor, sequence: Sequence[int], frame: Sequence[int],
                      chains: int = 2, attrs: dict | None = None) -> az.InferenceData:
    """Wrap draws f (D, K, f_dim) and z (D, K, T, z_dim) as an InferenceData posterior group.

    Parameters
    ----------
    f, z : independent posterior draws, e.g. from :func:`pyro_dvae.posterior.posterior_draws`.
    sequence : the K sets' indices in their data split (coords of ``sequence``).
    frame : the T frames' indices in their sets (coords of ``frame``).
    chains : the D draws are split into this many chains of D / chains draws. The draws are
        independent, so chains are independent blocks; two or more let ``az.summary`` report r_hat.
    attrs : NetCDF attributes of the posterior group (strings and numbers).
    """
    coords = {"sequence": list(sequence), "frame": list(frame),
              "f_dim": np.arange(f.shape[-1]), "z_dim": np.arange(z.shape[-1])}
    return az.from_dict(posterior={SITE_F: _by_chain(f, chains), SITE_Z: _by_chain(z, chains)},
                        coords=coords, dims={SITE_F: list(F_DIMS), SITE_Z: list(Z_DIMS)}, attrs=attrs)


def posterior_inference_data(model: SequenceModel, x: Tensor, sequence: Sequence[int], draws: int = 100,
                             chains: int = 2, generator: torch.Generator | None = None,
                             attrs: dict | None = None) -> az.InferenceData:
    """Draw ``chains * draws`` times from the guide for sets x (K, T, C, S, S) and wrap the draws.

    See :func:`pyro_dvae.posterior.posterior_draws` for how f and z are drawn; frames are
    numbered 0..T-1 in the order of x.
    """
    f, z = posterior.posterior_draws(model, x, chains * draws, generator)
    return to_inference_data(f, z, sequence, range(x.shape[1]), chains, attrs)


def save_netcdf(idata: az.InferenceData, path: str | Path) -> Path:
    """Write ``idata`` to a NetCDF file (read it back with ``az.from_netcdf``)."""
    path = Path(path)
    idata.to_netcdf(str(path))
    return path


def summary(idata: az.InferenceData, sequence: int | None = None, var_names: Sequence[str] | None = None):
    """``az.summary`` (a pandas DataFrame) of the posterior, optionally of one sequence only."""
    coords = {"sequence": [sequence]} if sequence is not None else None
    return az.summary(idata, var_names=list(var_names) if var_names else None, coords=coords)


def z_forest_figure(idata: az.InferenceData, sequence: int) -> Figure:
    """ArviZ forest plot of q(z_t | f, x_t) for every frame and z dimension of one sequence."""
    n_rows = idata.posterior.sizes["frame"] * idata.posterior.sizes["z_dim"]
    axes = az.plot_forest(idata, var_names=[SITE_Z], coords={"sequence": [sequence]}, combined=True,
                          figsize=(6, 1.0 + 0.25 * n_rows))
    fig = np.ravel(axes)[0].figure
    fig.suptitle(f"sequence {sequence}: q(z | f, x) of each z[frame, z_dim]; median, quartiles (thick), HDI (thin)",
                 fontsize=9)
    return fig
