"""Net2WiderNet on any fx-traceable model: :func:`widen`."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from growsearch.exceptions import MorphError
from growsearch.morph import _functional as Fm
from growsearch.morph._coupling import (
    NORMS,
    Graph,
    View,
    WidenPlan,
)
from growsearch.morph._inits import INITS, WidenDefaults, check_init, reinitialise
from growsearch.morph._sequence import (
    RNNS,
    attention_growth,
    attentions,
    widen_attention,
    widen_rnn_hidden,
    widen_rnn_input,
    widen_transformer,
)
from growsearch.morph._trace import (
    CONV,
    propagate_shapes,
    trace,
    weight_axes,
)

_Layer = (
    nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d
    | nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d | nn.Embedding
)  # fmt: skip


def widen(
    model: nn.Module,
    name: str,
    width: int,
    *,
    init: str = "net2net",
    seed: int = 0,
    split_std: float | None = None,
    noise_std: float | None = None,
    example_input: torch.Tensor | Sequence[int] | None = None,
) -> nn.Module:
    """Return a copy of ``model`` whose Linear/Conv/ConvTranspose/Embedding ``name`` has
    ``width`` outputs.

    Every layer coupled to those outputs changes with it (see :mod:`growsearch.morph._coupling`):
    the other producers of a residual add or a channel-wise product widen with the same mapping,
    BatchNorm statistics, depthwise kernels and per-channel parameters follow the mapping,
    flattens, concats, permutes and reshapes shift the columns, and the layers that read the
    channels get their input weights split over the replicas.

    Args:
        model: any torch.fx-traceable module; it is not modified.
        name: the layer, as in ``model.named_modules()``; any producer of a width group names
            the whole group.
        width: the new number of outputs (greater than the current one; a multiple of it when
            a LayerNorm or GroupNorm normalises the channels together).
        init: one of ``net2net`` (exact; replicas' outgoing weights split at random, which keeps
            the function and breaks their symmetry), ``net2net-noise`` (equal split plus noise on
            the replicas' incoming weights, the paper's variant; approximate), ``zero`` (new units
            freshly initialised with zero outgoing weights; exact), ``random-pad`` (new units
            freshly initialised; approximate) or ``scratch`` (the whole child freshly initialised).
        seed: seeds the mapping, the split and any fresh initialisation.
        split_std: spread of the random split for ``net2net`` (0 gives the equal split).
        noise_std: relative noise for ``net2net-noise``.
        example_input: an input batch or its shape, to know every value's shape; guessed from
            the first layer when None.

    Raises:
        MorphError: the model cannot be traced or the widening cannot be done exactly; the
            message names the module and the reason.
    """
    check_init(init)
    graph = Graph(model, example_input)
    defaults = WidenDefaults()
    split_std = defaults.split_std if split_std is None else split_std
    noise_std = defaults.noise_std if noise_std is None else noise_std
    plan = graph.plan(name)
    n = plan.n
    if not isinstance(width, int) or isinstance(width, bool) or width <= n:
        raise MorphError(f"widen {name}: new width must be an integer > {n}, got {width!r}")
    if plan.uniform and width % n:
        raise MorphError(
            f"widen {name}: {', '.join(plan.norm_modules)} normalise the channels together, so the "
            f"new width must be a multiple of {n}, got {width}"
        )
    for _, target, _ in plan.sequence:
        for attn in attentions(graph.modules[target]):
            if attention_growth(attn, width) is None:
                d = attn.embed_dim // attn.num_heads
                raise MorphError(
                    f"widen {name}: attention in '{target}' has {attn.num_heads} heads of "
                    f"dimension {d}, so its new width must add whole heads (a multiple of {d} "
                    f"more) or be a multiple of {attn.num_heads}, got {width}"
                )
    gen = torch.Generator().manual_seed(seed)
    mapping = _mapping(plan, n, width, gen)
    child = copy.deepcopy(model)
    # new units start fresh, except under "zero" when a normalisation sees the channels
    # together: there they are copies (its statistics stay put) whose outgoing weights are zero
    fresh_new = init == "random-pad" or (init == "zero" and not plan.uniform)
    trivial = View(0, 0, n)

    def read(w: torch.Tensor, in_dim: int, view: View, fresh: Any = None) -> torch.Tensor:
        """Weight ``w`` of a layer that reads the channels along ``in_dim``: its columns split
        over the replicas (``net2net``), or zero for the new units (``zero``), or fresh ones
        (``random-pad``: from ``fresh(shape)``, by default uniform in ±1/sqrt(fan-in))."""
        if init in ("zero", "random-pad"):
            new_w = Fm.remap(w, in_dim, mapping, view, zero_new=True)
            if init == "random-pad":
                if fresh is None:
                    bound = 1.0 / math.sqrt(new_w.shape[in_dim])
                    drawn = (torch.rand(new_w.shape, generator=gen) * 2 - 1) * bound
                else:
                    drawn = fresh(new_w.shape)
                new_w = Fm.fill_new(new_w, drawn.to(new_w), in_dim, mapping, view)
            return new_w
        std = split_std if init == "net2net" else 0.0
        return Fm.remap(w, in_dim, mapping, view, split=(n, std, gen))

    for target in plan.producers:
        m = child.get_submodule(target)
        if isinstance(m, RNNS):
            widen_rnn_hidden(
                m, mapping, n, width, fresh_new=fresh_new,
                split=None if init in ("zero", "random-pad") else
                (split_std if init == "net2net" else 0.0, gen),
                noise=(noise_std, gen) if init == "net2net-noise" else None, seed=seed + 1,
                fresh_out=init == "random-pad",
            )  # fmt: skip
            continue
        assert isinstance(m, _Layer)  # the other producers are Linear/Conv/Embedding
        out_dim, _ = weight_axes(m)
        w = Fm.remap(m.weight.detach(), out_dim, mapping, trivial)
        bias = getattr(m, "bias", None)  # an Embedding has none
        b = None if bias is None else Fm.remap(bias.detach(), 0, mapping, trivial)
        new_units = ~Fm.first_occurrence(mapping)
        units = w.transpose(0, out_dim)  # a view: the output units along its first axis
        if fresh_new:
            fw, fb = _fresh(m, out=width, seed=seed + 1)
            units[new_units] = fw.transpose(0, out_dim)[new_units].to(w)
            if b is not None and fb is not None:
                b[new_units] = fb[new_units].to(b)
        elif init == "net2net-noise":
            noise = (
                torch.randn(units[new_units].shape, generator=gen)
                * noise_std
                * float(w.float().std())
            )
            units[new_units] += noise.to(w)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            w[m.padding_idx] = 0.0  # the padding id embeds to zeros, and is never trained
        _set(m, "weight", w)
        if b is not None:
            _set(m, "bias", b)
        _resize(m, out=w.shape[out_dim])

    resized: set[str] = set()
    for touch in plan.follow:
        if touch.attr == "<attr>":
            t = _get_attr(child, touch.target)
            _set_attr(child, touch.target, Fm.remap(t.detach(), touch.dim, mapping, touch.view))
            continue
        m = child.get_submodule(touch.target)
        added = (width - n) * touch.view.inner * touch.view.outer
        if touch.attr == "<in>":  # a depthwise conv: its groups follow its inputs
            assert isinstance(m, CONV)
            m.in_channels += added
            m.groups += added
            continue
        if touch.attr != "<size>":
            new = Fm.remap(getattr(m, touch.attr).detach(), touch.dim, mapping, touch.view)
            if fresh_new and touch.attr in _NORM_DEFAULTS and not isinstance(m, CONV):
                idx = Fm.new_positions(mapping, touch.view).to(new.device)
                new.index_fill_(touch.dim, idx, _NORM_DEFAULTS[touch.attr])
            _set(m, touch.attr, new)
        if touch.target not in resized:
            resized.add(touch.target)
            _resize_follow(m, touch.dim, added)

    for target, view in plan.consumers:
        m = child.get_submodule(target)
        assert isinstance(m, _Layer)
        _, in_dim = weight_axes(m)
        new_w = read(
            m.weight.detach(), in_dim, view,
            lambda shape, m=m, d=in_dim: _fresh(m, inp=shape[d], seed=seed + 2)[0],
        )  # fmt: skip
        _set(m, "weight", new_w)
        _resize(m, inp=new_w.shape[in_dim])

    for role, target, view in plan.sequence:
        m = child.get_submodule(target)
        if role == "rnn_in":
            widen_rnn_input(m, mapping, view, remap=read)
        elif role == "transformer":
            widen_transformer(
                m, mapping, n, width, view, remap_in=read, seed=seed + 3,
                fresh_out=init == "random-pad",
            )  # fmt: skip
        else:
            widen_attention(
                m, mapping, n, width, view, remap_in=read, fresh_new=fresh_new,  # type: ignore[arg-type]
                seed=seed + 3, fresh_out=init == "random-pad",
            )  # fmt: skip

    if init == "scratch":
        reinitialise(child, seed)
    _check_runs(child, graph, name)
    return child


def _mapping(plan: WidenPlan, n: int, width: int, gen: torch.Generator) -> torch.Tensor:
    """g: new unit -> source unit. Exact copies of every unit the same number of times when a
    normalisation sees the channels together (grouped per GroupNorm group), else the first n
    units map to themselves and the rest are drawn at random."""
    if not plan.uniform:
        return Fm.make_mapping(n, width, gen)
    k, groups = width // n, plan.groups
    per = n // groups  # channels per GroupNorm group (LayerNorm: one group)
    j = torch.arange(width)
    g, r = j // (k * per), j % (k * per)
    return g * per + r % per


def _fresh(
    m: _Layer, *, out: int | None = None, inp: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Default-initialised (seeded) weight and bias of a layer like ``m`` with new sizes
    (torch's default bound, 1/sqrt(fan_in) with fan_in computed from the weight's shape as torch
    does it, also for a transposed convolution's (in, out, ...) weight)."""
    shape = list(m.weight.shape)
    out_dim, in_dim = weight_axes(m)
    if out is not None:
        shape[out_dim] = out
    if inp is not None:
        shape[in_dim] = inp
    gen = torch.Generator().manual_seed(seed)
    if isinstance(m, nn.Embedding):  # torch's default: N(0, 1), the padding row zero
        w = torch.randn(shape, generator=gen)
        if m.padding_idx is not None:
            w[m.padding_idx] = 0.0
        return w, None
    fan_in = math.prod(shape[1:])
    bound = 1.0 / math.sqrt(max(fan_in, 1))
    w = (torch.rand(shape, generator=gen) * 2 - 1) * bound
    b = None if m.bias is None else (torch.rand(shape[out_dim], generator=gen) * 2 - 1) * bound  # type: ignore[union-attr]
    return w, b


