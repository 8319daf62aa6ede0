"""Score a model on a split: every metric of the task, accumulated batch by batch."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from growsearch.data import AnySplit, StreamedSplit
from growsearch.exceptions import DataError
from growsearch.tasks._base import MeanLoss, Task, as_float


@torch.no_grad()
def measure(
    model: nn.Module,
    split: AnySplit,
    task: Task,
    *,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """The task's metrics of ``model`` on ``split``, in eval mode, by name (``loss`` included).

    Each metric is updated with every batch and computed once over the whole split. The
    train/eval mode of every submodule is restored afterwards.

    Raises:
        DataError: The split is empty.
    """
    if len(split) == 0:
        raise DataError("evaluate: the split is empty")
    device = torch.device(device) if device is not None else model_device(model)
    metrics = task.metrics()
    if "loss" not in metrics:
        metrics["loss"] = MeanLoss(task.loss)
    metrics = {k: m.to(device) for k, m in metrics.items()}
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        for x, y in batches(split, batch_size, device):
            output = model(x)
            loss_metric = metrics["loss"]
            if isinstance(loss_metric, MeanLoss):
                loss_metric.update(output, y)
            prepared = task.prepare(output, y)
            for metric in metrics.values():
                if not isinstance(metric, MeanLoss):
                    metric.update(*prepared)
    finally:
        for module, training in modes.items():
            module.training = training
    return {name: as_float(metric.compute()) for name, metric in metrics.items()}


def batches(split: AnySplit, batch_size: int, device: torch.device) -> Iterator[tuple[Any, Any]]:
    """Every sample of ``split`` in sample order, as ``(x, y)`` batches on ``device``. A
    streamed split's workers are seeded by a generator of their own, so evaluating never draws
    from the global generator that a training run's randomness (and its exact resume) uses."""
    if isinstance(split, StreamedSplit):
        for x, y in split.loader(batch_size, generator=torch.Generator().manual_seed(0)):
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return
    for start in range(0, len(split), batch_size):
        x, y = split.x[start : start + batch_size], split.y[start : start + batch_size]
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a stateless model)."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")
