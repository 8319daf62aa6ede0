"""Graph queries for Net2DeeperNet: what a node is, how many channels it carries, whether it is
a feature map, whether it is non-negative (so an identity layer followed by ReLU is exact after
it). Layers the rules do not name are read from a shape probe's record (:func:`traced_shape`).
Widening uses :mod:`growsearch.morph._coupling`."""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from growsearch.exceptions import MorphError
from growsearch.morph._coupling import CONV, CONV_T, WEIGHTED, cat_dim, describe, tensor_args

PRODUCERS = WEIGHTED
PER_CHANNEL = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardtanh,
    nn.Softplus, nn.Mish, nn.Hardswish, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
)  # fmt: skip
PASS_FUNCTIONS = {
    F.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.mish, F.hardswish, F.hardtanh,
    F.softplus, F.dropout, F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_max_pool1d, F.adaptive_max_pool2d,
    torch.relu, torch.tanh, torch.sigmoid, F.sigmoid, F.tanh,
}  # fmt: skip
PASS_METHODS = {"relu", "relu_", "tanh", "sigmoid", "contiguous", "clone"}
BINARY = {
    operator.add,
    operator.iadd,
    operator.mul,
    operator.imul,
    operator.sub,
    torch.add,
    torch.mul,
    torch.sub,
}
BINARY_METHODS = {"add", "add_", "mul", "mul_", "sub", "sub_"}
NONNEG_MODULES = (nn.ReLU, nn.ReLU6)
NONNEG_FUNCTIONS = {F.relu, F.relu6, torch.relu}
KEEPS_SIGN_MODULES = (
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Dropout1d,
    nn.Dropout2d, nn.Identity,
)  # fmt: skip
KEEPS_SIGN_FUNCTIONS = {
    F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d, F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d, F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.dropout,
}  # fmt: skip


def module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(str(node.target)) if node.op == "call_module" else None


def kind(gm: fx.GraphModule, node: fx.Node) -> str:
    """Classify a node: producer, per_channel, pass, binary, flatten, cat, neutral, other."""
    if node.op == "call_module":
        m = module_of(gm, node)
        if isinstance(m, PRODUCERS):
            return "producer"
        if isinstance(m, PER_CHANNEL):
            return "per_channel"
        if isinstance(m, nn.Flatten):
            return "flatten" if m.start_dim == 1 and m.end_dim == -1 else "other"
        if isinstance(m, PASS_MODULES):
            return "pass"
        return "other"
    if node.op == "call_function":
        if node.target in PASS_FUNCTIONS:
            return "pass"
        if node.target in BINARY:
            return "binary"
        if node.target is torch.flatten:
            return "flatten" if _flatten_dim(node) == 1 else "other"
        if node.target in (torch.cat, torch.concat):
            return "cat" if cat_dim(node) == 1 else "other"
        if node.target is getattr:
            return "neutral"
        return "other"
    if node.op == "call_method":
        if node.target in PASS_METHODS:
            return "pass"
        if node.target in BINARY_METHODS:
            return "binary"
        if node.target == "flatten":
            return "flatten" if _flatten_dim(node) == 1 else "other"
        if node.target in ("view", "reshape") and _is_batch_flatten_view(node):
            return "flatten"
        if node.target in ("size", "dim"):
            return "neutral"
        return "other"
    return node.op  # placeholder, get_attr, output


def _flatten_dim(node: fx.Node) -> int:
    start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
    end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
    return int(start) if end == -1 else -99  # type: ignore[arg-type]


def _is_batch_flatten_view(node: fx.Node) -> bool:
    """``x.view(x.size(0), -1)`` / ``x.reshape(B, -1)``: a flatten from dim 1."""
    shape = node.args[1:]
    if len(shape) == 1 and isinstance(shape[0], list | tuple):
        shape = tuple(shape[0])
    return len(shape) == 2 and bool(shape[1] == -1)


def channels(gm: fx.GraphModule, node: fx.Node) -> int:
    """Size of dim 1 of a node's value, from the modules that produced it."""
    k = kind(gm, node)
    m = module_of(gm, node)
    if isinstance(m, nn.Linear):
        return m.out_features
    if isinstance(m, CONV + CONV_T):
        return m.out_channels
    if isinstance(m, PER_CHANNEL):
        return m.num_features
    if k in ("pass", "binary"):
        return channels(gm, tensor_args(node)[0])
    if k == "cat":
        return sum(channels(gm, a) for a in tensor_args(node))
    shape = traced_shape(node)
    if shape is not None and len(shape) >= 2:
        return int(shape[1])
    raise MorphError(f"cannot infer the channel count at {describe(node)}")


def is_spatial(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether a node's value is a feature map (B, C, *S) rather than features (B, C)."""
    k = kind(gm, node)
    m = module_of(gm, node)
    if isinstance(m, PRODUCERS):
        return not isinstance(m, nn.Linear)
    if k == "flatten":
        return False
    if k in ("pass", "binary", "per_channel", "cat"):
        return is_spatial(gm, tensor_args(node)[0])
    shape = traced_shape(node)
    if shape is not None and len(shape) >= 2:
        return len(shape) > 2
    raise MorphError(f"cannot tell whether {describe(node)} is a feature map")


def traced_shape(node: fx.Node) -> tuple[int, ...] | None:
    """The shape of a node's value where a shape probe (``propagate_shapes``) recorded one: how
    layers the rules above do not know (a transposed or 3-d conv, a user's own module) are read."""
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


def is_nonnegative(gm: fx.GraphModule, node: fx.Node) -> bool:
    """True if the value is ≥ 0 by construction (a ReLU output, maybe pooled/dropped out)."""
    m = module_of(gm, node)
    if isinstance(m, NONNEG_MODULES) or (
        node.op == "call_function" and node.target in NONNEG_FUNCTIONS
    ):
        return True
    if node.op == "call_method" and node.target in ("relu", "relu_"):
        return True
    if isinstance(m, KEEPS_SIGN_MODULES) or (
        node.op == "call_function" and node.target in KEEPS_SIGN_FUNCTIONS
    ):
        return is_nonnegative(gm, tensor_args(node)[0])
    return False
