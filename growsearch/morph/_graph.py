"""Graph queries for Net2DeeperNet: what a node is, how many channels it carries, whether it is
a feature map, whether it is non-negative (so an identity layer followed by ReLU is exact after
it). Layers the rules do not name are read from a shape probe's record (:func:`traced_shape`).
Widening uses :mod:`growsearch.morph._coupling`."""

from __future__ import annotations

from typing import cast

import torch
from torch import fx, nn

from growsearch.exceptions import MorphError
from growsearch.morph import ops
from growsearch.morph._trace import (
    CONV,
    CONV_T,
    WEIGHTED,
    cat_dim,
    describe,
    tensor_args,
)

PRODUCERS = WEIGHTED
# What deepen reads, from the package's one table of operations (growsearch.morph.ops): the
# same operations widening follows.
PER_CHANNEL = ops.modules("norm")
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
"""Normalisations after which an inserted block gets a BatchNorm of its own."""
PASS_MODULES = ops.modules("elementwise", "spatial")
PASS_FUNCTIONS = ops.functions("elementwise", "spatial")
PASS_METHODS = ops.methods("elementwise")
BINARY = ops.functions("binary")
BINARY_METHODS = ops.methods("binary")
CAT = ops.functions("cat")
NEUTRAL_METHODS = ops.methods("neutral")


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
        if node.target in CAT:
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
        if node.target in NEUTRAL_METHODS:
            return "neutral"
        return "other"
    return node.op  # placeholder, get_attr, output


def _flatten_dim(node: fx.Node) -> int:
    start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
    end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
    return int(cast(int, start)) if end == -1 else -99


def _is_batch_flatten_view(node: fx.Node) -> bool:
    """``x.view(x.size(0), -1)`` / ``x.reshape(B, -1)``: a flatten from dim 1."""
    shape = node.args[1:]
    if len(shape) == 1 and isinstance(shape[0], list | tuple):
        shape = tuple(shape[0])
    return len(shape) == 2 and bool(shape[1] == -1)


# ops that move axes (the channel axis is followed through them: channel_axis), and every op
# whose output may have its input's shape with the axes in another order
_PERMUTES = ops.methods("permute") - {"transpose_"}
_REORDER = _PERMUTES | ops.methods("reshape") | {"t", "transpose_"}


def _same_layout_input(node: fx.Node) -> fx.Node | None:
    """For a node the rules do not name (a LayerNorm, GroupNorm, PReLU, a user's own
    activation): its input, where the shape probe recorded the same shape for both and the op
    is not one that reorders axes; the value then has its input's layout (channel axis and
    count). None otherwise."""
    name = getattr(node.target, "__name__", node.target)
    if node.op not in ("call_module", "call_function", "call_method") or name in _REORDER:
        return None
    shape = traced_shape(node)
    if shape is None:
        return None
    for a in tensor_args(node):
        if traced_shape(a) == shape:
            return a
    return None


def channels(gm: fx.GraphModule, node: fx.Node) -> int:
    """The channel count of a node's value (dim 1 of a feature map, the last dim of features),
    from the modules that produced it."""
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
    if (src := _same_layout_input(node)) is not None:
        return channels(gm, src)
    if _reorder_source(node) is not None:
        return int(_shape(node)[channel_axis(gm, node)])
    shape = traced_shape(node)
    if shape is not None and len(shape) >= 2:
        return int(shape[1])
    raise MorphError(f"cannot infer the channel count at {describe(node)}")


