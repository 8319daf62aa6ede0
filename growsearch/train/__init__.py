"""Training: a plain loop over in-memory tensors (or streamed batches), with per-epoch
validation, augmentation of training batches and callbacks."""

from growsearch.train._augment import Augment
from growsearch.train._loop import (
    AMP_MODES,
    EpochCallback,
    EpochResult,
    TrainConfig,
    TrainState,
    evaluate,
    lr_at,
    make_optimizer,
    pick_device,
    precision_name,
    precision_plan,
    set_seed,
    train,
)

__all__ = [
    "AMP_MODES",
    "Augment",
    "EpochCallback",
    "EpochResult",
    "TrainConfig",
    "TrainState",
    "evaluate",
    "lr_at",
    "make_optimizer",
    "pick_device",
    "precision_name",
    "precision_plan",
    "set_seed",
    "train",
]
