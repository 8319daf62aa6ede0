"""Graph analysis with torch.fx: which layers share the channels of the one being widened.

Widening a layer changes a *channel space*: the units it produces. That space flows through
per-channel layers (BatchNorm), elementwise ops (activations, pooling, dropout), flattens
(each channel becomes a block of features), residual adds (whose other operands must carry the
same space, so their producers are widened too, with the same mapping) and concats (a shifted
index range), until layers *read* it (the next Linear/Conv). :func:`analyse_widen` walks the
graph from the widened layer and returns every module that must change, or raises MorphError
naming the node it cannot handle.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from growsearch.exceptions import MorphError

PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
PER_CHANNEL = (nn.BatchNorm1d, nn.BatchNorm2d)
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


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model``; an untraceable model is a MorphError, not a crash."""
    try:
        return fx.symbolic_trace(model)
    except Exception as e:  # fx raises many types (TraceError, TypeError, ...)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MorphError(f"cannot trace {type(model).__name__} with torch.fx: {msg}") from e


def describe(node: fx.Node) -> str:
    """A readable name for a node, for error messages."""
    if node.op == "call_module":
        return f"module '{node.target}'"
    if node.op in ("call_function", "call_method"):
        name = getattr(node.target, "__name__", str(node.target))
        return f"{name}() at node '{node.name}'"
    return f"{node.op} '{node.name}'"


def module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(str(node.target)) if node.op == "call_module" else None


def tensor_args(node: fx.Node) -> list[fx.Node]:
    """The graph-node operands of a node (flattening lists, e.g. of torch.cat)."""
    out: list[fx.Node] = []
    for a in list(node.args) + list(node.kwargs.values()):
        if isinstance(a, fx.Node):
            out.append(a)
        elif isinstance(a, list | tuple):
            out.extend(x for x in a if isinstance(x, fx.Node))
    return out


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
            return "cat" if _cat_dim(node) == 1 else "other"
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


def _cat_dim(node: fx.Node) -> int:
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    return int(dim)  # type: ignore[arg-type]


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
    if isinstance(m, nn.Conv1d | nn.Conv2d):
        return m.out_channels
    if isinstance(m, PER_CHANNEL):
        return m.num_features
    if k in ("pass", "binary"):
        return channels(gm, tensor_args(node)[0])
    if k == "cat":
        return sum(channels(gm, a) for a in tensor_args(node))
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
    raise MorphError(f"cannot tell whether {describe(node)} is a feature map")


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


@dataclass(frozen=True)
class View:
    """Where the widened channel space sits in a node's value.

    ``offset``: index of its first channel along dim 1 (non-zero after a concat).
    ``flat_total``: after a flatten, the channel count of the flattened map (each channel is a
    block of ``features / flat_total`` features); None before any flatten.
    ``spatial``: the value is a feature map (B, C, *S).
    """

    offset: int
    flat_total: int | None
    spatial: bool


@dataclass
class WidenPlan:
    """Everything that changes when one channel space is widened."""

    n: int
    producers: list[str] = field(default_factory=list)
    per_channel: list[tuple[str, View]] = field(default_factory=list)
    consumers: list[tuple[str, View]] = field(default_factory=list)


