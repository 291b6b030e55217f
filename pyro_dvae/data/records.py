"""The record a data set declares (``pyro_dvae.datasets`` entry points; :mod:`pyro_dvae.registry`).

A data set is one module holding its :class:`~pyro_dvae.data.base.FrameSets` and a
:class:`DataSet` record; a labelled one also names its evaluation protocol (a
:class:`pyro_dvae.evaluation.Protocol`: which judge, which test batches, which terms, which
prediction lengths), by import path, so that this layer never imports the evaluation above it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import UserInputError
from ._options import open_with_options
from .base import FrameSets


def _label_free(options: Mapping[str, Any]) -> str | None:
    return None


@dataclass(frozen=True)
class DataSet:
    """A named data source.

    Attributes
    ----------
    name : the ``--data`` name.
    description : one line for ``pyro-dvae data sources``.
    opener : ``opener(split=, image_size=, device=, **options)`` -> FrameSets; its keyword
        parameters are the source's options (checked by name, type and range before it runs).
    ordered_opener : the view whose sets are sequences in temporal order, for families that read
        order, where it differs from ``opener`` (Sprites: the labelled action sequences).
    ordered_length : frames per set of the ordered view when it is shorter than a family's
        default window (presets clip their windows to it).
    fixed_options : options the name implies (``moving-mnist-1``: ``digits=1``).
    protocol : ``protocol(options)`` -> ``"module:NAME"`` of the evaluation protocol of runs
        trained with these options, or None (label-free metrics only).
    """

    name: str
    description: str
    opener: Callable[..., FrameSets]
    ordered_opener: Callable[..., FrameSets] | None = None
    ordered_length: int | None = None
    fixed_options: Mapping[str, Any] = field(default_factory=dict)
    protocol: Callable[[Mapping[str, Any]], str | None] = _label_free

    def open(self, split: str, image_size: int | None, device: str | torch.device, ordered: bool = False,
             **options: Any) -> FrameSets:
        """The split's frame sets at ``image_size`` on ``device``, after checking ``options``."""
        for key, value in self.fixed_options.items():
            if options.get(key, value) != value:
                raise UserInputError(f"{self.name} has {key}={value}; leave the option out, or use another source")
        opener = self.ordered_opener if ordered and self.ordered_opener is not None else self.opener
        return open_with_options(opener, self.name, split=split, image_size=image_size, device=device,
                                 **{**options, **self.fixed_options})

    def protocol_name(self, options: Mapping[str, Any]) -> str | None:
        return self.protocol({**options, **self.fixed_options})
