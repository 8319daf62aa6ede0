"""A user's own model for the replication's custom-model setting: ordinary PyTorch, no BatchNorm.

A small residual 1-D CNN for MNIST-1D (input (1, 40)), written the way a user would write it;
growsearch grows it through its custom-model path (``ArchSpec.from_user_model`` on
``benchmarks/_custom_model.py:resnet1d``, ``Widen`` of its width groups). The residual adds tie
the stem to the blocks' second convs (one width group per stage), and there is no
normalisation at all: the shape of network on which a whole-network shrink hurts most.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """relu(x + conv2(relu(conv1(x)))): a residual block without normalisation."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv1d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L) -> (B, C, L)
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class ResNet1d(nn.Module):
    """Stem conv, a residual block, pool, a wider conv, a residual block, pool, Linear."""

    def __init__(self, width: int = 12, num_classes: int = 10, length: int = 40) -> None:
        super().__init__()
        self.stem = nn.Conv1d(1, width, 5, padding=2)
        self.block1 = Block(width, width)
        self.proj = nn.Conv1d(width, 2 * width, 3, padding=1)
        self.block2 = Block(2 * width, 2 * width)
        self.head = nn.Linear(2 * width * (length // 4), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, L)
        x = self.block1(F.relu(self.stem(x)))  # (B, W, L)
        x = F.max_pool1d(x, 2)  # (B, W, L/2)
        x = self.block2(F.relu(self.proj(x)))  # (B, 2W, L/2)
        x = F.max_pool1d(x, 2)  # (B, 2W, L/4)
        return self.head(x.flatten(1))  # (B, classes)


def resnet1d() -> nn.Module:
    """The teacher: widths 12 and 24 (~11k parameters)."""
    return ResNet1d()
