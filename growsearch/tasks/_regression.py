"""Regression: a numeric target of any width, MSE/L1/Huber loss, MSE, MAE and R² over a split."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric, R2Score

from growsearch.exceptions import DataError
from growsearch.tasks._base import Task

LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mse": F.mse_loss,
    "l1": F.l1_loss,
    "huber": F.huber_loss,
}
"""The regression losses a search space can name (``task: {name: regression, loss: ...}``)."""


class Regression(Task):
    """Numbers ``(N,)`` or ``(N, k)`` predicted by a model with ``k`` outputs.

    The model learns the target as the data holds it (a table's target is standardised with the
    training split's statistics); the metrics are reported in the target's own units, through
    ``target_mean`` and ``target_std``.

    Args:
        width: ``k`` (1 for a target of shape ``(N,)``).
        loss: ``mse``, ``l1`` or ``huber``.
        target_mean: Per-column mean to add back for the metrics (None: the target as it is).
        target_std: Per-column scale to multiply back.
    """

    name = "regression"
    objective = ("val_mse", "min")

    def __init__(
        self,
        width: int = 1,
        loss: str = "mse",
        target_mean: Sequence[float] | None = None,
        target_std: Sequence[float] | None = None,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss: must be one of {list(LOSSES)}, got {loss!r}")
        self.width = int(width)
        self.loss_name = loss
        self._mean = None if target_mean is None else torch.tensor(target_mean, dtype=torch.float32)
        self._std = None if target_std is None else torch.tensor(target_std, dtype=torch.float32)

    def _shaped(self, output: Any, target: torch.Tensor) -> torch.Tensor:
        output = output.float()
        if output.shape == target.shape:
            return output
        if output.numel() == target.numel() and len(output) == len(target):
            return output.reshape(target.shape)  # (N, 1) for (N,) targets
        raise DataError(
            f"regression: the model outputs {tuple(output.shape[1:])} per sample, the target "
            f"is {tuple(target.shape[1:])}"
        )

    def loss(self, output: Any, target: Any) -> torch.Tensor:
        return LOSSES[self.loss_name](self._shaped(output, target), target.float())

    def metrics(self) -> dict[str, Metric]:
        return {
            "mse": MeanSquaredError(num_outputs=self.width),
            "mae": MeanAbsoluteError(num_outputs=self.width),
            "r2": R2Score(multioutput="uniform_average"),
        }

    def prepare(self, output: Any, target: Any) -> tuple[Any, Any]:
        out, y = self._shaped(output, target), target.float()
        if self._mean is not None and self._std is not None:
            mean, std = self._mean.to(y.device), self._std.to(y.device)
            out, y = out * std + mean, y * std + mean
        return out.reshape(len(y), -1).squeeze(1), y.reshape(len(y), -1).squeeze(1)

    def modes(self) -> dict[str, str]:
        return {"loss": "min", "mse": "min", "mae": "min", "r2": "max"}
