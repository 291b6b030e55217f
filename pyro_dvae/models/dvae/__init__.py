"""The DVAE of Helminger, Djelouah, Gross & Weber (2018): static f, z_t i.i.d. given f, and a
pairwise order-free guide. The package's default family (``--model dvae``)."""

from __future__ import annotations

from .. import Family
from ..plans import SVIPlan
from .config import DVAEConfig, dvae_presets
from .model import DVAE

FAMILY = Family(
    name="dvae",
    description="Helminger et al. 2018: f from pairwise comparisons of N unordered frames, z_t i.i.d. given f",
    config_class=DVAEConfig,
    model_class=DVAE,
    plan_class=SVIPlan,
    batches="subsets",
    presets=dvae_presets,
)

__all__ = ["DVAE", "DVAEConfig", "FAMILY"]
