"""Pure tensor functions of the Net2Net weight surgery (no modules, no graphs).

Shapes: a weight is ``(out, in, *kernel)``; a channel range of the input dimension is given by an
``offset`` and a ``block`` (the number of features per channel: 1, or H×W after a flatten).
"""

from __future__ import annotations

import torch


def make_mapping(n: int, q: int, generator: torch.Generator) -> torch.Tensor:
    """g: {0..q-1} → {0..n-1}; the first n units map to themselves, the rest are drawn at random."""
    extra = torch.randint(0, n, (q - n,), generator=generator)
    return torch.cat([torch.arange(n), extra])


def replica_counts(mapping: torch.Tensor, n: int) -> torch.Tensor:
    """|{j : g(j) = i}| for every source unit i."""
    return torch.bincount(mapping, minlength=n)


def expand_to_block(mapping: torch.Tensor, block: int) -> torch.Tensor:
    """A channel mapping as a feature mapping when each channel is ``block`` features wide."""
    if block == 1:
        return mapping
    return (mapping[:, None] * block + torch.arange(block)).reshape(-1)


def remap_range(
    t: torch.Tensor, mapping: torch.Tensor, dim: int, offset: int, n: int
) -> torch.Tensor:
    """Replace ``t[offset:offset+n]`` along ``dim`` by ``t[offset + mapping]`` (keeps the rest)."""
    before = t.narrow(dim, 0, offset)
    middle = t.narrow(dim, offset, n).index_select(dim, mapping.to(t.device))
    after = t.narrow(dim, offset + n, t.shape[dim] - offset - n)
    return torch.cat([before, middle, after], dim=dim)


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


def widen_in(
    weight: torch.Tensor,
    mapping: torch.Tensor,
    offset: int,
    n: int,
    block: int,
    factors: torch.Tensor | None,
) -> torch.Tensor:
    """Widen the input dimension (dim 1) of ``weight`` for one channel range.

    The range ``[offset, offset + n·block)`` becomes ``q·block`` columns: new channel j reads
    source channel g(j)'s columns times ``factors[:, j]`` (shape ``(out, q, block, *kernel)``,
    or None for zero outgoing weights on the new channels).
    """
    out = weight.shape[0]
    rest = tuple(weight.shape[2:])
    q = mapping.numel()
    seg = weight.narrow(1, offset, n * block).reshape(out, n, block, *rest)
    seg = seg.index_select(1, mapping.to(weight.device))  # (out, q, block, *kernel)
    if factors is None:  # "zero": old channels keep their weights, new channels read nothing
        seg = seg.clone()
        seg[:, n:] = 0
    else:
        seg = (seg.float() * factors.to(weight.device)).to(weight.dtype)
    seg = seg.reshape(out, q * block, *rest)
    before = weight.narrow(1, 0, offset)
    after = weight.narrow(1, offset + n * block, weight.shape[1] - offset - n * block)
    return torch.cat([before, seg, after], dim=1)


def identity_weight(channels: int, kernel: tuple[int, ...]) -> torch.Tensor:
    """A Linear (``kernel == ()``) or Conv weight computing the identity: the centre tap
    (index ``k // 2`` in every spatial dimension) of channel i's own kernel is 1."""
    w = torch.zeros((channels, channels) + kernel)
    centre = tuple(k // 2 for k in kernel)
    idx = torch.arange(channels)
    w[(idx, idx) + centre] = 1.0
    return w
