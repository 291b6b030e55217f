"""Model families: each method the package holds, registered by name (``--model NAME``).

A family is one small sub-package that declares, in one :class:`Family` record, everything the
rest of the package needs to know about it:

* its config class (the fields every family shares, :class:`pyro_dvae.config.ModelConfig`, plus
  its own) and its presets (``paper``, ``cpu``, ``tiny``);
* which batches it trains on: ``"subsets"`` (N distinct frames of a set, order unused: the DVAE)
  or ``"windows"`` (T consecutive frames in stored order: DSA);
* how it trains (a training plan; :class:`~pyro_dvae.models.plans.SVIPlan` for Pyro families);
* its model class, a :class:`~pyro_dvae.models.base.SequenceModel`, which answers the queries
  that posterior, inspect, sample, evaluate and the ArviZ export ask (encode, decode, sample the
  static code, sample dynamics, the ELBO) or says in one line that it cannot.

The built-in families are found like a third-party one: through the ``pyro_dvae.families`` entry
points that pyproject.toml declares (:mod:`pyro_dvae.registry`). The family is stored in the run's
config (``[model] family``), so later commands need no flag; configs and checkpoints without it
are DVAE runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..registry import FAMILIES

BATCH_KINDS = ("subsets", "windows")


@dataclass(frozen=True)
class Family:
    """What a model family declares.

    Attributes
    ----------
    name : the ``--model`` name.
    description : one line for ``--help`` and listings.
    config_class : a dataclass subclassing :class:`pyro_dvae.config.ModelConfig`.
    model_class : a :class:`~pyro_dvae.models.base.SequenceModel` built as ``model_class(cfg)``.
    plan_class : the training plan, built as ``plan_class(model, train_config)``.
    batches : ``"subsets"`` or ``"windows"`` (see the module docstring).
    presets : ``presets(name, source) -> {"model": {...}, "train": {...}}`` for every name in
        :data:`pyro_dvae.config.PRESETS`.
    """

    name: str
    description: str
    config_class: type
    model_class: type
    plan_class: type
    batches: str
    presets: Callable[[str, str], Mapping[str, Mapping[str, Any]]]

    def __post_init__(self):
        if self.batches not in BATCH_KINDS:
            raise ValueError(f"family {self.name!r}: batches must be one of {BATCH_KINDS}, got {self.batches!r}")

    @property
    def ordered(self) -> bool:
        """Whether the family reads frames in their stored (temporal) order."""
        return self.batches == "windows"

    def preset(self, name: str, source: str) -> dict[str, dict[str, Any]]:
        settings = self.presets(name, source)
        return {section: dict(values) for section, values in settings.items()}

    def build(self, cfg):
        """The family's model for a validated config."""
        return self.model_class(cfg)


def register_family(family: Family) -> Family:
    """Make ``family`` available under ``family.name`` (``--model NAME``, ``[model] family``) in this
    process; an installed package declares it as an entry point instead (:mod:`pyro_dvae.registry`)."""
    return FAMILIES.register(family.name, family)


def get_family(name: str) -> Family:
    """The registered family called ``name``; an unknown name is a one-line user error."""
    return FAMILIES.get(name)


def family_names() -> list[str]:
    return FAMILIES.names()


__all__ = ["BATCH_KINDS", "Family", "family_names", "get_family", "register_family"]
