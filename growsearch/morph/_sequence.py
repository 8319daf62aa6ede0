"""Net2WiderNet inside torch's sequence layers: ``nn.RNN``/``nn.GRU``/``nn.LSTM`` and
``nn.MultiheadAttention``.

These are leaf modules with packed weights and tuple outputs, so the coupling walk
(:mod:`growsearch.morph._coupling`) treats each as a whole, and this module does its surgery.

**Recurrent layers.** The hidden size ``H`` is a channel space the layer produces: its outputs
``out`` (``H`` per direction, the directions side by side), ``h_n`` and ``c_n`` (``H`` on the last
axis) and its initial state ``h0``/``c0`` all carry it. Widening it to ``W`` with the mapping
``g`` (new unit ``j`` a replica of unit ``g(j)``) remaps every gate's rows of ``weight_ih``,
``weight_hh`` and the biases, and splits the columns that read the hidden state (``weight_hh``,
and the next layer's ``weight_ih``) over the replicas. By induction over time steps, replicas
hold equal states when their initial states are equal (zero, or an ``h0`` widened alongside),
so the child computes its parent's function. With ``zero`` the new units get fresh incoming
weights and zero outgoing ones: their states never reach an old unit. A widening *upstream*
reaches the layer as a reader: the input columns of the first layer's ``weight_ih`` are split.

**Attention.** ``nn.MultiheadAttention``'s internal width is its ``embed_dim``, the width of its
inputs and outputs: in a transformer block it sits on the residual stream, so it both reads
and writes the stream's width group. Widening the stream from ``E`` to ``W`` splits the input
columns of ``in_proj_weight``, remaps the rows of ``out_proj`` like any producer, and grows the
inside by ``W - E`` units: as new heads of the same head dimension when ``W - E`` is a multiple
of it (their ``out_proj`` columns zero, so they add nothing), else by a larger head dimension
when ``W`` is a multiple of the head count (the new query rows zero, the old ones scaled by
``sqrt(d' / d)`` so every score ``q·k / sqrt(d')`` is unchanged, the new value dimensions read
by zero ``out_proj`` columns). Both are exact.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from growsearch.morph import _functional as Fm

RNNS = (nn.RNN, nn.GRU, nn.LSTM)
ATTENTION = (nn.MultiheadAttention,)
TRANSFORMER_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
TRANSFORMERS = TRANSFORMER_LAYERS + (nn.TransformerEncoder, nn.TransformerDecoder)
"""torch's transformer layers and stacks: their ``d_model`` is the width of their inputs and
outputs, so the residual stream passes them as one width group."""
SEQUENCE = RNNS + ATTENTION + TRANSFORMERS


def attentions(m: nn.Module) -> list[nn.MultiheadAttention]:
    """The multi-head attentions a widening through ``m`` (an attention, a transformer layer or
    stack) grows."""
    return [a for a in m.modules() if isinstance(a, nn.MultiheadAttention)]


def transformer_layers(m: nn.Module) -> list[nn.Module]:
    """The layers of a transformer stack (``m`` itself for one layer)."""
    return list(m.layers) if isinstance(m, nn.TransformerEncoder | nn.TransformerDecoder) else [m]


def gates(m: nn.Module) -> int:
    """Row blocks of a recurrent layer's weights: 4 (LSTM), 3 (GRU) or 1."""
    return 4 if isinstance(m, nn.LSTM) else 3 if isinstance(m, nn.GRU) else 1


def directions(m: nn.Module) -> int:
    return 2 if getattr(m, "bidirectional", False) else 1


def rnn_refusal(m: nn.Module) -> str | None:
    """Why the hidden size of recurrent layer ``m`` cannot be widened exactly, or None."""
    if getattr(m, "proj_size", 0):
        return (
            f"proj_size={m.proj_size}: its outputs are a projection of the hidden state, "  # type: ignore[attr-defined]
            "not the hidden state; widen a layer that reads them instead"
        )
    return None


