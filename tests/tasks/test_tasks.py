"""Tasks score a split as a whole: metrics accumulated batch by batch equal the metric computed
on every sample at once (not a mean of per-batch values), in the target's own units."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassJaccardIndex

from growsearch.data import Split
from growsearch.exceptions import ConfigError
from growsearch.tasks import Classification, Regression, UserTask, load_user_task, measure


class Fixed(nn.Module):
    """Returns a stored output for each input index (x holds the indices)."""

    def __init__(self, outputs: torch.Tensor):
        super().__init__()
        self.outputs = nn.Parameter(outputs, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs[x[:, 0].long()]


def _split(y: torch.Tensor) -> Split:
    return Split(torch.arange(len(y), dtype=torch.float32)[:, None], y)


def test_classification_accuracy_and_loss_over_the_split() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(103, 4, generator=g), torch.randint(0, 4, (103,), generator=g)
    m = measure(Fixed(logits), _split(y), Classification(4), batch_size=10)
    assert m["acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item(), abs=1e-7)
    assert m["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)


def test_iou_is_computed_once_over_the_split_not_averaged_per_batch() -> None:
    """A mask metric accumulated over 7 batches equals torchmetrics on all 50 masks at once,
    and differs from the mean of the 7 per-batch values (which is what a batch-mean gets)."""
    g = torch.Generator().manual_seed(1)
    masks = torch.randint(0, 3, (50, 6, 6), generator=g)
    scores = torch.randn(50, 3, 6, 6, generator=g) + 2.0 * F.one_hot(masks, 3).permute(0, 3, 1, 2)
    scores[:10] = torch.randn(10, 3, 6, 6, generator=g)  # a bad first batch: batches differ

    class Seg:
        def loss(self, output, target):
            return F.cross_entropy(output, target)

        def metrics(self):
            return {"iou": MulticlassJaccardIndex(3)}

        def prepare(self, output, target):
            return output.argmax(1), target

    task = UserTask(Seg(), "seg")
    m = measure(Fixed(scores), _split(masks), task, batch_size=8)
    whole = MulticlassJaccardIndex(3)(scores.argmax(1), masks).item()
    per_batch = np.mean(
        [MulticlassJaccardIndex(3)(scores[i : i + 8].argmax(1), masks[i : i + 8]).item()
         for i in range(0, 50, 8)]
    )  # fmt: skip
    assert m["iou"] == pytest.approx(whole, abs=1e-6)
    assert abs(whole - per_batch) > 1e-3
    assert m["loss"] == pytest.approx(F.cross_entropy(scores, masks).item(), rel=1e-5)


def test_regression_metrics_are_in_the_targets_units() -> None:
    """The model predicts standardised targets; MSE, MAE and R² come back in the raw units."""
    g = torch.Generator().manual_seed(2)
    raw = 150 + 60 * torch.randn(80, generator=g)
    mean, std = raw.mean().item(), raw.std(unbiased=False).item()
    y = (raw - mean) / std
    pred = y + 0.3 * torch.randn(80, generator=g)
    task = Regression(1, "mse", target_mean=[mean], target_std=[std])
    m = measure(Fixed(pred[:, None]), _split(y), task, batch_size=16)  # outputs (N, 1)
    raw_pred = pred * std + mean
    assert m["mse"] == pytest.approx(((raw_pred - raw) ** 2).mean().item(), rel=1e-4)
    assert m["mae"] == pytest.approx((raw_pred - raw).abs().mean().item(), rel=1e-4)
    r2 = 1 - ((raw_pred - raw) ** 2).sum() / ((raw - raw.mean()) ** 2).sum()
    assert m["r2"] == pytest.approx(r2.item(), abs=1e-4)
    assert m["loss"] == pytest.approx(F.mse_loss(pred, y).item(), rel=1e-5)  # standardised


def test_regression_of_several_targets_averages_the_columns() -> None:
    g = torch.Generator().manual_seed(3)
    y, pred = torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g)
    m = measure(Fixed(pred), _split(y), Regression(3, "l1"), batch_size=7)
    assert m["mse"] == pytest.approx(((pred - y) ** 2).mean().item(), rel=1e-5)
    assert m["loss"] == pytest.approx(F.l1_loss(pred, y).item(), rel=1e-5)


def test_a_target_that_does_not_fit_the_output_is_named() -> None:
    with pytest.raises(Exception, match=r"outputs \(2,\) per sample, the target is \(3,\)"):
        Regression(3).loss(torch.zeros(4, 2), torch.zeros(4, 3))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def make():\n    return object()\n", "has no loss and no metrics method"),
        ("def make():\n    raise RuntimeError('boom')\n", "make() raised RuntimeError: boom"),
        (
            "class T:\n    def loss(self, o, t):\n        return o.sum()\n"
            "    def metrics(self):\n        return {'f1': 0.5}\n\ndef make():\n    return T()\n",
            "metrics() must return a dict of name -> torchmetrics.Metric",
        ),
        ("x = 1\n", "has no function 'make'"),
    ],
)
def test_a_bad_task_factory_is_one_line(tmp_path, source: str, message: str) -> None:
    path = tmp_path / "task.py"
    path.write_text(source)
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        load_user_task(f"{path}:make")
    assert "\n" not in str(e.value)
