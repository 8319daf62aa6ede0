"""One classification of the torch operations the morph package follows through a traced graph.

Widening (:mod:`growsearch.morph._coupling`: which layers carry a channel space), deepening
(:mod:`growsearch.morph._graph`: what a node's channel count and layout are, whether its value
is non-negative) and the predictions-keeping shrink (:mod:`growsearch.grow._rescale`: how a
scale λ flows through the graph) all read the same table, so they agree on which operations
carry channels. Each entry is an :class:`OpInfo`: its role (what it does to the shape and to the
channels' axis) and the algebraic facts the other passes need. An operation not in the table is
unknown to all three: widening refuses it, deepening reads it from a shape probe, the shrink
leaves everything before it unscaled.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import fx, nn

ROLES = {
    "elementwise": "the input's shape; each value from the input value at the same position",
    "spatial": "mixes values along the axes after the channels' axis 1 only (pool, pad, resize)",
    "norm": "normalises each channel of axis 1, with per-channel parameters and statistics",
    "group_norm": "normalises groups of channels of axis 1",
    "layer_norm": "normalises over the trailing axes",
    "reshape": "the same values in another shape (row-major)",
    "permute": "the same values with the axes in another order",
    "reduce": "sums, averages or takes the extreme along some axes",
    "broadcast": "repeats the input along some axes",
    "split": "cuts the input into pieces along one axis",
    "getitem": "indexes the input (or picks one item of a tuple)",
    "binary": "combines operands value by value (broadcasting)",
    "cat": "joins tensors along an existing axis",
    "stack": "joins tensors along a new axis",
    "matmul": "a matrix product of two operands",
    "neutral": "returns no tensor (a size, a rank, an attribute)",
}
"""Every role an operation can have, with what it means."""


@dataclass(frozen=True)
class OpInfo:
    """What one operation is.

    Attributes:
        role: One of :data:`ROLES`.
        homogeneous: ``f(λ·x) = λ·f(x)`` for every λ > 0 (a single-input operation): a scale
            passes through it unchanged.
        nonneg: Its output is ≥ 0 whatever its input (a ReLU).
        keeps_sign: A non-negative input gives a non-negative output (pooling, dropout).
        combine: For ``binary`` (and ``matmul``): ``"add"`` (add, subtract, maximum, minimum:
            a scale passes when both operands carry the same one), ``"mul"`` (scales add up)
            or ``"div"``.
    """

    role: str
    homogeneous: bool = False
    nonneg: bool = False
    keeps_sign: bool = False
    combine: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")


MODULES: dict[type[nn.Module], OpInfo] = {}
FUNCTIONS: dict[Callable[..., Any], OpInfo] = {}
METHODS: dict[str, OpInfo] = {}


def _add(role: str, *ops: Any, **facts: Any) -> None:
    info = OpInfo(role, **facts)
    for op in ops:
        if isinstance(op, str):
            METHODS[op] = info
        elif isinstance(op, type):
            MODULES[op] = info
        else:
            FUNCTIONS[op] = info


# ---- elementwise ----------------------------------------------------------------------------
# positively homogeneous, and a non-negative input stays non-negative
_add(
    "elementwise",
    nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d,
    "contiguous", "clone", "detach", "float", "double", "half", "bfloat16", "to", "type_as",
    homogeneous=True, keeps_sign=True,
)  # fmt: skip
_add("elementwise", nn.ReLU, F.relu, torch.relu, "relu", "relu_",
     homogeneous=True, nonneg=True, keeps_sign=True)  # fmt: skip
_add("elementwise", torch.abs, "abs", homogeneous=True, nonneg=True, keeps_sign=True)
_add("elementwise", nn.LeakyReLU, nn.PReLU, F.leaky_relu, F.prelu, homogeneous=True,
     keeps_sign=True)  # fmt: skip
_add("elementwise", torch.neg, "neg", homogeneous=True)
_add(
    "elementwise",
    nn.ReLU6, F.relu6, nn.Sigmoid, F.sigmoid, torch.sigmoid, "sigmoid", "sigmoid_",
    nn.Hardsigmoid, F.hardsigmoid, nn.Softplus, F.softplus, torch.exp, "exp", torch.square,
    "square",
    nonneg=True, keeps_sign=True,
)  # fmt: skip
_add("elementwise", torch.sqrt, "sqrt", torch.rsqrt, "rsqrt", nonneg=True, keeps_sign=True)
_add(
    "elementwise",
    nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Softsign,
    nn.Mish, nn.LogSigmoid, nn.Tanhshrink, nn.AlphaDropout, F.elu, F.selu, F.celu, F.gelu,
    F.silu, F.mish, F.hardswish, F.hardtanh, F.softsign, F.logsigmoid, F.tanh, torch.tanh,
    "tanh", "tanh_", F.alpha_dropout, torch.sin, "sin", torch.cos, "cos", torch.clamp,
    torch.clip, "clamp", "clamp_", "clip", "pow", torch.zeros_like, torch.ones_like,
    torch.empty_like, torch.full_like, torch.rand_like, torch.randn_like,
)  # fmt: skip

# ---- along the spatial axes -----------------------------------------------------------------
_add(
    "spatial",
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Upsample, nn.ZeroPad1d, nn.ZeroPad2d,
    nn.ZeroPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReplicationPad1d,
    nn.ReplicationPad2d,
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
    F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.interpolate, F.upsample,
    homogeneous=True, keeps_sign=True,
)  # fmt: skip
# a constant pad is homogeneous only with the value 0 (the shrink reads F.pad's arguments)
_add("spatial", nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d, F.pad)

# ---- normalisations -------------------------------------------------------------------------
_add(
    "norm",
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d,
    nn.InstanceNorm2d, nn.InstanceNorm3d,
)  # fmt: skip
_add("group_norm", nn.GroupNorm)
_add("layer_norm", nn.LayerNorm)

# ---- moving values around -------------------------------------------------------------------
_add(
    "reshape",
    nn.Flatten, nn.Unflatten, torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze,
    torch.unflatten, "view", "reshape", "flatten", "squeeze", "unsqueeze", "unflatten",
    "view_as", "reshape_as",
    homogeneous=True, keeps_sign=True,
)  # fmt: skip
_add(
    "permute",
    torch.permute, torch.transpose, torch.swapaxes, torch.swapdims, torch.movedim,
    torch.moveaxis, "permute", "transpose", "transpose_", "swapaxes", "swapdims", "movedim",
    "moveaxis",
    homogeneous=True, keeps_sign=True,
)  # fmt: skip
_add("reduce", torch.mean, torch.sum, torch.amax, torch.amin, "mean", "sum", "amax", "amin",
     homogeneous=True, keeps_sign=True)  # fmt: skip
_add("broadcast", torch.broadcast_to, "expand", "expand_as", "repeat",
     homogeneous=True, keeps_sign=True)  # fmt: skip
_add(
    "split",
    torch.split, torch.chunk, torch.tensor_split, torch.unbind, "split", "chunk",
    "tensor_split", "unbind",
    homogeneous=True, keeps_sign=True,
)  # fmt: skip
_add("getitem", operator.getitem, homogeneous=True, keeps_sign=True)

# ---- several operands -----------------------------------------------------------------------
_add(
    "binary",
    operator.add, operator.iadd, operator.sub, operator.isub, torch.add, torch.sub,
    torch.maximum, torch.minimum, "add", "add_", "sub", "sub_",
    combine="add",
)  # fmt: skip
_add("binary", operator.mul, operator.imul, torch.mul, torch.multiply, "mul", "mul_", "multiply",
     combine="mul")  # fmt: skip
_add("binary", operator.truediv, operator.itruediv, torch.div, "div", "div_", combine="div")
_add("matmul", operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm", combine="mul")
_add("cat", torch.cat, torch.concat, torch.concatenate)
_add("stack", torch.stack)
_add("neutral", getattr, "size", "dim", "numel")


def op_info(node: fx.Node, module: nn.Module | None = None) -> OpInfo | None:
    """The table's entry for a graph node (``module``: the module a ``call_module`` node
    calls; a subclass of a known module counts as it), or None if the operation is unknown."""
    if node.op == "call_module":
        if module is None:
            return None
        for cls in type(module).__mro__:
            if cls in MODULES:
                return MODULES[cls]
        return None
    if node.op == "call_function":
        try:
            return FUNCTIONS.get(cast("Callable[..., Any]", node.target))
        except TypeError:  # an unhashable target
            return None
    if node.op == "call_method":
        return METHODS.get(str(node.target))
    return None


def modules(*roles: str, **facts: Any) -> tuple[type[Any], ...]:
    """The module classes with one of ``roles`` (any role if none given) and every one of
    ``facts`` (e.g. ``homogeneous=True``), for ``isinstance`` (typed loosely: the callers read
    the attributes of the classes a role holds, e.g. a norm's ``num_features``)."""
    return tuple(m for m, i in MODULES.items() if _matches(i, roles, facts))


def functions(*roles: str, **facts: Any) -> set[Callable[..., Any]]:
    """The functions with one of ``roles`` and every one of ``facts``."""
    return {f for f, i in FUNCTIONS.items() if _matches(i, roles, facts)}


def methods(*roles: str, **facts: Any) -> set[str]:
    """The tensor methods with one of ``roles`` and every one of ``facts``."""
    return {m for m, i in METHODS.items() if _matches(i, roles, facts)}


def _matches(info: OpInfo, roles: tuple[str, ...], facts: dict[str, Any]) -> bool:
    for role in roles:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
    return (not roles or info.role in roles) and all(
        getattr(info, k) == v for k, v in facts.items()
    )


__all__ = ["FUNCTIONS", "METHODS", "MODULES", "ROLES", "OpInfo", "functions", "methods", "modules",
           "op_info"]  # fmt: skip
