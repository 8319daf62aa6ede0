"""The initialisation schemes a morph can use, and their defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from growsearch.exceptions import MorphError

INITS = ("net2net", "net2net-noise", "zero", "random-pad", "scratch")
EXACT_INITS = ("net2net", "zero")


@dataclass(frozen=True)
class WidenDefaults:
    """Symmetry breaking used by ``init="net2net"`` unless the caller overrides it.

    ``split_std``: per-weight zero-sum Gaussian noise on the split of a source unit's outgoing
    weights over its replicas (exactness is kept: each group of factors sums to one).
    ``noise_std``: the ``net2net-noise`` variant's noise, relative to the weight's std.
    """

    split_std: float = 0.5
    noise_std: float = 0.01


def check_init(init: str) -> None:
    if init not in INITS:
        raise MorphError(f"init: must be one of {list(INITS)}, got {init!r}")


def reinitialise(model: nn.Module, seed: int) -> None:
    """Reset every parameter and BatchNorm statistic (the ``scratch`` baseline)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                cast("Callable[[], None]", m.reset_parameters)()
