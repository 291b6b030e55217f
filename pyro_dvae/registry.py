"""One registry per axis the package varies along: model families, priors, labelled data sets.

A registry maps names to records. A name is found first among those registered at run time
(:meth:`Registry.register`, which ``register_family``, ``register_z_prior`` and
``register_f_prior`` call), then among the entry points of the registry's group that installed
packages declare. pyro-dvae declares its own built-ins there too, in its ``pyproject.toml``,
exactly as a third-party package declares its own (as ``llm`` finds its plugins)::

    [project.entry-points."pyro_dvae.families"]
    my-family = "my_package:FAMILY"          # a pyro_dvae.models.Family

    [project.entry-points."pyro_dvae.z_priors"]
    my-prior = "my_package.priors:MyPrior"   # a factory cfg -> nn.Module

    [project.entry-points."pyro_dvae.datasets"]
    my-data = "my_package:DATASET"           # a pyro_dvae.data.DataSet

An entry point is loaded the first time its name is asked for, so a broken plugin stops only the
runs that use it (with a one-line error naming the package), and a name registered at run time
is never replaced by an entry point. This module sits at the bottom of the package: it names the
record types by import path and imports nothing of the package but its errors.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib import metadata
from typing import Any

from .errors import UserInputError


class Registry:
    """Names -> records of one kind, from run-time registrations and entry points.

    Parameters
    ----------
    group : the entry-point group, e.g. ``"pyro_dvae.families"``.
    what : what a record is, for messages ("model family").
    record_type : ``"module:Class"`` that every record must be an instance of (checked when it
        is registered or loaded), or None for any object (a factory, say).
    hint : how a user registers one, appended to the unknown-name error.
    """

    def __init__(self, group: str, what: str, record_type: str | None = None, hint: str = ""):
        self.group, self.what, self.hint = group, what, hint
        self._record_type = record_type
        self._records: dict[str, Any] = {}
        self._broken: dict[str, str] = {}

    def register(self, name: str, record: Any) -> Any:
        """Make ``record`` available under ``name`` (replacing a run-time registration of it)."""
        self._check(name, record)
        self._records[name] = record
        return record

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a run-time registration, or a loaded or broken entry point; an entry point
        is found again the next time it is asked for)."""
        self._records.pop(name, None)
        self._broken.pop(name, None)

    def decorator(self, name: str) -> Callable[[Any], Any]:
        """``@registry.decorator(name)`` registers what it decorates and returns it unchanged."""
        return lambda record: self.register(name, record)

    def get(self, name: str) -> Any:
        """The record called ``name``; an unknown or broken one is a one-line user error."""
        if name not in self._records:
            self._load(name)
        if name in self._records:
            return self._records[name]
        if name in self._broken:
            raise UserInputError(self._broken[name])
        known = ", ".join(self.names()) or "none (is pyro-dvae installed? pip install -e .)"
        raise UserInputError(f"unknown {self.what} {name!r}; use one of {known}{self.hint}")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def names(self) -> list[str]:
        """Every name that can be asked for (entry points are listed without being loaded)."""
        return sorted(set(self._records) | {entry.name for entry in self._entry_points()})

    def items(self) -> list[tuple[str, Any]]:
        """(name, record) for every name, loading every entry point; broken ones are left out."""
        found = []
        for name in self.names():
            if name not in self._records:
                self._load(name)
            if name in self._records:
                found.append((name, self._records[name]))
        return found

    def _entry_points(self) -> list[metadata.EntryPoint]:
        return list(metadata.entry_points(group=self.group))

    def _load(self, name: str) -> None:
        for entry in self._entry_points():
            if entry.name != name or name in self._records:
                continue
            try:
                record = entry.load()
                self._check(name, record)
            except Exception as err:  # a broken plugin must not stop runs that do not use it
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                reason = f"{type(err).__name__}: {first}" if first else type(err).__name__
                self._broken[name] = (f"the {self.what} {name!r} ({entry.value}, entry-point group {self.group}) "
                                      f"failed to load ({reason}); fix or uninstall the package that declares it")
                continue
            self._records[name] = record
            return

    def _check(self, name: str, record: Any) -> None:
        if self._record_type is None:
            if not callable(record):
                raise TypeError(f"{self.what} {name!r} must be callable, got {type(record).__name__}")
            return
        module, _, cls = self._record_type.partition(":")
        expected = getattr(importlib.import_module(module), cls)
        if not isinstance(record, expected):
            raise TypeError(f"{type(record).__name__} is not a {self._record_type.replace(':', '.')}")


def resolve(reference: str) -> Any:
    """The object a ``"module:NAME"`` reference names (as an entry point's value does)."""
    module, _, name = reference.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise UserInputError(f"cannot load {reference} ({type(err).__name__}: {err}); fix or uninstall the "
                             "package that declares it") from None


FAMILIES = Registry("pyro_dvae.families", "model family", "pyro_dvae.models:Family",
                    " (or one that an installed package declares; see pyro_dvae.registry)")
Z_PRIORS = Registry("pyro_dvae.z_priors", "z prior", None,
                    " (register yours with pyro_dvae.priors.register_z_prior before loading, or declare it in "
                    "your package's entry points, group pyro_dvae.z_priors)")
F_PRIORS = Registry("pyro_dvae.f_priors", "f prior", None,
                    " (register yours with pyro_dvae.priors.register_f_prior before loading, or declare it in "
                    "your package's entry points, group pyro_dvae.f_priors)")
DATASETS = Registry("pyro_dvae.datasets", "data source", "pyro_dvae.data.records:DataSet",
                    ", or a path to your data; see `pyro-dvae data sources`")

__all__ = ["DATASETS", "FAMILIES", "F_PRIORS", "Registry", "Z_PRIORS", "resolve"]
