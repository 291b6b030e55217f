"""Models trained by the default commands, shipped in the package: results seconds after install.

Every command and :func:`pyro_dvae.load_run` take ``pretrained:NAME`` wherever they take a run
directory. A shipped model is a read-only run directory inside the package (``NAME/``): its
``checkpoint.pt`` holds the configuration, the step and the weights with the fitted priors (no
optimiser state; floating-point tensors in half precision where that changes no reported metric by
more than 0.1 point), beside its ``config.toml``, the ``evaluation.json`` that ``pyro-dvae
evaluate`` wrote for it, a latent predictor where its family needs one, and ``MODEL_CARD.md``:
the command, commit, machine and minutes that trained it, its evaluation and its licence.
``MANIFEST.json`` records the sha256 of every file; a changed file is refused when it is read.

``scripts/make_pretrained.py`` regenerates them all from the default commands; a test fails when
a shipped model's configuration is no longer its family's default preset.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UserInputError

PREFIX = "pretrained:"
MANIFEST = "MANIFEST.json"
CARD = "MODEL_CARD.md"


def is_reference(path: object) -> bool:
    """Whether ``path`` names a shipped model (``pretrained:NAME``) rather than a folder."""
    return str(path).startswith(PREFIX)


def _root() -> Path:
    return Path(str(resources.files(__package__)))


def manifest() -> dict[str, Any]:
    """Name -> {"description", "files": {file: sha256}} of every shipped model."""
    path = _root() / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserInputError(f"the list of shipped models ({path}) is missing or damaged; reinstall pyro-dvae") \
            from None


def names() -> list[str]:
    return sorted(manifest())


def _name(reference: str) -> str:
    name = str(reference).removeprefix(PREFIX)
    known = manifest()
    if name not in known:
        raise UserInputError(f"no shipped model called {name!r}; use one of "
                             f"{', '.join(PREFIX + n for n in sorted(known)) or 'none'} (`pyro-dvae pretrained`)")
    return name


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(reference: str) -> Path:
    """The folder of the shipped model ``pretrained:NAME``, after checking every file's sha256."""
    name = _name(reference)
    folder = _root() / name
    for file, expected in manifest()[name]["files"].items():
        path = folder / file
        if not path.is_file():
            raise UserInputError(f"the shipped model {name} lacks {file}; reinstall pyro-dvae")
        if sha256(path) != expected:
            raise UserInputError(f"the shipped model {name}'s {file} does not match its recorded sha256 (the file "
                                 f"was changed or damaged: {path}); reinstall pyro-dvae")
    return folder


def card(reference: str) -> str:
    """The model card of a shipped model (Markdown)."""
    return (resolve(reference) / CARD).read_text()


def copy(reference: str, destination: str | Path) -> Path:
    """Copy a shipped model into ``destination`` (a new folder), a run directory of your own that
    every command reads and writes, and that `pyro-dvae train --resume` continues."""
    source, destination = resolve(reference), Path(destination)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise UserInputError(f"{destination} exists and is not an empty folder; pass a new folder")
    try:
        shutil.copytree(source, destination, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    except OSError as err:
        raise UserInputError(f"cannot copy to {destination} ({err.strerror}); pass a writable folder") from None
    return destination


def read_only(reference: str, what: str) -> UserInputError:
    """The one-line error for writing into a shipped model: copy it first."""
    name = str(reference).removeprefix(PREFIX)
    return UserInputError(f"{reference} is read-only, so it cannot {what}; copy it first (`pyro-dvae pretrained "
                          f"copy {name} DIR`) and use DIR")


def output_folder(reference: str) -> Path:
    """Where commands write by default for a shipped model (its own folder is read-only)."""
    return Path("runs") / f"pretrained-{_name(reference)}"


__all__ = ["CARD", "MANIFEST", "PREFIX", "card", "copy", "is_reference", "manifest", "names", "output_folder",
           "read_only", "resolve", "sha256"]
