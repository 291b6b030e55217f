"""pyro-dvae: disentangled dynamic representations from unordered data (Helminger et al. 2018).

Python API::

    from pyro_dvae import preset, train, load_run
    run = train(preset("cpu", "sprites"), "runs/my-run")   # or load_run("runs/my-run")
    f, z = posterior.encode(run.model, run.data("test").sample(4, 8))
"""

__version__ = "0.1.0"

from . import posterior  # noqa: E402
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig, preset  # noqa: E402
from .data import load_frame_sets  # noqa: E402
from .model import DVAE  # noqa: E402
from .priors import register_f_prior, register_z_prior  # noqa: E402
from .runs import Run, load_run  # noqa: E402
from .training import resume, train  # noqa: E402

__all__ = [
    "DVAE", "DataConfig", "ModelConfig", "Run", "RunConfig", "TrainConfig", "load_frame_sets",
    "load_run", "posterior", "preset", "register_f_prior", "register_z_prior", "resume", "train",
]
