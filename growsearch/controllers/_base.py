"""The controller interface: ask/tell, no Ray inside.

Call order, driven by the Ray Tune searcher (or by a test, directly):

1. ``Controller(space, seed)`` — ``space`` is the validated :class:`~growsearch.space.SearchSpace`.
2. ``propose(trial_id)`` whenever a worker is free. It returns a :class:`Proposal` (the child
   architecture, the finished trial it grows from, and the ops), or ``None`` when the controller
   must wait for running trials to finish before it can propose more (e.g. before the seed
   architecture has been trained). The very first proposal is the seed architecture.
   ``reject(trial_id, reason)`` right after it when the runner cannot issue that proposal (its
   child cannot be built); the runner then calls ``propose`` again with the same trial id.
3. ``observe(result)`` once per trial when it ends (completed, failed or stopped), in completion
   order, which differs from proposal order when trials run concurrently.
4. ``state_dict()`` / ``load_state_dict()`` at any time between calls (resume); the state is
   JSON-serialisable.
5. ``is_exhausted()`` after a ``propose`` that returned None: True when no proposal will ever
   come again (every architecture within the limits has been reached and nothing is running),
   so the runner ends the search instead of waiting.

Warm start is not the controller's business: the same proposals are trained either from the
parent's weights (morphed) or from scratch.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from growsearch.arch import ArchSpec, Op, op_from_dict

if TYPE_CHECKING:
    from growsearch.space import SearchSpace


@dataclass(frozen=True)
class Proposal:
    """A trial to run: ``arch`` grown from finished trial ``parent_id`` by ``ops``."""

    trial_id: str
    arch: ArchSpec
    parent_id: str | None = None
    ops: tuple[Op, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "arch": self.arch.to_dict(),
            "parent_id": self.parent_id,
            "ops": [op.to_dict() for op in self.ops],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Proposal:
        return cls(
            trial_id=d["trial_id"],
            arch=ArchSpec.from_dict(d["arch"]),
            parent_id=d.get("parent_id"),
            ops=tuple(op_from_dict(o) for o in d.get("ops", [])),
        )


@dataclass(frozen=True)
class TrialResult:
    """What a controller learns when a trial ends.

    ``status`` is ``completed``, ``failed`` or ``stopped`` (early-stopped by a scheduler; its
    metrics are real but from fewer epochs). ``value`` is the trial's value of the search's
    objective (``space.objective.metric``: validation accuracy, a loss, a user's metric...),
    None for a failed trial; whether higher is better is ``space.objective.mode``.
    """

    proposal: Proposal
    status: str
    value: float | None
    params: int = 0
    flops: int = 0
    epochs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def trial_id(self) -> str:
        return self.proposal.trial_id

    @property
    def arch(self) -> ArchSpec:
        return self.proposal.arch

    @property
    def ok(self) -> bool:
        return self.status in ("completed", "stopped") and self.value is not None

    @property
    def score(self) -> float:
        """``value`` as a float, for a trial that is :attr:`ok` (ValueError for one that is not:
        a failed trial has no value to rank by)."""
        if self.value is None:
            raise ValueError(f"trial {self.trial_id!r} ended without a value ({self.status})")
        return float(self.value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "proposal": self.proposal.to_dict(),
            "status": self.status,
            "value": self.value,
            "params": self.params,
            "flops": self.flops,
            "epochs": self.epochs,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialResult:
        return cls(
            proposal=Proposal.from_dict(d["proposal"]),
            status=d["status"],
            value=d.get("value", d.get("val_acc")),  # "val_acc": a state saved by an older version
            params=int(d.get("params", 0)),
            flops=int(d.get("flops", 0)),
            epochs=int(d.get("epochs", 0)),
            extra=dict(d.get("extra", {})),
        )


class Controller(abc.ABC):
    """Base class of search controllers (see the module docstring for the call order)."""

    name: str = ""

    def __init__(  # noqa: B027 (subclasses keep what they need)
        self,
        space: SearchSpace | None = None,
        seed: int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """The registry builds every controller as ``cls(space, seed=..., options=...)``: the
        search space, the search's seed (None: the space's) and the controller's options."""

    @abc.abstractmethod
    def propose(self, trial_id: str) -> Proposal | None:
        """The next trial to run, or None to wait for running trials."""

    @abc.abstractmethod
    def observe(self, result: TrialResult) -> None:
        """Learn from a trial that ended."""

    def reject(self, trial_id: str, reason: str) -> None:  # noqa: B027 (a no-op hook)
        """Forget the proposal just made for ``trial_id``: the runner could not issue it
        (``reason``: why its child cannot be built), and asks again with the same trial id.
        Default: nothing."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state for resume. Default: nothing beyond construction."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (a no-op hook)
        """Restore :meth:`state_dict`'s output."""

    def is_exhausted(self) -> bool:
        """True when :meth:`propose` will never return a proposal again. Default: never."""
        return False
