"""What a trial's training loop is given: :class:`TrialContext` (``ctx``).

growsearch's own loop and a user's ``fit(model, data, ctx)`` both train through it, so there is
one checkpoint format and one resume path whoever owns the loop. The search owns what only it
can do (the parent, the morph, the warm-start recipe, checkpoints on the run's storage, resume,
the objective); the loop owns the optimiser, the batches, the loss and the schedule.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from growsearch.checkpoint import Checkpoint
from growsearch.exceptions import ReportError
from growsearch.tasks import Task, measure
from growsearch.train import StepScaling, scale_steps


class TrialContext:
    """The trial a loop trains: its settings, and the calls that restore, scale and report.

    Attributes:
        trial_id: growsearch's id of the trial (``t0003``).
        device: Where to train (the GPU Ray gave the trial, else the CPU).
        epochs: Epochs the trial trains in all (a child's ``training.epochs``, the seed's
            ``training.seed_epochs``); a resumed trial counts the epochs already done.
        lr: The peak learning rate: the space's ``training.lr``, times the recipe's
            ``lr_factor`` for a warm-started child.
        hparams: The space's ``training`` section as a dict (``batch_size``, ``optimizer``,
            ``weight_decay``...; the user's own settings under ``options``).
        task: The search's task (its ``loss`` and ``metrics``), for a loop that uses them.
        objective: The metric the search optimises; every report must carry it.
        seed: A seed for the trial's randomness (differs between trials).
        warmup_steps: Steps of the recipe's learning-rate warm-up (0: none).
        cycle_steps: Where the recipe's first cosine cycle ends, in steps (0: one cycle); what
            growsearch's own loop schedules, for a loop that wants the same.
        total_steps: Optimizer steps of the whole trial at ``hparams["batch_size"]``.
        state: The user ``state`` dict of the last report, after :meth:`restore` (else ``{}``).
    """

    def __init__(
        self,
        *,
        trial_id: str,
        device: torch.device,
        epochs: int,
        lr: float,
        hparams: Mapping[str, Any],
        task: Task,
        objective: str,
        seed: int,
        warmup_steps: int,
        total_steps: int,
        cycle_steps: int = 0,
        step_scale: Mapping[str, torch.Tensor] | None,
        checkpoint: Checkpoint | None,
        save: Callable[[dict[str, Any], nn.Module, dict[str, Any], dict[str, Any]], None],
        data: Any = None,
        model: nn.Module | None = None,
    ) -> None:
        self.trial_id = trial_id
        self.device = device
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.hparams = dict(hparams)
        self.task = task
        self.objective = objective
        self.seed = int(seed)
        self.warmup_steps = int(warmup_steps)
        self.cycle_steps = int(cycle_steps)
        self.total_steps = int(total_steps)
        self.state: dict[str, Any] = {}
        self._step_scale = step_scale
        self._checkpoint = checkpoint
        self._save = save
        self._data = data
        self._model = model if model is not None else nn.Module()  # the grown model, by name
        self.epoch = self.start_epoch  # epochs reported so far, this run's included
        self.reported: list[dict[str, float]] = []
        self.stopped = False

    # ---- before training ---------------------------------------------------------------------
    @property
    def start_epoch(self) -> int:
        """Epochs done before this run of the loop (0 for a new trial)."""
        return int(self._checkpoint.meta.get("epoch", 0)) if self._checkpoint is not None else 0

    @property
    def checkpoint_meta(self) -> dict[str, Any]:
        """The last report's checkpoint metadata (``{}`` for a new trial)."""
        return dict(self._checkpoint.meta) if self._checkpoint is not None else {}

    def restore(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
    ) -> int:
        """Put the model, optimizer, scheduler and :attr:`state` back where the trial's last
        report left them, and return the epoch to continue from: 0 for a new trial; after a
        crash, a dead worker or a ``growsearch resume``, the number of epochs reported."""
        ck = self._checkpoint
        if ck is None:
            return 0
        model.load_state_dict(ck.state_dict, strict=True)
        if optimizer is not None and ck.optimizer_state:
            optimizer.load_state_dict(ck.optimizer_state)
        if scheduler is not None and ck.meta.get("scheduler") is not None:
            scheduler.load_state_dict(ck.meta["scheduler"])
        self.state = dict(ck.meta.get("user_state") or {})
        return self.start_epoch

    def scale_steps(self, optimizer: torch.optim.Optimizer) -> StepScaling:
        """The recipe's per-entry step scale on ``optimizer`` (the entries a morph added step
        further than the inherited ones), as a context manager; nothing for a seed or a
        from-scratch child. Use it around the loop: ``with ctx.scale_steps(opt): ...``."""
        return scale_steps(optimizer, self._model, self._step_scale)

    def warmup(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """The recipe's learning-rate warm-up as a scheduler to ``step()`` after every optimizer
        step: the rate climbs linearly to the optimizer's own over :attr:`warmup_steps` steps
        (constant at once when there is no warm-up)."""
        n = max(0, self.warmup_steps)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 1.0 if n == 0 else min(1.0, (step + 1) / n)
        )

    # ---- during training ---------------------------------------------------------------------
    def evaluate(self, model: nn.Module, split: str = "val") -> dict[str, float]:
        """The task's metrics of ``model`` on the search's ``val`` (or ``test``) split, named
        ``<split>_<metric>`` as a report takes them (``val_loss``, ``val_acc``...)."""
        if split not in ("val", "test"):
            raise ValueError(f"ctx.evaluate: split must be 'val' or 'test', got {split!r}")
        data = getattr(self._data, split)
        out = measure(model, data, self.task, device=self.device)
        return {f"{split}_{k}": v for k, v in out.items()}

    def report(
        self,
        metrics: Mapping[str, Any],
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        state: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record one epoch: its metrics (numbers by name; the objective's metric among them),
        and a checkpoint of ``model``, ``optimizer``, ``scheduler`` and ``state`` (a JSON-able
        dict) on the run's storage, from which :meth:`restore` continues.

        Returns:
            True when the loop should stop: the trial's :attr:`epochs` are done, or a
            scheduler (ASHA) stopped the trial.

        Raises:
            ReportError: A metric is NaN, infinite or not a number, or the objective's
                metric is missing (the trial fails with this line).
        """
        if self.stopped:
            raise SystemExit(0)  # Ray ended this trial: the loop went on after being told
        values = _numbers(metrics)
        if self.objective not in values:
            raise ReportError(
                f"the training loop reported {sorted(values) or 'no metric'} but not the "
                f"objective's metric {self.objective!r}"
            )
        extra = {
            "scheduler": _json(scheduler.state_dict(), "the scheduler's state_dict()")
            if scheduler is not None
            else None,
            "user_state": _json(dict(state), "state") if state is not None else None,
        }
        self.epoch += 1
        self.reported.append(values)
        opt_state = optimizer.state_dict() if optimizer is not None else None
        try:
            self._save(values, model, {"optimizer": opt_state}, extra)
        except SystemExit:  # Ray's report of a trial that a scheduler has stopped
            self.stopped = True
            return True
        return self.epoch >= self.epochs


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics as floats; one line for a value that is not a finite number."""
    if not isinstance(metrics, Mapping):
        raise ReportError(f"report: metrics must be a dict, got {type(metrics).__name__}")
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ReportError(f"reported {k} = {v!r}, expected a number")
        if not math.isfinite(float(v)):
            raise ReportError(f"reported {k} = {float(v)}, expected a finite number")
        out[str(k)] = float(v)
    return out


def _json(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise ReportError(f"report: {what} holds values JSON cannot store ({e})") from None
