"""Priors and model families from installed packages, through entry points (as llm's plugins).

A package registers a p(z|f) prior, a p(f) prior or a whole model family by declaring an entry
point in one of the groups below; ``pyro-dvae train --z-prior NAME`` (``--f-prior``, ``--model``)
then works without a wrapper script. In the package's ``pyproject.toml``::

    [project.entry-points."pyro_dvae.z_priors"]
    my-prior = "my_package.priors:MyPrior"      # a factory cfg -> nn.Module, as register_z_prior takes

    [project.entry-points."pyro_dvae.families"]
    my-family = "my_package:FAMILY"             # a pyro_dvae.models.Family

Entry points are read once, the first time a name is looked up; a name that is already
registered (a built-in one, say) is never replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

from .errors import UserInputError

Z_PRIORS, F_PRIORS, FAMILIES = "pyro_dvae.z_priors", "pyro_dvae.f_priors", "pyro_dvae.families"
_loaded: set[str] = set()
_broken: dict[tuple[str, str], str] = {}  # (group, name) -> why it did not load


def load_plugins(group: str, register: Callable[[str, object], None], known: Callable[[], object]) -> None:
    """Register every entry point of ``group`` whose name ``known()`` does not hold yet (once).

    A plugin that fails to load is remembered, not raised: one broken package must not stop runs
    that do not use it (:func:`broken_plugin` tells the runs that ask for it).
    """
    if group in _loaded:
        return
    _loaded.add(group)
    for entry in metadata.entry_points(group=group):
        if entry.name in known():
            continue
        try:
            register(entry.name, entry.load())
        except Exception as err:
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0]}" if str(err).strip() else \
                type(err).__name__
            _broken[group, entry.name] = (f"the plugin {entry.name!r} ({entry.value}, group {group}) failed to load "
                                          f"({reason}); fix or uninstall the package that declares it")


def broken_plugin(group: str, name: str) -> UserInputError | None:
    """The error to raise when a run asks for a plugin that failed to load (None if it did not)."""
    message = _broken.get((group, name))
    return UserInputError(message) if message else None
