"""Search a PyTorch Lightning ``LightningModule`` with the user's own ``Trainer``.

A ``training.function`` written with Lightning wraps the trial's grown model in the user's
``LightningModule`` and trains it with a ``Trainer`` that carries :class:`GrowsearchCallback`:

>>> def fit(model, data, ctx):                                       # doctest: +SKIP
...     module = MyModule(model, lr=ctx.lr)
...     trainer = growsearch.integrations.lightning.trainer(ctx, model)
...     trainer.fit(module, train_loader, val_loader)

The callback restores the trial from growsearch's checkpoint (weights, optimizer, scheduler,
epoch), applies the warm-start recipe's step scale and learning-rate warm-up, and reports each
epoch's ``trainer.callback_metrics`` (after validation) through ``ctx.report``, which checkpoints
on the run's storage; a scheduler's stop (ASHA) or the trial's last epoch stops the trainer.

Needs the ``lightning`` extra: ``pip install 'growsearch[lightning]'``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

try:
    import lightning.pytorch as pl
except ImportError as e:  # the optional extra
    raise ImportError(
        "growsearch.integrations.lightning needs PyTorch Lightning: "
        "pip install 'growsearch[lightning]'"
    ) from e


class GrowsearchCallback(pl.Callback):
    """Connects a Lightning ``Trainer`` to a growsearch trial.

    Args:
        ctx: The trial's context (the ``ctx`` of ``fit(model, data, ctx)``).
        model: The trial's model as ``fit`` received it (the ``LightningModule`` wraps it):
            what is checkpointed and restored, by growsearch's parameter names.
        warmup: Step the recipe's learning-rate warm-up (``ctx.warmup``) after every optimizer
            step. Turn it off when the module's own scheduler already warms up.
    """

    def __init__(self, ctx: Any, model: nn.Module, *, warmup: bool = True) -> None:
        self.ctx = ctx
        self.model = model
        self.use_warmup = warmup
        self._scaling: Any = None
        self._warmup: Any = None

    def _optimizer(self, trainer: pl.Trainer) -> torch.optim.Optimizer | None:
        return trainer.optimizers[0] if trainer.optimizers else None

    def _scheduler(self, trainer: pl.Trainer) -> Any:
        configs = trainer.lr_scheduler_configs
        return configs[0].scheduler if configs else None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer = self._optimizer(trainer)
        if optimizer is not None and self.use_warmup:
            self._warmup = self.ctx.warmup(optimizer)
        start = self.ctx.restore(self.model, optimizer, self._scheduler(trainer))
        if self._warmup is not None and "warmup" in self.ctx.state:
            self._warmup.load_state_dict(self.ctx.state["warmup"])
        if start:  # continue the epoch count where the last report left it
            trainer.fit_loop.epoch_progress.increment_by(start)
        if optimizer is not None:
            self._scaling = self.ctx.scale_steps(optimizer)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if self._warmup is not None:
            self._warmup.step()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if isinstance(v, int | float) or (isinstance(v, torch.Tensor) and v.numel() == 1)
        }
        state = {"warmup": self._warmup.state_dict()} if self._warmup is not None else None
        stop = self.ctx.report(
            metrics,
            model=self.model,
            optimizer=self._optimizer(trainer),
            scheduler=self._scheduler(trainer),
            state=state,
        )
        if stop:
            trainer.should_stop = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._scaling is not None:
            self._scaling.remove()
            self._scaling = None


def trainer(ctx: Any, model: nn.Module, *, warmup: bool = True, **kwargs: Any) -> pl.Trainer:
    """A ``Trainer`` for one trial: ``max_epochs`` the trial's epochs, the trial's device,
    :class:`GrowsearchCallback` attached, and nothing written outside the run folder (no logger,
    no Lightning checkpoints, no progress bar). ``kwargs`` go to ``Trainer`` (and win)."""
    device = torch.device(ctx.device)
    settings: dict[str, Any] = {
        "max_epochs": ctx.epochs,
        "accelerator": "gpu" if device.type == "cuda" else "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    settings.update(kwargs)
    callbacks = list(settings.pop("callbacks", []) or [])
    callbacks.append(GrowsearchCallback(ctx, model, warmup=warmup))
    return pl.Trainer(callbacks=callbacks, **settings)


__all__ = ["GrowsearchCallback", "trainer"]
