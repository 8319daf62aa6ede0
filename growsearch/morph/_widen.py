"""Net2WiderNet on any fx-traceable model: :func:`widen`."""

from __future__ import annotations

import copy

import torch
from torch import nn

from growsearch.exceptions import MorphError
from growsearch.morph import _functional as Fm
from growsearch.morph._graph import View, analyse_widen, trace
from growsearch.morph._inits import INITS, WidenDefaults, check_init, reinitialise

_Layer = nn.Linear | nn.Conv1d | nn.Conv2d


def widen(
    model: nn.Module,
    name: str,
    width: int,
    *,
    init: str = "net2net",
    seed: int = 0,
    split_std: float | None = None,
    noise_std: float | None = None,
) -> nn.Module:
    """Return a copy of ``model`` whose Linear/Conv ``name`` has ``width`` outputs.

    Every layer coupled to those outputs is fixed: BatchNorm statistics follow the mapping,
    flattens and concats shift the columns, residual adds widen all coupled layers together,
    and the layers that read the channels get their input weights split over the replicas.

    Args:
        model: any torch.fx-traceable module; it is not modified.
        name: the layer, as in ``model.named_modules()``.
        width: the new number of outputs (greater than the current one).
        init: one of ``net2net`` (exact; replicas' outgoing weights split at random, which keeps
            the function and breaks their symmetry), ``net2net-noise`` (equal split plus noise on
            the replicas' incoming weights, the paper's variant; approximate), ``zero`` (new units
            freshly initialised with zero outgoing weights; exact), ``random-pad`` (new units
            freshly initialised; approximate) or ``scratch`` (the whole child freshly initialised).
        seed: seeds the mapping, the split and any fresh initialisation.
        split_std: spread of the random split for ``net2net`` (0 gives the equal split).
        noise_std: relative noise for ``net2net-noise``.

    Raises:
        MorphError: the model cannot be traced or the widening cannot be done exactly; the
            message names the module and the reason.
    """
    check_init(init)
    defaults = WidenDefaults()
    split_std = defaults.split_std if split_std is None else split_std
    noise_std = defaults.noise_std if noise_std is None else noise_std
    gm = trace(model)
    plan = analyse_widen(gm, name)
    n = plan.n
    if not isinstance(width, int) or width <= n:
        raise MorphError(f"widen {name}: new width must be an integer > {n}, got {width!r}")
    gen = torch.Generator().manual_seed(seed)
    mapping = Fm.make_mapping(n, width, gen)
    child = copy.deepcopy(model)
    fresh_new_units = init in ("zero", "random-pad")

    for target in plan.producers:
        old = child.get_submodule(target)
        assert isinstance(old, _Layer)  # analyse_widen only returns Linear/Conv producers
        fresh = _resized(old, out=_out(old) + width - n, seed=seed + 1, init=fresh_new_units)
        w = Fm.remap_range(old.weight.detach(), mapping, 0, 0, n)
        b = None if old.bias is None else Fm.remap_range(old.bias.detach(), mapping, 0, 0, n)
        if fresh_new_units:
            w[n:] = fresh.weight.detach()[n:]
            if b is not None:
                assert fresh.bias is not None  # _resized keeps old's bias
                b[n:] = fresh.bias.detach()[n:]
        elif init == "net2net-noise":
            noise = torch.randn(w[n:].shape, generator=gen) * noise_std * float(w.std())
            w[n:] += noise.to(w)
        _assign(fresh, w, b)
        child.set_submodule(target, fresh)

    for target, view in plan.per_channel:
        old = child.get_submodule(target)
        _widen_batchnorm(child, target, old, mapping, n, view, fresh_new_units)

    for target, view in plan.consumers:
        # a module can be both producer (already widened above) and consumer
        old = child.get_submodule(target)
        assert isinstance(old, _Layer)  # consumers are Linear/Conv too
        in_features = old.in_features if isinstance(old, nn.Linear) else old.in_channels
        block = 1
        if view.flat_total is not None:
            block = in_features // view.flat_total
            if block * view.flat_total != in_features:
                raise MorphError(
                    f"widen {name}: '{target}' has {in_features} inputs, not a multiple of "
                    f"the {view.flat_total} flattened channels"
                )
        offset = view.offset * block
        added = (width - n) * block
        fresh = _resized(old, inp=in_features + added, seed=seed + 2, init=init == "random-pad")
        w = old.weight.detach()
        full_mapping = mapping
        if init in ("zero", "random-pad"):
            new_w = Fm.widen_in(w, full_mapping, offset, n, block, None)
            if init == "random-pad":
                cols = fresh.weight.detach().narrow(1, offset + n * block, added)
                new_w[:, offset + n * block : offset + n * block + added] = cols
        else:
            std = split_std if init == "net2net" else 0.0
            shape = (w.shape[0], width, block) + tuple(w.shape[2:])
            factors = Fm.split_factors(mapping, n, shape, std, gen)
            new_w = Fm.widen_in(w, mapping, offset, n, block, factors)
        _assign(fresh, new_w, None if old.bias is None else old.bias.detach().clone())
        child.set_submodule(target, fresh)

    if init == "scratch":
        reinitialise(child, seed)
    return child


