"""The built-in families' building blocks; the plain ones are the engine's (deepen inserts them)."""

from __future__ import annotations

import torch
from torch import nn

from growsearch.morph import ConvBlock, LinearBlock, bn_nd, conv_nd


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


__all__ = ["BasicBlock", "ConvBlock", "LinearBlock", "bn_nd", "conv_nd"]
