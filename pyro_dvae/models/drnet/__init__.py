"""DrNet of Denton & Birodkar (2017) (``--model drnet``): content and pose encoders trained with a
reconstruction loss, a content similarity loss and an adversarial scene discriminator on pose.
The field's non-probabilistic baseline: no priors, no ELBO."""

from __future__ import annotations

from .. import Family
from .config import DrNetConfig, drnet_presets
from .model import DrNet
from .plan import DrNetPlan

FAMILY = Family(
    name="drnet",
    description="Denton & Birodkar 2017: content and pose encoders, an adversarial scene discriminator",
    config_class=DrNetConfig,
    model_class=DrNet,
    plan_class=DrNetPlan,
    batches="windows",
    presets=drnet_presets,
)

__all__ = ["DrNet", "DrNetConfig", "DrNetPlan", "FAMILY"]