def attention_refusal(m: nn.MultiheadAttention) -> str | None:
    """Why ``m``'s embedding width cannot follow a widening exactly, or None."""
    if not m._qkv_same_embed_dim:
        return (
            f"kdim={m.kdim} and vdim={m.vdim} differ from embed_dim={m.embed_dim}: keys and values "
            "come from another width, which cannot grow with the queries'"
        )
    if m.bias_k is not None:
        return "add_bias_kv=True: its learned key/value biases are not supported"
    return None


def attention_growth(m: nn.MultiheadAttention, width: int) -> str | None:
    """How ``m`` grows to ``width``: ``"heads"``, ``"head_dim"``, or None if neither fits."""
    e, h = m.embed_dim, m.num_heads
    d = e // h
    if (width - e) % d == 0:
        return "heads"
    if width % h == 0:
        return "head_dim"
    return None


def _rnn_params(m: nn.Module) -> list[tuple[int, str]]:
    """(layer, direction suffix) of every weight set of a recurrent layer."""
    suffixes = ["", "_reverse"][: directions(m)]
    return [(k, s) for k in range(m.num_layers) for s in suffixes]  # type: ignore[arg-type]


def _set(m: nn.Module, attr: str, value: torch.Tensor) -> None:
    old = getattr(m, attr)
    setattr(m, attr, nn.Parameter(value.contiguous(), requires_grad=old.requires_grad))


def _uniform(shape: tuple[int, ...], bound: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=gen) * 2 - 1) * bound


def widen_rnn_hidden(
    m: nn.Module,
    mapping: torch.Tensor,
    n: int,
    width: int,
    *,
    fresh_new: bool,
    split: tuple[float, torch.Generator] | None,
    noise: tuple[float, torch.Generator] | None,
    seed: int,
    fresh_out: bool = False,
) -> None:
    """Widen recurrent layer ``m``'s hidden size from ``n`` to ``width`` in place.

    ``split`` (std, generator): the columns that read the hidden state are split over the
    replicas (``net2net``); None: the new units' columns are zero (``zero``, ``random-pad``).
    ``fresh_new``: the new units' rows are drawn afresh (torch's default bound), else copies.
    ``noise``: relative noise on the copies' rows (``net2net-noise``). ``fresh_out``: the new
    units' zero columns are drawn afresh too (``random-pad``: a network of that size from
    scratch, not a function-preserving child).
    """
    g = gates(m)
    rows = Fm.View(0, 0, n, 1, g)
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(width)
    new = (~Fm.first_occurrence(mapping)).to(next(m.parameters()).device)

    def rows_of(t: torch.Tensor) -> torch.Tensor:
        out = Fm.remap(t, 0, mapping, rows)
        chunks = out.view(g, width, *out.shape[1:])
        mask = new.view(1, width, *([1] * (out.dim() - 1)))
        if fresh_new:
            fresh = _uniform(tuple(chunks.shape), bound, gen).to(out)
            chunks = torch.where(mask, fresh, chunks)
        elif noise is not None:
            std, ngen = noise
            eps = torch.randn(tuple(chunks.shape), generator=ngen) * std * float(t.float().std())
            chunks = torch.where(mask, chunks + eps.to(out), chunks)
        return chunks.reshape(out.shape)

    def columns_of(t: torch.Tensor, outer: int) -> torch.Tensor:
        view = Fm.View(1, 0, n, 1, outer)
        if split is None:
            out = Fm.remap(t, 1, mapping, view, zero_new=True)
            if fresh_out:
                fresh = _uniform(tuple(out.shape), bound, gen).to(out)
                out = Fm.fill_new(out, fresh, 1, mapping, view)
            return out
        std, sgen = split
        return Fm.remap(t, 1, mapping, view, split=(n, std, sgen))

    for k, s in _rnn_params(m):
        w_ih = rows_of(getattr(m, f"weight_ih_l{k}{s}").detach())
        if k > 0:
            w_ih = columns_of(w_ih, directions(m))
        _set(m, f"weight_ih_l{k}{s}", w_ih)
        _set(
            m,
            f"weight_hh_l{k}{s}",
            columns_of(rows_of(getattr(m, f"weight_hh_l{k}{s}").detach()), 1),
        )
        if m.bias:  # type: ignore[attr-defined]
            for b in ("bias_ih", "bias_hh"):
                _set(m, f"{b}_l{k}{s}", rows_of(getattr(m, f"{b}_l{k}{s}").detach()))
    m.hidden_size = width  # type: ignore[assignment]
    _refresh_rnn(m)


