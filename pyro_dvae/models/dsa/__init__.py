"""The Disentangled Sequential Autoencoder of Li & Mandt (2018) in Pyro (``--model dsa``):
static f, dynamics z_1:T from an LSTM prior, trained on ordered T-frame windows."""

from __future__ import annotations

from .. import Family
from ..plans import SVIPlan
from .config import DSAConfig, dsa_presets
from .model import DSA

FAMILY = Family(
    name="dsa",
    description="Li & Mandt 2018: f from a bidirectional LSTM over T ordered frames, z_t from an LSTM prior",
    config_class=DSAConfig,
    model_class=DSA,
    plan_class=SVIPlan,
    batches="windows",
    presets=dsa_presets,
)

__all__ = ["DSA", "DSAConfig", "FAMILY"]
