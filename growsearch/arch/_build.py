"""One function turns a spec into a module: :func:`build`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from growsearch.arch._blocks import BasicBlock
from growsearch.arch._spec import ArchSpec
from growsearch.morph import ConvBlock, LinearBlock, bn_nd, conv_nd


class MLP(nn.Module):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        cin = 1
        for s in spec.input_shape:
            cin *= s
        self.layers = nn.ModuleDict()
        for layer in spec.layers:
            self.layers[layer.name] = LinearBlock(cin, layer.width, spec.batch_norm, spec.dropout)
            cin = layer.width
        self.head = nn.Linear(cin, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, D)
        for block in self.layers.values():
            x = block(x)
        return self.head(x)  # (B, classes)


class CNN(nn.Module):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        dims = len(spec.input_shape) - 1
        cin, size = spec.input_shape[0], list(spec.input_shape[1:])
        self.layers = nn.ModuleDict()
        self.stage_names: list[list[str]] = []
        self.pool_after: list[bool] = []
        for stage in spec.stages:
            for layer in stage.layers:
                self.layers[layer.name] = ConvBlock(
                    dims, cin, layer.width, spec.kernel_size, spec.batch_norm
                )
                cin = layer.width
            self.stage_names.append([x.name for x in stage.layers])
            pool = min(size) >= 2  # stop pooling once the resolution is 1
            self.pool_after.append(pool)
            if pool:
                size = [s // 2 for s in size]
        self.dims = dims
        self.drop = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        feats = cin
        for s in size:
            feats *= s
        self.head = nn.Linear(feats, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for names, pool in zip(self.stage_names, self.pool_after):
            for name in names:
                x = self.layers[name](x)  # (B, C, *S)
            if pool:
                x = F.max_pool1d(x, 2) if self.dims == 1 else F.max_pool2d(x, 2)  # (B, C, *S/2)
        x = self.drop(x.flatten(1))  # (B, C·prod(S))
        return self.head(x)


class ResNet(nn.Module):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        dims = len(spec.input_shape) - 1
        k = spec.kernel_size
        width0 = int(spec.stages[0].width)  # type: ignore[arg-type]
        self.stem = nn.Sequential()
        self.stem.add_module("conv", conv_nd(dims, spec.input_shape[0], width0, k, bias=False))
        self.stem.add_module("bn", bn_nd(dims, width0))
        self.stem.add_module("act", nn.ReLU())
        self.layers = nn.ModuleDict()
        self.order: list[str] = []
        cin, size = width0, min(spec.input_shape[1:])
        for i, stage in enumerate(spec.stages):
            width = int(stage.width)  # type: ignore[arg-type]
            for j, layer in enumerate(stage.layers):
                stride = 2 if (i > 0 and j == 0 and size >= 2) else 1
                self.layers[layer.name] = BasicBlock(dims, cin, layer.width, width, k, stride)
                if stride == 2:
                    size = (size + 1) // 2
                cin = width
                self.order.append(layer.name)
        self.pool = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, C0, *S)
        for name in self.order:
            x = self.layers[name](x)
        return self.head(self.pool(x).flatten(1))  # (B, C) -> (B, classes)


_FAMILIES: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN, "resnet": ResNet}


def _make(spec: ArchSpec) -> nn.Module:
    if spec.custom is not None:
        from growsearch.arch._custom import build_custom

        return build_custom(spec.custom, spec.input_shape)
    return _FAMILIES[spec.family](spec)


def build(spec: ArchSpec, seed: int | None = None) -> nn.Module:
    """Build the network ``spec`` describes (freshly initialised; seeded if ``seed`` is given).

    For a ``custom`` spec: the user's factory, with the spec's recorded ops replayed.
    """
    if seed is None:
        return _make(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _make(spec)


def module_name(spec: ArchSpec, target: str) -> str:
    """The Linear/Conv module whose outputs ``Widen(target, ...)`` widens."""
    si = spec.stage_index(target)
    if si is not None:  # a resnet stage: its residual width
        if si == 0:
            return "stem.conv"
        return f"layers.{spec.stages[si].layers[0].name}.conv2"
    spec.layer(target)
    if spec.custom is not None:
        return spec.custom.module(target)
    if spec.family == "mlp":
        return f"layers.{target}.linear"
    if spec.family == "cnn":
        return f"layers.{target}.conv"
    return f"layers.{target}.conv1"


def output_name(spec: ArchSpec, layer: str) -> str:
    """The module whose output is layer ``layer``'s output (where a deepen inserts after)."""
    if spec.custom is not None:  # an insertion site: the module after which blocks go
        return spec.custom.site(layer)[1]
    spec.layer(layer)
    if spec.family == "mlp" and spec.dropout > 0:
        return f"layers.{layer}.drop"
    return f"layers.{layer}.act"