def widen_rnn_input(m: nn.Module, mapping: torch.Tensor, view: Any, *, remap: Any) -> None:
    """Widen the inputs recurrent layer ``m`` reads (the first layer's ``weight_ih`` columns)
    in place; ``remap(weight, dim, view)`` is the consumer rule of the widening's init."""
    for s in ["", "_reverse"][: directions(m)]:
        w = remap(getattr(m, f"weight_ih_l0{s}").detach(), 1, view)
        _set(m, f"weight_ih_l0{s}", w)
        m.input_size = int(w.shape[1])  # type: ignore[assignment]
    _refresh_rnn(m)


def _refresh_rnn(m: nn.Module) -> None:
    """Re-derive the flat weight list after the parameters were replaced (cuDNN's packing)."""
    m._init_flat_weights()  # type: ignore[operator]


def widen_attention(
    m: nn.MultiheadAttention,
    mapping: torch.Tensor,
    n: int,
    width: int,
    view_in: Any,
    *,
    remap_in: Any,
    fresh_new: bool,
    seed: int,
    fresh_out: bool = False,
) -> None:
    """Widen ``m``'s embedding width from ``n`` to ``width`` in place.

    Its inputs are read by ``remap_in(weight, dim, view)`` (the consumer rule of the widening's
    init) along ``view_in``; its outputs are remapped like a producer's (new rows fresh when
    ``fresh_new``); the inside grows by new heads or a larger head dimension (exact either way,
    unless ``fresh_out`` draws the new inside units' ``out_proj`` columns afresh too).
    """
    how = attention_growth(m, width)
    assert how is not None  # checked when planning
    e, h = m.embed_dim, m.num_heads
    d = e // h
    gen = torch.Generator().manual_seed(seed)
    w_in = m.in_proj_weight.detach()  # (3E, E): q, k, v rows
    b_in = None if m.in_proj_bias is None else m.in_proj_bias.detach()
    w_out = m.out_proj.weight.detach()  # (E, E)
    b_out = None if m.out_proj.bias is None else m.out_proj.bias.detach()
    if how == "heads":  # the old units keep their places, the new heads follow
        keep = torch.arange(width) < e
        src = torch.arange(width).clamp(max=e - 1)
        new_heads, new_d = width // d, d
    else:  # every head gains dimensions at its end
        new_d, new_heads = width // h, h
        pos = torch.arange(new_d).repeat(h)
        keep = pos < d
        src = torch.arange(h).repeat_interleave(new_d) * d + pos.clamp(max=d - 1)

    keep, src = keep.to(w_in.device), src.to(w_in.device)
    # rows of q, k and v: old units in their new places, new units fresh (zero for q when the
    # head dimension grows, so the old dimensions alone make the scores)
    bound = 1.0 / math.sqrt(width)
    blocks = w_in.view(3, e, e)[:, src]  # (3, width, E)
    fresh = _uniform(tuple(blocks.shape), bound, gen).to(w_in)
    blocks = torch.where(keep[None, :, None], blocks, fresh)
    if b_in is not None:
        bias = torch.where(
            keep[None], b_in.view(3, e)[:, src], torch.zeros_like(b_in.view(3, e)[:, src])
        )
    if how == "head_dim":
        scale = math.sqrt(new_d / d)
        blocks[0] = torch.where(keep[:, None], blocks[0] * scale, torch.zeros_like(blocks[0]))
        if b_in is not None:
            bias[0] = bias[0] * scale
    w_in = remap_in(blocks.reshape(3 * width, e), 1, view_in)
    # out_proj: its columns read the inside (new ones zero), its rows write the stream
    unused = _uniform(tuple(w_out[:, src].shape), bound, gen) if fresh_out else None
    cols = torch.where(
        keep[None, :],
        w_out[:, src],
        torch.zeros_like(w_out[:, src]) if unused is None else unused.to(w_out),
    )
    rows = Fm.remap(cols, 0, mapping, Fm.View(0, 0, n))
    b_rows = None if b_out is None else Fm.remap(b_out, 0, mapping, Fm.View(0, 0, n))
    if fresh_new:
        new = (~Fm.first_occurrence(mapping)).to(rows.device)
        rows = torch.where(new[:, None], _uniform(tuple(rows.shape), bound, gen).to(rows), rows)
        if b_rows is not None:
            b_rows = torch.where(new, torch.zeros_like(b_rows), b_rows)
    _set(m, "in_proj_weight", w_in)
    if b_in is not None:
        _set(m, "in_proj_bias", bias.reshape(-1))
    _set(m.out_proj, "weight", rows)
    if b_rows is not None:
        _set(m.out_proj, "bias", b_rows)
    m.out_proj.in_features = m.out_proj.out_features = width
    m.embed_dim = m.kdim = m.vdim = width
    m.num_heads, m.head_dim = new_heads, new_d


