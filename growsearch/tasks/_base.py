"""What a task is: a loss, metrics accumulated over a split, and the metrics' directions.

A task is whatever the search trains for: classification, regression, a user's segmentation or
multi-label problem. growsearch's own loop, the evaluation of every split and the objective
all go through this one interface, so classification is one task among others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torchmetrics import Metric

MODES = ("min", "max")


class Task:
    """Base class of tasks; subclasses say how to score a model's output against a target.

    Call order: :meth:`loss` on every training batch (gradients flow through it);
    :meth:`metrics` once per evaluated split, for fresh metric objects whose ``update`` is called
    with :meth:`prepare`'s ``(output, target)`` of every batch and whose ``compute`` is called
    once at the end (so IoU, F1 or AUROC are computed over the split, not averaged per batch).
    Every split also reports ``loss`` (the mean of :meth:`loss` over its samples) unless
    :meth:`metrics` defines a ``loss`` of its own.

    Attributes:
        name: Shown in messages and recorded with a run.
        objective: The default objective ``(metric, mode)``, e.g. ``("val_acc", "max")``.
    """

    name: str = "task"
    objective: tuple[str, str] = ("val_loss", "min")

    def loss(self, output: Any, target: Any) -> torch.Tensor:
        """The training loss of one batch, a scalar tensor (the mean over its samples)."""
        raise NotImplementedError

    def metrics(self) -> dict[str, Metric]:
        """Fresh metric objects by name; reported as ``val_<name>`` and ``test_<name>``."""
        return {}

    def prepare(self, output: Any, target: Any) -> tuple[Any, Any]:
        """``(output, target)`` as the metrics take them (e.g. in the target's own units)."""
        return output, target

    def modes(self) -> dict[str, str]:
        """``min``/``max`` of each metric that says whether higher is better (torchmetrics'
        ``higher_is_better``), ``loss`` included."""
        out = {"loss": "min"}
        for name, metric in self.metrics().items():
            better = getattr(metric, "higher_is_better", None)
            if better is not None:
                out[name] = "max" if better else "min"
        return out


class MeanLoss(Metric):
    """The sample-weighted mean of a loss function over a split (``fn(output, target)`` is the
    mean over a batch of ``len(target)`` samples)."""

    higher_is_better = False
    full_state_update = False
    total: torch.Tensor
    count: torch.Tensor

    def __init__(self, fn: Callable[[Any, Any], torch.Tensor], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fn = fn
        self.add_state(
            "total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, output: Any, target: Any) -> None:
        n = len(target)
        self.total += self.fn(output, target).detach().double() * n
        self.count += n

    def compute(self) -> torch.Tensor:
        return self.total / self.count


def as_float(value: Any) -> float:
    """A metric's computed value as a Python float; a tensor of several values (one per output
    column or class) is reported as their mean."""
    if isinstance(value, torch.Tensor):  # several numbers (one per output, class...): their mean
        return float(value.double().mean().item())
    return float(value)


def finite(metrics: Mapping[str, float]) -> bool:
    """True when every value is a finite number."""
    return all(math.isfinite(v) for v in metrics.values())