_NORM_DEFAULTS = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
"""What the new units of a normalisation start from with the zero/random-pad inits."""


def _set(m: nn.Module, attr: str, value: torch.Tensor) -> None:
    old = getattr(m, attr)
    if isinstance(old, nn.Parameter):
        setattr(m, attr, nn.Parameter(value.contiguous(), requires_grad=old.requires_grad))
    else:
        m.register_buffer(attr, value.contiguous())


def _resize(m: _Layer, *, out: int | None = None, inp: int | None = None) -> None:
    if isinstance(m, nn.Embedding):
        m.embedding_dim = out if out is not None else m.embedding_dim
    elif isinstance(m, nn.Linear):
        m.out_features = out if out is not None else m.out_features
        m.in_features = inp if inp is not None else m.in_features
    else:
        m.out_channels = out if out is not None else m.out_channels
        if inp is not None:
            m.in_channels = inp * m.groups


def _resize_follow(m: nn.Module, dim: int, added: int) -> None:
    """Size attributes of a module whose tensors follow the mapping (once per module)."""
    if isinstance(m, CONV):  # depthwise: its input side is the "<in>" touch
        m.out_channels += added
    elif isinstance(m, nn.GroupNorm):
        if m.num_groups == m.num_channels:
            m.num_groups += added
        m.num_channels += added
    elif isinstance(m, nn.LayerNorm):
        ns = list(m.normalized_shape)
        ns[dim] += added
        m.normalized_shape = tuple(ns)
    elif isinstance(m, nn.PReLU):
        m.num_parameters += added
    elif isinstance(m, NORMS):
        m.num_features += added


def _get_attr(model: nn.Module, path: str) -> torch.Tensor:
    owner, _, attr = path.rpartition(".")
    return getattr(model.get_submodule(owner) if owner else model, attr)


def _set_attr(model: nn.Module, path: str, value: torch.Tensor) -> None:
    owner, _, attr = path.rpartition(".")
    _set(model.get_submodule(owner) if owner else model, attr, value)


def _check_runs(child: nn.Module, graph: Graph, name: str) -> None:
    """The child's forward still runs: a forward that hard-codes a size fails here, not later."""
    meta = next(n for n in graph.gm.graph.nodes if n.op == "placeholder").meta["tensor_meta"]
    try:
        propagate_shapes(trace(child), tuple(meta.shape), meta.dtype)
    except MorphError as e:
        raise MorphError(
            f"widen {name}: the widened model's forward fails ({e}); does it hard-code a size?"
        ) from None


__all__ = ["INITS", "widen"]