def widen_transformer(
    m: nn.Module,
    mapping: torch.Tensor,
    n: int,
    width: int,
    view_in: Any,
    *,
    remap_in: Any,
    seed: int,
    fresh_out: bool = False,
) -> None:
    """Widen ``d_model`` of a transformer layer or stack ``m`` from ``n`` to ``width`` in place.

    Every attention grows as :func:`widen_attention` does; ``linear1`` reads the channels
    (``remap_in``), ``linear2`` writes them (its rows copied along ``mapping``) and the norms
    follow the mapping. The norms see the channels together, so ``mapping`` replicates every
    channel equally often (the widening is by an integer factor): their statistics stay put.
    """
    rows = Fm.View(0, 0, n)
    norms: list[nn.Module] = []
    for i, layer in enumerate(transformer_layers(m)):
        for k, attn in enumerate(attentions(layer)):
            widen_attention(
                attn, mapping, n, width, view_in, remap_in=remap_in, fresh_new=False,
                seed=seed + 7 * i + k, fresh_out=fresh_out,
            )  # fmt: skip
        fc1, fc2 = layer.linear1, layer.linear2
        assert isinstance(fc1, nn.Linear) and isinstance(fc2, nn.Linear)
        _set(fc1, "weight", remap_in(fc1.weight.detach(), 1, view_in))
        fc1.in_features = width
        _set(fc2, "weight", Fm.remap(fc2.weight.detach(), 0, mapping, rows))
        if fc2.bias is not None:
            _set(fc2, "bias", Fm.remap(fc2.bias.detach(), 0, mapping, rows))
        fc2.out_features = width
        norms += [x for x in layer.children() if isinstance(x, nn.LayerNorm)]
    if getattr(m, "norm", None) is not None and m is not transformer_layers(m)[0]:
        norms.append(m.norm)  # type: ignore[arg-type]
    for norm in norms:
        for attr in ("weight", "bias"):
            t = getattr(norm, attr, None)
            if t is not None:
                _set(norm, attr, Fm.remap(t.detach(), 0, mapping, rows))
        norm.normalized_shape = (width,)  # type: ignore[assignment]


__all__ = [
    "ATTENTION",
    "RNNS",
    "SEQUENCE",
    "TRANSFORMERS",
    "TRANSFORMER_LAYERS",
    "attentions",
    "transformer_layers",
    "widen_transformer",
    "attention_growth",
    "attention_refusal",
    "gates",
    "rnn_refusal",
    "widen_attention",
    "widen_rnn_hidden",
    "widen_rnn_input",
]
