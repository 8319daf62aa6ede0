"""The layers deepen inserts, also the built-in families' building blocks.

Attribute names (``conv``, ``linear``, ``bn``) are what the engine and checkpoints refer to.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_nd(
    dims: int, cin: int, cout: int, k: int, stride: int = 1, bias: bool = True
) -> nn.Conv1d | nn.Conv2d | nn.Conv3d:
    """A ``dims``-d convolution (1, 2 or 3) with 'same' padding for an odd ``k``."""
    if dims == 1:
        return nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)
    if dims == 2:
        return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)
    return nn.Conv3d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)


def bn_nd(dims: int, c: int) -> nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d:
    if dims == 1:
        return nn.BatchNorm1d(c)
    return nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm3d(c)


class LinearBlock(nn.Module):
    """Linear → BatchNorm → ReLU (→ Dropout)."""

    def __init__(self, cin: int, cout: int, batch_norm: bool = True, dropout: float = 0.0):
        super().__init__()
        self.linear = nn.Linear(cin, cout)
        self.bn = nn.BatchNorm1d(cout) if batch_norm else nn.Identity()
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, cin) -> (B, cout)
        return self.drop(self.act(self.bn(self.linear(x))))


class ConvBlock(nn.Module):
    """Conv → BatchNorm → ReLU, 1-D, 2-D or 3-D; 'same' padding keeps the resolution."""

    def __init__(self, dims: int, cin: int, cout: int, k: int = 3, batch_norm: bool = True):
        super().__init__()
        self.conv = conv_nd(dims, cin, cout, k, bias=not batch_norm)
        self.bn = bn_nd(dims, cout) if batch_norm else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, cin, *S) -> (B, cout, *S)
        return self.act(self.bn(self.conv(x)))
