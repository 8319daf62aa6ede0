"""Field checks for the search-space models: each says what it expected and what it got.

Each helper returns a pydantic validator for ``Annotated``, with the field's type beside it:
``population: Annotated[int, integer(lo=1)] = 8`` (so type checkers read the field's type).

The messages become the tail of a :class:`~growsearch.exceptions.ConfigError` line
(``<file>: <key.path>: expected <what>, got <found>``), so every validator here raises
:func:`invalid` rather than pydantic's own errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

ERROR_TYPE = "growsearch"


class Section(BaseModel):
    """Base of every section of a search-space file: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def show(value: Any) -> str:
    """A value as the user wrote it in YAML (``null``, ``true``, ``'text'``, ``[1, 2]``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        text = "[" + ", ".join(show(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    else:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def invalid(expected: str, value: Any) -> PydanticCustomError:
    """The error for a value that is not what ``expected`` describes."""
    # The message goes through the context: braces in a value must not be taken as a template.
    return PydanticCustomError(
        ERROR_TYPE, "{msg}", {"msg": f"expected {expected}, got {show(value)}"}
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def to_number(v: Any) -> float | None:
    """``v`` as a float if it is a number (YAML 1.1 reads ``3e-3`` as a string: accept it)."""
    if _is_number(v):
        return float(v)
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def integer(lo: int | None = None, hi: int | None = None) -> BeforeValidator:
    """An int in ``[lo, hi]`` (bools and floats with a fraction are rejected)."""
    what = "an integer" + _range_text(lo, hi, ">=")

    def check(v: Any) -> int:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            raise invalid(what, v)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise invalid(what, v)
        return v

    return BeforeValidator(check)


def number(
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> BeforeValidator:
    """A float within the given bounds (ints are accepted, bools are not)."""
    parts = []
    if gt is not None:
        parts.append(f"> {gt:g}")
    if ge is not None:
        parts.append(f">= {ge:g}")
    if lt is not None:
        parts.append(f"< {lt:g}")
    if le is not None:
        parts.append(f"<= {le:g}")
    what = "a number" + (" " + " and ".join(parts) if parts else "")
    if ge is not None and lt is not None:
        what = f"a number in [{ge:g}, {lt:g})"
    if ge is not None and le is not None:
        what = f"a number in [{ge:g}, {le:g}]"

    def check(v: Any) -> float:
        f = to_number(v)
        if f is None or not math.isfinite(f):
            raise invalid(what, v)
        if (gt is not None and not f > gt) or (ge is not None and not f >= ge):
            raise invalid(what, v)
        if (lt is not None and not f < lt) or (le is not None and not f <= le):
            raise invalid(what, v)
        return f

    return BeforeValidator(check)


def boolean() -> BeforeValidator:
    """``true`` or ``false`` (not 0/1, not ``'yes'``)."""

    def check(v: Any) -> bool:
        if not isinstance(v, bool):
            raise invalid("true or false", v)
        return v

    return BeforeValidator(check)


def one_of(choices: Sequence[str] | Callable[[], Sequence[str]], note: str = "") -> BeforeValidator:
    """One of ``choices`` (a sequence, or a function returning one, for late registries)."""

    def check(v: Any) -> str:
        valid = list(choices() if callable(choices) else choices)
        if not isinstance(v, str) or v not in valid:
            raise invalid(f"one of {valid}{note}", v)
        return v

    return BeforeValidator(check)


def text(
    what: str = "a non-empty string", pattern: Callable[[str], bool] | None = None
) -> BeforeValidator:
    """A non-empty string, optionally checked by ``pattern``."""

    def check(v: Any) -> str:
        if not isinstance(v, str) or not v.strip() or (pattern is not None and not pattern(v)):
            raise invalid(what, v)
        return v

    return BeforeValidator(check)


def names_or_all() -> BeforeValidator:
    """``all`` or a non-empty list of layer names."""
    what = "'all' or a non-empty list of layer names"

    def check(v: Any) -> str | tuple[str, ...]:
        if v == "all":
            return "all"
        if (
            isinstance(v, list | tuple)
            and v
            and all(isinstance(x, str) and x for x in v)
            and len(set(v)) == len(v)
        ):
            return tuple(v)
        raise invalid(what, v)

    return BeforeValidator(check)


def non_empty_list() -> BeforeValidator:
    """A non-empty list (as a tuple); its items are checked by the annotation's item type, e.g.
    ``Annotated[tuple[Annotated[int, integer(lo=1)], ...], non_empty_list()]``."""

    def check(v: Any) -> Any:
        if not isinstance(v, list | tuple) or not v:
            raise invalid("a non-empty list", v)
        return tuple(v)

    return BeforeValidator(check)


def _range_text(lo: int | None, hi: int | None, op: str) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo}, {hi}]"
    if lo is not None:
        return " > 0" if lo == 1 else f" {op} {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""
