"""The registry of controllers: a decorator and a dict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from growsearch.controllers._base import Controller
from growsearch.exceptions import ConfigError

if TYPE_CHECKING:
    from growsearch.space import SearchSpace

C = TypeVar("C", bound=type[Controller])

CONTROLLERS: dict[str, type[Controller]] = {}
"""Controller classes by name. Each may define ``Options``, a pydantic model of its options."""


def register_controller(name: str) -> Callable[[C], C]:
    """Register a controller class under ``name`` (a class decorator)."""

    def decorator(cls: C) -> C:
        cls.name = name
        CONTROLLERS[name] = cls
        return cls

    return decorator


def make_controller(
    name: str,
    space: SearchSpace,
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> Controller:
    """A new controller.

    Args:
        name: A name from :data:`CONTROLLERS`.
        space: The validated search space.
        seed: Seed of the controller's randomness (default: ``space.seed``).
        options: The controller's options (default: ``space.controller.options`` when
            ``space.controller.name == name``, else the controller's defaults).

    The controller checks its own options (its ``Options`` model): search-space loading keeps
    them as written, so a new controller brings its options without touching the loader.

    Raises:
        ConfigError: The name is unknown or an option is invalid, in one line that starts with
            the search-space file it came from (when it came from one).
    """
    where = "" if str(space.path).startswith("<") else f"{space.path}: "
    if name not in CONTROLLERS:
        raise ConfigError(
            f"{where}controller.name: expected one of {sorted(CONTROLLERS)}, got {name!r}"
        )
    try:
        return CONTROLLERS[name](space, seed=seed, options=options)
    except ConfigError as e:
        if where and not str(e).startswith(where) and str(e).startswith("controller"):
            raise ConfigError(f"{where}{e}") from None
        raise