def _out(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels  # type: ignore[return-value]


def _resized(
    m: nn.Module,
    *,
    out: int | None = None,
    inp: int | None = None,
    seed: int = 0,
    init: bool = True,
) -> _Layer:
    """A module like ``m`` (same class and options) with new in/out sizes; default-initialised
    (seeded) if ``init``, else left uninitialised for the caller to fill."""
    make = nn.utils.skip_init if not init else (lambda cls, *a, **k: cls(*a, **k))
    if isinstance(m, nn.Linear):
        o, i = out or m.out_features, inp or m.in_features
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            new = make(nn.Linear, i, o, bias=m.bias is not None)
    elif isinstance(m, nn.Conv1d | nn.Conv2d):
        o, i = out or m.out_channels, inp or m.in_channels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            new = make(
                type(m), i, o, m.kernel_size, stride=m.stride, padding=m.padding, dilation=m.dilation,
                groups=m.groups, bias=m.bias is not None, padding_mode=m.padding_mode,
            )  # fmt: skip
    else:  # pragma: no cover - analyse_widen only returns these types
        raise MorphError(f"cannot resize {type(m).__name__}")
    new.train(m.training)
    return new.to(device=m.weight.device, dtype=m.weight.dtype)


def _assign(m: _Layer, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    with torch.no_grad():
        m.weight.copy_(weight)
        if bias is not None:
            assert m.bias is not None  # callers pass a bias only for layers that have one
            m.bias.copy_(bias)


def _widen_batchnorm(
    child: nn.Module,
    target: str,
    old: nn.Module,
    mapping: torch.Tensor,
    n: int,
    view: View,
    fresh: bool,
) -> None:
    """Per-channel layers follow the mapping: replicas copy γ, β, running mean and var."""
    assert isinstance(old, nn.BatchNorm1d | nn.BatchNorm2d)
    block = 1
    if view.flat_total is not None:
        block = old.num_features // view.flat_total
    feat_map = Fm.expand_to_block(mapping, block)
    offset, nf = view.offset * block, n * block
    added = (mapping.numel() - n) * block
    new = copy.deepcopy(old)
    new.num_features = old.num_features + added
    defaults = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
    for attr, default in defaults.items():
        t = getattr(old, attr)
        if t is None:
            continue
        v = Fm.remap_range(t.detach(), feat_map, 0, offset, nf)
        if fresh:  # new units are fresh: identity normalisation
            v[offset + nf : offset + nf + added] = default
        if isinstance(t, nn.Parameter):
            setattr(new, attr, nn.Parameter(v, requires_grad=t.requires_grad))
        else:
            new.register_buffer(attr, v)
    child.set_submodule(target, new)


__all__ = ["INITS", "widen"]