def analyse_widen(gm: fx.GraphModule, name: str) -> WidenPlan:
    """Find every module coupled to the outputs of Linear/Conv ``name``."""
    calls: dict[str, list[fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls.setdefault(str(node.target), []).append(node)
    if name not in calls:
        raise MorphError(f"widen: no layer '{name}' is called in the model's forward")
    start_mod = gm.get_submodule(name)
    if not isinstance(start_mod, PRODUCERS):
        raise MorphError(
            f"widen: '{name}' is a {type(start_mod).__name__}; only Linear, Conv1d and Conv2d can be widened"
        )
    n = channels(gm, calls[name][0])
    views: dict[fx.Node, View] = {}
    queue: list[fx.Node] = []
    plan = WidenPlan(n=n)

    def visit(node: fx.Node, view: View, why: str) -> None:
        if node in views:
            if views[node] != view:
                raise MorphError(
                    f"widen {name}: {describe(node)} would carry the widened channels at two "
                    f"different positions ({why})"
                )
            return
        views[node] = view
        queue.append(node)

    visit(calls[name][0], View(0, None, not isinstance(start_mod, nn.Linear)), "start")
    consumers: dict[fx.Node, View] = {}
    while queue:
        node = queue.pop()
        view = views[node]
        k = kind(gm, node)
        # backward: what must already carry the same channels for this node to carry them
        if k == "producer":
            if view.offset != 0 or view.flat_total is not None or channels(gm, node) != n:
                raise MorphError(
                    f"widen {name}: {describe(node)} is coupled to the widened channels only in "
                    "part (through a concat or flatten); it cannot be widened exactly"
                )
            plan.producers.append(str(node.target))
        elif k in ("pass", "per_channel"):
            visit(tensor_args(node)[0], view, f"input of {describe(node)}")
            if k == "per_channel":
                plan.per_channel.append((str(node.target), view))
        elif k == "binary":
            for a in tensor_args(node):
                visit(a, view, f"operand of {describe(node)}")
        elif k in ("placeholder", "get_attr"):
            raise MorphError(
                f"widen {name}: the widened channels are combined with {describe(node)}, "
                "whose width cannot change"
            )
        elif k in ("flatten", "cat"):
            pass  # checked below: they must have been reached forward, from an input
        else:
            raise MorphError(
                f"widen {name}: cannot propagate the widening through {describe(node)}"
            )
        # forward: who reads this value
        for user in node.users:
            ku = kind(gm, user)
            if ku == "producer":  # a layer reading the channels
                if user in consumers and consumers[user] != view:
                    raise MorphError(f"widen {name}: {describe(user)} reads the channels twice")
                consumers[user] = view
            elif ku in ("pass", "per_channel", "binary"):
                visit(user, view, f"user of {describe(node)}")
            elif ku == "flatten":
                if view.flat_total is not None or not view.spatial:
                    visit(user, view, "flatten")
                else:
                    visit(user, View(view.offset, channels(gm, node), False), "flatten")
            elif ku == "cat":
                if view.flat_total is not None:
                    raise MorphError(
                        f"widen {name}: concat of flattened features at {describe(user)}"
                    )
                offset = 0
                for a in tensor_args(user):
                    if a is node:
                        break
                    offset += channels(gm, a)
                visit(user, View(view.offset + offset, None, view.spatial), "concat")
            elif ku == "neutral":
                continue
            elif ku == "output":
                raise MorphError(
                    f"widen {name}: the widened channels reach the model's output, so its shape would change"
                )
            else:
                raise MorphError(
                    f"widen {name}: cannot propagate the widening through {describe(user)}"
                )

    for node in views:
        if kind(gm, node) in ("flatten", "cat") and not any(a in views for a in tensor_args(node)):
            raise MorphError(
                f"widen {name}: the widened channels are combined with {describe(node)}, "
                "which carries other channels"
            )
    for user, view in consumers.items():
        m = module_of(gm, user)
        if isinstance(m, nn.Linear) and view.spatial:
            raise MorphError(
                f"widen {name}: Linear '{user.target}' reads a feature map without a flatten; "
                "its input channels are not its last dimension"
            )
        if isinstance(m, nn.Conv1d | nn.Conv2d) and (
            not view.spatial or view.flat_total is not None
        ):
            raise MorphError(f"widen {name}: Conv '{user.target}' reads flattened features")
        plan.consumers.append((str(user.target), view))
    for target in (
        set(plan.producers) | {t for t, _ in plan.per_channel} | {t for t, _ in plan.consumers}
    ):
        if len(calls.get(target, [])) != 1:
            raise MorphError(
                f"widen {name}: module '{target}' is called {len(calls.get(target, []))} times; "
                "shared layers cannot be widened"
            )
        m = gm.get_submodule(target)
        if isinstance(m, nn.Conv1d | nn.Conv2d) and m.groups != 1:
            raise MorphError(f"widen {name}: grouped convolution '{target}' is not supported")
    if not plan.consumers:
        raise MorphError(f"widen {name}: no layer reads its outputs")
    return plan
