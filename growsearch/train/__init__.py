"""Training: a plain loop over in-memory tensors (or streamed batches), with per-epoch
validation, augmentation of training batches and callbacks."""

from growsearch.train._augment import Augment
from growsearch.train._loop import (
    AMP_MODES,
    EpochCallback,
    EpochResult,
    StepScaling,
    TrainConfig,
    TrainState,
    evaluate,
    lr_at,
    make_optimizer,
    pick_device,
    precision_name,
    precision_plan,
    scale_steps,
    set_seed,
    train,
)

__all__ = [
    "AMP_MODES",
    "Augment",
    "EpochCallback",
    "EpochResult",
    "StepScaling",
    "TrainConfig",
    "TrainState",
    "evaluate",
    "lr_at",
    "make_optimizer",
    "pick_device",
    "precision_name",
    "precision_plan",
    "scale_steps",
    "set_seed",
    "train",
]
