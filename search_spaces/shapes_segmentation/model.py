"""A small U-Net: an encoder, one downsampled stage, and a decoder that reads the encoder's
features through a skip connection (a concat); per-pixel class scores."""

import torch
from torch import nn


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class TinyUNet(nn.Module):
    def __init__(self, width: int = 8, classes: int = 3):
        super().__init__()
        self.enc = block(1, width)
        self.down = nn.Sequential(nn.MaxPool2d(2), block(width, 2 * width))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec = block(3 * width, width)
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.enc(x)  # (B, w, 16, 16)
        u = self.up(self.down(e))  # (B, 2w, 16, 16)
        return self.head(self.dec(torch.cat([e, u], dim=1)))  # (B, classes, 16, 16)


def make() -> nn.Module:
    return TinyUNet()
