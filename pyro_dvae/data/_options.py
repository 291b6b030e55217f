"""Source-specific options, checked before a source opens: unknown names, wrong types (from the
opener's annotations) and out-of-range values become a user error that names the fix."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..config import MAX_SEED, _is, _type_name
from ..errors import UserInputError

T = TypeVar("T")

# Passed by the registry itself, not options a user sets.
_COMMON = ("self", "split", "image_size", "device", "progress")

# Ranges of the integer options, by name (a name means the same thing in every source); the upper
# bounds keep a typo from asking for terabytes of frames.
_RANGES = {
    "num_sets": (1, 10**6), "frames_per_set": (1, 10**4), "num_sequences": (1, 10**6), "train_sequences": (1, 10**6),
    "sequence_length": (1, 10**4), "limit_identities": (1, 10**6), "min_frames": (1, 10**6),
    "seed": (0, MAX_SEED // 2), "size": (8, 1024),
}


def known_options(opener: Callable[..., Any]) -> list[str] | None:
    """Option names ``opener`` accepts (None when it accepts any)."""
    params = inspect.signature(opener).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [
        p.name
        for p in params
        if p.name not in _COMMON and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]


def open_with_options(opener: Callable[..., T], source: str, *args: Any, **options: Any) -> T:
    """``opener(*args, **options)`` after checking the option names against its signature."""
    known = known_options(opener)
    unknown = sorted(set(options) - set(known) - set(_COMMON)) if known is not None else []
    if unknown:
        raise UserInputError(
            f"unknown option(s) {', '.join(unknown)} for data source {source!r}; "
            f"known options: {', '.join(known) or 'none'}"
        )
    hints = typing.get_type_hints(opener.__init__ if inspect.isclass(opener) else opener)
    for name, value in options.items():
        kind = hints.get(name)
        if kind is not None and not (_is(value, kind) or (_accepts_path(kind) and isinstance(value, str))):
            raise UserInputError(f"data option {name}={value!r} for {source!r} must be {_type_name(kind)}")
        low, high = _RANGES.get(name, (None, None))
        if low is not None and isinstance(value, int) and not low <= value <= high:
            raise UserInputError(f"data option {name}={value} for {source!r} is out of range; use {low}..{high}")
    return opener(*args, **options)


def _accepts_path(kind: Any) -> bool:
    return kind is Path or Path in typing.get_args(kind)
