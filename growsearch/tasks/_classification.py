"""Classification: cross-entropy on class scores, accuracy over a split."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from growsearch.tasks._base import MeanLoss, Task


class _Accuracy(MulticlassAccuracy):
    """torchmetrics' micro-averaged multiclass accuracy, its ratio taken in float64, so an
    accuracy is exactly (correct samples) / (samples) as a Python float."""

    def compute(self) -> torch.Tensor:
        tp, fn = self.tp, self.fn  # summed over batches (micro average: not lists)
        assert isinstance(tp, torch.Tensor) and isinstance(fn, torch.Tensor)
        return tp.sum().double() / (tp + fn).sum().double()


class Classification(Task):
    """Class scores ``(N, C)`` against integer labels ``(N,)``.

    Args:
        num_classes: ``C``.
        label_smoothing: Label smoothing of the training loss (the reported ``loss`` of a split
            is the plain cross-entropy).
    """

    name = "classification"
    objective = ("val_acc", "max")

    def __init__(self, num_classes: int, label_smoothing: float = 0.0) -> None:
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def loss(self, output: Any, target: Any) -> torch.Tensor:
        return F.cross_entropy(output.float(), target, label_smoothing=self.label_smoothing)

    def metrics(self) -> dict[str, Metric]:
        return {
            "acc": _Accuracy(self.num_classes, average="micro", validate_args=False),
            "loss": MeanLoss(lambda o, t: F.cross_entropy(o.float(), t)),
        }

    def prepare(self, output: Any, target: Any) -> tuple[Any, Any]:
        return output.float(), target