def is_spatial(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether a node's value is a feature map (B, C, *S) rather than features (B, ..., C): the
    channels of a feature map are on dim 1, those of features (a Linear's output, tokens
    included) on the last dim."""
    k = kind(gm, node)
    m = module_of(gm, node)
    if isinstance(m, PRODUCERS):
        return not isinstance(m, nn.Linear)
    if k == "flatten":
        return False
    if k in ("pass", "binary", "per_channel", "cat"):
        return is_spatial(gm, tensor_args(node)[0])
    if (src := _same_layout_input(node)) is not None:
        return is_spatial(gm, src)
    if _reorder_source(node) is not None:  # a permute/transpose: where did the channels go?
        rank, axis = len(_shape(node)), channel_axis(gm, node)
        if axis == rank - 1:
            return False  # channels last: features, e.g. (B, H, W, C) between permutes
        if axis == 1:
            return True
        raise MorphError(
            f"{describe(node)} has its channels on axis {axis} of {rank}; a new layer goes where "
            "they are on axis 1 or last"
        )
    shape = traced_shape(node)
    if shape is not None and len(shape) >= 2:
        return len(shape) > 2
    raise MorphError(f"cannot tell whether {describe(node)} is a feature map")


def _reorder_source(node: fx.Node) -> fx.Node | None:
    """The input of a permute/transpose/swapaxes/movedim (method or torch function), else None."""
    name = getattr(node.target, "__name__", node.target)
    if node.op not in ("call_function", "call_method") or name not in _PERMUTES:
        return None
    src = node.args[0] if node.args else None
    return src if isinstance(src, fx.Node) else None


def _shape(node: fx.Node) -> tuple[int, ...]:
    shape = traced_shape(node)
    if shape is None:
        raise MorphError(f"cannot tell the shape of {describe(node)} without a shape probe")
    return shape


def channel_axis(gm: fx.GraphModule, node: fx.Node) -> int:
    """The axis of a node's value that holds its channels (0-based, the rank known from the
    shape probe): 1 for a conv's or BatchNorm's, the last for a Linear's, moved by every
    permute and transpose on the way."""
    k = kind(gm, node)
    m = module_of(gm, node)
    if isinstance(m, nn.Linear) or k == "flatten":
        return len(_shape(node)) - 1
    if isinstance(m, PRODUCERS) or k == "per_channel":
        return 1
    if k in ("pass", "binary", "cat"):
        return channel_axis(gm, tensor_args(node)[0])
    if (src := _same_layout_input(node)) is not None:
        return channel_axis(gm, src)
    if (src := _reorder_source(node)) is not None:
        axis, rank = channel_axis(gm, src), len(_shape(src))
        raw = list(node.args[1:]) or [
            node.kwargs[key]
            for key in ("dims", "dim0", "dim1", "source", "destination")
            if key in node.kwargs
        ]
        if len(raw) == 1 and isinstance(raw[0], list | tuple):
            raw = list(raw[0])
        dims = [d % rank for d in raw if isinstance(d, int)]
        name = getattr(node.target, "__name__", node.target)
        if len(dims) == len(raw) == rank and name == "permute":
            return dims.index(axis)
        if len(dims) == len(raw) == 2 and name in ("transpose", "swapaxes", "swapdims"):
            a, b = dims
            return b if axis == a else a if axis == b else axis
        if len(dims) == len(raw) == 2 and name in ("movedim", "moveaxis"):
            order = list(range(rank))
            order.insert(dims[1], order.pop(dims[0]))
            return order.index(axis)
        raise MorphError(f"cannot follow the channels through {describe(node)}")
    return 1


def traced_shape(node: fx.Node) -> tuple[int, ...] | None:
    """The shape of a node's value where a shape probe (``propagate_shapes``) recorded one: how
    layers the rules above do not know (a transposed or 3-d conv, a user's own module) are read."""
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


def is_nonnegative(gm: fx.GraphModule, node: fx.Node) -> bool:
    """True if the value is ≥ 0 by construction (a ReLU output, maybe pooled/dropped out)."""
    info = ops.op_info(node, module_of(gm, node))
    if info is None:
        return False
    if info.nonneg:
        return True
    if info.keeps_sign and info.role in ("elementwise", "spatial"):
        args = tensor_args(node)
        return bool(args) and is_nonnegative(gm, args[0])
    return False
