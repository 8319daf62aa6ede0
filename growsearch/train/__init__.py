"""Training: a plain loop over in-memory tensors, with per-epoch validation and callbacks."""

from growsearch.train._loop import (
    EpochCallback,
    EpochResult,
    TrainConfig,
    evaluate,
    lr_at,
    make_optimizer,
    pick_device,
    set_seed,
    train,
)

__all__ = [
    "EpochCallback",
    "EpochResult",
    "TrainConfig",
    "evaluate",
    "lr_at",
    "make_optimizer",
    "pick_device",
    "set_seed",
    "train",
]
