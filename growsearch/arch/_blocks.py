"""Building blocks. Attribute names match what the morph engine and checkpoints refer to."""

from __future__ import annotations

import torch
from torch import nn


def conv_nd(
    dims: int, cin: int, cout: int, k: int, stride: int = 1, bias: bool = True
) -> nn.Conv1d | nn.Conv2d:
    cls = nn.Conv1d if dims == 1 else nn.Conv2d
    return cls(cin, cout, k, stride=stride, padding=k // 2, bias=bias)


def bn_nd(dims: int, c: int) -> nn.BatchNorm1d | nn.BatchNorm2d:
    return nn.BatchNorm1d(c) if dims == 1 else nn.BatchNorm2d(c)


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
    """Conv → BatchNorm → ReLU, 1-D or 2-D; 'same' padding keeps the resolution."""

    def __init__(self, dims: int, cin: int, cout: int, k: int = 3, batch_norm: bool = True):
        super().__init__()
        self.conv = conv_nd(dims, cin, cout, k, bias=not batch_norm)
        self.bn = bn_nd(dims, cout) if batch_norm else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, cin, *S) -> (B, cout, *S)
        return self.act(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    """ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, dims: int, cin: int, inner: int, cout: int, k: int = 3, stride: int = 1):
        super().__init__()
        self.conv1 = conv_nd(dims, cin, inner, k, stride=stride, bias=False)
        self.bn1 = bn_nd(dims, inner)
        self.act1 = nn.ReLU()
        self.conv2 = conv_nd(dims, inner, cout, k, bias=False)
        self.bn2 = bn_nd(dims, cout)
        if stride != 1 or cin != cout:
            self.shortcut: nn.Module = nn.Sequential(
                conv_nd(dims, cin, cout, 1, stride=stride, bias=False), bn_nd(dims, cout)
            )
        else:
            self.shortcut = nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, cin, *S) -> (B, cout, *S/stride)
        h = self.act1(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(h)) + self.shortcut(x))
