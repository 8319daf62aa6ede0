"""Pure tensor functions of the Net2Net weight surgery (no modules, no graphs).

Shapes: a weight is ``(out, in, *kernel)``; where the channels sit along a dimension is a
:class:`View` (an offset, the sub-axis total, features per channel and repeats).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class View:
    """Where a channel space of ``n`` channels sits in one axis of a value.

    Along ``axis`` the index is ``((o * total) + offset + c) * inner + i`` for ``o < outer``,
    ``c < n`` and ``i < inner``: ``total`` is the size of the channel sub-axis (larger than ``n``
    after a concat), ``inner`` the features per channel (after a flatten of trailing dimensions
    or a depthwise multiplier), ``outer`` the repeats (after a flatten of leading dimensions).
    """

    axis: int
    offset: int
    total: int
    inner: int = 1
    outer: int = 1

    @property
    def plain(self) -> bool:
        """The axis holds exactly the channel space, nothing else."""
        return self.offset == 0 and self.inner == 1 and self.outer == 1


def make_mapping(n: int, q: int, generator: torch.Generator) -> torch.Tensor:
    """g: {0..q-1} → {0..n-1}; the first n units map to themselves, the rest are drawn at random."""
    extra = torch.randint(0, n, (q - n,), generator=generator)
    return torch.cat([torch.arange(n), extra])


def replica_counts(mapping: torch.Tensor, n: int) -> torch.Tensor:
    """|{j : g(j) = i}| for every source unit i."""
    return torch.bincount(mapping, minlength=n)


def split_factors(
    mapping: torch.Tensor,
    n: int,
    shape: tuple[int, ...],
    std: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Factors that split each source unit's outgoing weights over its replicas.

    Returns a tensor of ``shape`` = ``(out, q, *rest)``; for every index other than the replica
    axis, the factors of the replicas of one source unit sum to exactly one, so the widened layer
    computes the same function. ``std == 0`` gives the paper's equal split 1/count; ``std > 0``
    adds zero-sum Gaussian noise per weight, which breaks the symmetry between replicas (equal
    copies with equal halves receive equal gradients forever).
    """
    counts = replica_counts(mapping, n)
    q = mapping.numel()
    view = [1, q] + [1] * (len(shape) - 2)
    factors = (1.0 / counts[mapping].to(torch.float32)).reshape(view).expand(shape).clone()
    replicated = (counts[mapping] > 1).nonzero().flatten()  # units whose group has replicas
    if std == 0 or replicated.numel() == 0:
        return factors
    sub = mapping[replicated]
    sub_shape = (shape[0], replicated.numel()) + tuple(shape[2:])
    eps = torch.randn(sub_shape, generator=generator) * std
    # subtract each group's mean so the noise of a source unit's replicas sums to zero
    group_sum = torch.zeros((shape[0], n) + tuple(shape[2:]))
    group_sum.index_add_(1, sub, eps)
    sub_view = [1, replicated.numel()] + [1] * (len(shape) - 2)
    mean = group_sum.index_select(1, sub) / counts[sub].to(torch.float32).reshape(sub_view)
    factors.index_add_(1, replicated, eps - mean)
    return factors


def identity_weight(channels: int, kernel: tuple[int, ...]) -> torch.Tensor:
    """A Linear (``kernel == ()``) or Conv weight computing the identity: the centre tap
    (index ``k // 2`` in every spatial dimension) of channel i's own kernel is 1."""
    w = torch.zeros((channels, channels) + kernel)
    centre = tuple(k // 2 for k in kernel)
    idx = torch.arange(channels)
    w[(idx, idx) + centre] = 1.0
    return w


def first_occurrence(mapping: torch.Tensor) -> torch.Tensor:
    """Mask of the units that are the first replica of their source (the "old" units)."""
    seen: set[int] = set()
    mask = torch.zeros(mapping.numel(), dtype=torch.bool)
    for j, i in enumerate(mapping.tolist()):
        if i not in seen:
            seen.add(i)
            mask[j] = True
    return mask


def remap(
    t: torch.Tensor,
    dim: int,
    mapping: torch.Tensor,
    view: View,
    *,
    zero_new: bool = False,
    split: tuple[int, float, torch.Generator] | None = None,
) -> torch.Tensor:
    """Remap one channel range of ``t`` along ``dim``.

    Along ``dim`` the index is ``((o * total) + offset + c) * inner + i`` (see
    :class:`View`); the ``n`` channels at ``offset`` become
    ``mapping.numel()`` channels, channel j a copy of channel ``mapping[j]``. With ``split``
    ``(n, std, generator)`` (the input columns of a layer that reads the channels, ``dim == 1``)
    each replica's copy is multiplied by its share of the source (:func:`split_factors`); with
    ``zero_new`` the replicas other than the first of each source are zero.
    """
    shape = tuple(t.shape)
    outer, total, inner = view.outer, view.total, view.inner
    src_n = split[0] if split is not None else _span(mapping)
    t2 = t.reshape(shape[:dim] + (outer, total, inner) + shape[dim + 1 :])
    d = dim + 1
    before = t2.narrow(d, 0, view.offset)
    mid = t2.narrow(d, view.offset, src_n).index_select(d, mapping.to(t.device))
    after = t2.narrow(d, view.offset + src_n, total - view.offset - src_n)
    if zero_new:
        keep = first_occurrence(mapping).to(t.device)
        shape_mask = [1] * mid.dim()
        shape_mask[d] = -1
        mid = mid * keep.reshape(shape_mask).to(mid.dtype)
    elif split is not None:
        _, std, gen = split
        moved = mid.movedim(d, 1)  # (out, q, outer, inner, *kernel)
        factors = split_factors(mapping, src_n, tuple(moved.shape), std, gen)
        mid = (moved.float() * factors.to(t.device)).to(t.dtype).movedim(1, d)
    out = torch.cat([before, mid, after], dim=d)
    return out.reshape(shape[:dim] + (-1,) + shape[dim + 1 :])


def _span(mapping: torch.Tensor) -> int:
    """The number of source channels: every source appears in a mapping."""
    return int(mapping.max()) + 1


def new_positions(mapping: torch.Tensor, view: View) -> torch.Tensor:
    """Indices, along a remapped axis, of the replicas that are not their source's first."""
    q = mapping.numel()
    n = _span(mapping)
    total_new = view.total - n + q
    idx = torch.arange(view.outer * total_new * view.inner).reshape(
        view.outer, total_new, view.inner
    )
    new = ~first_occurrence(mapping)
    return idx[:, view.offset : view.offset + q][:, new].reshape(-1)


def fill_new(
    t: torch.Tensor, fresh: torch.Tensor, dim: int, mapping: torch.Tensor, view: View
) -> torch.Tensor:
    """``t`` with the new replicas' entries along ``dim`` taken from ``fresh`` (same shape)."""
    idx = new_positions(mapping, view).to(t.device)
    out = t.clone()
    out.index_copy_(dim, idx, fresh.index_select(dim, idx))
    return out
