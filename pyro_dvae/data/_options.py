"""Source-specific options: unknown names become a user error that lists the known ones."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import UserInputError

T = TypeVar("T")

# Passed by the registry itself, not options a user sets.
_COMMON = ("self", "split", "image_size", "device")


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
    return opener(*args, **options)
