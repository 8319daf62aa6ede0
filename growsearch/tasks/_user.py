"""A user's own task, from a factory: ``task: {factory: my_task.py:make}``."""

from __future__ import annotations

from typing import Any

from torchmetrics import Metric

from growsearch.arch import load_factory
from growsearch.exceptions import ConfigError
from growsearch.tasks._base import Task


class UserTask(Task):
    """Wraps the object a user's task factory returns: it needs ``loss(output, target)`` and
    ``metrics() -> dict[str, torchmetrics.Metric]``; ``prepare(output, target)`` and
    ``objective`` (a ``(metric, mode)`` pair) are optional."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner = inner
        self.name = name
        objective = getattr(inner, "objective", None)
        if objective is not None:
            self.objective = (str(objective[0]), str(objective[1]))

    def loss(self, output: Any, target: Any) -> Any:
        return self.inner.loss(output, target)

    def metrics(self) -> dict[str, Metric]:
        out = self.inner.metrics()
        if not isinstance(out, dict) or not all(
            isinstance(k, str) and isinstance(v, Metric) for k, v in out.items()
        ):
            raise ConfigError(
                f"task.factory: {self.name}().metrics() must return a dict of name -> "
                f"torchmetrics.Metric, got {_kind(out)}"
            )
        return out

    def prepare(self, output: Any, target: Any) -> tuple[Any, Any]:
        fn = getattr(self.inner, "prepare", None)
        return fn(output, target) if fn is not None else (output, target)


def load_user_task(factory: str, options: dict[str, Any] | None = None) -> Task:
    """Import ``factory`` (``module:function`` or ``file.py:function``), call it with
    ``options`` as keyword arguments, and check what it returns.

    Raises:
        ConfigError: The factory cannot be imported, raises, or returns an object without
            ``loss`` and ``metrics``, or ``metrics()`` is not a dict of torchmetrics metrics.
    """
    name = factory.rpartition(":")[2]
    try:
        fn = load_factory(factory)
    except Exception as e:
        raise ConfigError(f"task.factory: cannot load {factory!r} ({e})") from None
    try:
        inner = fn(**(options or {}))
    except Exception as e:
        raise ConfigError(f"task.factory: {name}() raised {type(e).__name__}: {e}") from None
    missing = [m for m in ("loss", "metrics") if not callable(getattr(inner, m, None))]
    if missing:
        raise ConfigError(
            f"task.factory: {name}() returned {type(inner).__name__}, which has no "
            f"{' and no '.join(missing)} method (expected loss(output, target) and metrics())"
        )
    if isinstance(inner, Task):
        return inner
    task = UserTask(inner, name)
    try:
        task.metrics()
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
            f"task.factory: {name}().metrics() raised {type(e).__name__}: {e}"
        ) from None
    return task


def _kind(v: Any) -> str:
    if isinstance(v, dict):
        bad = next(
            (f"{k!r}: {type(x).__name__}" for k, x in v.items() if not isinstance(x, Metric)), ""
        )
        return f"a dict with {bad}" if bad else "a dict with a non-string key"
    return type(v).__name__
