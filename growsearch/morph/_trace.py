"""Tracing a model with torch.fx and reading its shapes: what the coupling walk, deepening and
the shrink work on. The layers that produce channel spaces (:data:`WEIGHTED`, :data:`PRODUCING`),
a tracer that keeps inserted blocks visible, shape propagation on fake tensors, and a guess of
the input shape a model accepts."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from typing import cast

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from growsearch.exceptions import MorphError
from growsearch.morph._sequence import SEQUENCE

LINEAR = (nn.Linear,)


CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


WEIGHTED = LINEAR + CONV + CONV_T
"""Layers with a weight that maps input channels to output channels: they produce a channel
space (their outputs) and read one (their inputs)."""


EMBED = (nn.Embedding,)
"""Lookup tables: they produce a channel space (the embedding dimension) from integer ids."""


PRODUCING = WEIGHTED + EMBED


def weight_axes(m: nn.Module) -> tuple[int, int]:
    """(output axis, input axis) of a :data:`PRODUCING` layer's weight: a transposed
    convolution stores its weight as (in, out / groups, *kernel), an embedding as (ids, dim)
    (it has no input channels: its input axis is never used), the others as (out, in, ...)."""
    return (1, 0) if isinstance(m, CONV_T + EMBED) else (0, 1)


class _Tracer(fx.Tracer):
    """fx's tracer, except that a torch.nn leaf module with inserted blocks (see
    :func:`growsearch.morph._groups.insert_block`) stays a leaf, followed by its blocks."""

    def call_module(self, m, forward, args, kwargs):  # type: ignore[no-untyped-def]
        cls = type(m)
        if getattr(cls, "_gs_grown", False) and _torch_leaf(cls.__mro__[1]):
            out = self.create_proxy("call_module", self.path_of_module(m), args, kwargs)
            for block in m._gs_blocks:
                out = super().call_module(block, block.forward, (out,), {})
            return out
        return super().call_module(m, forward, args, kwargs)


def _torch_leaf(cls: type) -> bool:
    return (
        cls.__module__.startswith("torch.nn") or cls.__module__.startswith("torch.ao.nn")
    ) and not issubclass(cls, nn.Sequential)


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model``; an untraceable model is a MorphError, not a crash."""
    try:
        tracer = _Tracer()
        graph = tracer.trace(model)
        name = type(model).__name__
        return fx.GraphModule(tracer.root, graph, name)
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


def tensor_args(node: fx.Node) -> list[fx.Node]:
    """The graph-node operands of a node (flattening lists, e.g. of torch.cat)."""
    out: list[fx.Node] = []
    for a in list(node.args) + list(node.kwargs.values()):
        if isinstance(a, fx.Node):
            out.append(a)
        elif isinstance(a, list | tuple):
            out.extend(x for x in a if isinstance(x, fx.Node))
    return out


def cat_dim(node: fx.Node) -> int:
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    return int(cast(int, dim))


def propagate_shapes(
    gm: fx.GraphModule, shape: Sequence[int], dtype: torch.dtype | None = None
) -> None:
    """Run the traced model on a fake input of ``shape`` and ``dtype`` (default: the dtype of
    the model's parameters), storing every value's shape."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    ref = next(iter(gm.parameters()), None)
    if dtype is None:
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    device = ref.device if ref is not None else torch.device("cpu")
    was = {m: m.training for m in gm.modules()}
    gm.eval()
    try:
        # ShapeProp prints a traceback to stderr before it raises; the MorphError below is the
        # one line the user needs (and a guessed input shape fails on purpose, many times)
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            x = mode.from_tensor(torch.empty(tuple(shape), dtype=dtype, device=device))
            ShapeProp(gm, fake_mode=mode).propagate(x)
    except Exception as e:  # the user's forward on this input
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MorphError(f"forward on an input of shape {tuple(shape)} failed: {msg}") from None
    finally:
        for m, t in was.items():
            m.train(t)


def input_shape_of(
    model: nn.Module, example: torch.Tensor | Sequence[int] | None
) -> tuple[int, ...]:
    if isinstance(example, torch.Tensor):
        return tuple(example.shape)
    if example is not None:
        return tuple(int(s) for s in example)
    return guess_input_shape(model)


def guess_input_shape(model: nn.Module) -> tuple[int, ...]:
    """A batch shape the model accepts, guessed from its first layer: ``(2, in_features)`` or
    ``(2, 8, in_features)`` for a Linear (sequences first in a model with recurrent or attention
    layers), else square inputs of a few common sizes; MorphError if none works."""
    first = next((m for m in model.modules() if isinstance(m, WEIGHTED)), None)
    if first is None:
        raise MorphError("cannot guess the model's input shape; pass example_input")
    candidates: list[tuple[int, ...]]
    if isinstance(first, nn.Linear):  # features, or a sequence of them (tokens, time steps)
        candidates = [(2, first.in_features), (2, 8, first.in_features)]
        if any(isinstance(m, SEQUENCE) for m in model.modules()):
            candidates.reverse()  # a recurrent layer would take (2, features) as one sequence
    else:
        dims = len(cast("tuple[int, ...]", first.kernel_size))
        sizes = [8, 16, 28, 32, 40, 64, 224] + list(range(1, 65)) if dims < 3 else [8, 16, 32]
        candidates = [(2, first.in_channels, *([s] * dims)) for s in dict.fromkeys(sizes)]
    gm = trace(model)
    log = logging.getLogger("torch._subclasses.fake_tensor")
    level = log.level
    log.setLevel(logging.CRITICAL)  # a failed probe logs an error per op
    try:
        for shape in candidates:
            try:
                propagate_shapes(gm, shape)
                return shape
            except MorphError:
                continue
    finally:
        log.setLevel(level)
    raise MorphError("cannot guess the model's input shape; pass example_input")
