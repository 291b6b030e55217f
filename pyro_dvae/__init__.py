"""pyro-dvae: disentangled dynamic representations from unordered data (Helminger et al. 2018).

The package holds several model families behind one interface (:mod:`pyro_dvae.models`): the
order-free DVAE of the paper (the default) and, for comparison on equal terms, DSA (Li & Mandt
2018).

Python API::

    from pyro_dvae import preset, train, load_run
    run = train(preset("cpu", "sprites"), "runs/my-run")   # or load_run("runs/my-run")
    f, z = posterior.encode(run.model, run.data("test").sample(4, 8))
    dsa = train(preset("cpu", "sprites", family="dsa"), "runs/my-dsa")
"""

__version__ = "0.3.0"

from . import posterior  # noqa: E402
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig, preset  # noqa: E402
from .data import load_frame_sets  # noqa: E402
from .models import Family, family_names, get_family, register_family  # noqa: E402
from .models.base import CapabilityError, SequenceModel  # noqa: E402
from .models.dsa import DSA, DSAConfig  # noqa: E402
from .models.dvae import DVAE, DVAEConfig  # noqa: E402
from .priors import register_f_prior, register_z_prior  # noqa: E402
from .runs import Run, load_run  # noqa: E402
from .training import resume, train  # noqa: E402

__all__ = [
    "DSA", "DSAConfig", "DVAE", "DVAEConfig", "CapabilityError", "DataConfig", "Family", "ModelConfig", "Run",
    "RunConfig", "SequenceModel", "TrainConfig", "family_names", "get_family", "load_frame_sets", "load_run",
    "posterior", "preset", "register_f_prior", "register_z_prior", "register_family", "resume", "train",
]
