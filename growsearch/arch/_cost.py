"""Cost of an architecture: parameters and FLOPs."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from growsearch.arch._build import build
from growsearch.arch._custom import build_custom_meta
from growsearch.arch._spec import ArchSpec


def count_params(model_or_spec: nn.Module | ArchSpec) -> int:
    """Number of trainable parameters."""
    if isinstance(model_or_spec, ArchSpec) and model_or_spec.custom is not None:
        # a user's model may be large: count on meta
        model = build_custom_meta(model_or_spec.custom, model_or_spec.input_shape)
    elif isinstance(model_or_spec, ArchSpec):
        model = build(model_or_spec)
    else:
        model = model_or_spec
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(
    model_or_spec: nn.Module | ArchSpec,
    input_shape: tuple[int, ...] | None = None,
    input_dtype: str = "float32",
) -> int:
    """FLOPs of one forward pass on one sample (torch.utils.flop_counter; a multiply-add is 2),
    fed zeros of ``input_dtype`` (``int64``: token ids)."""
    if isinstance(model_or_spec, ArchSpec):
        model, input_shape = build(model_or_spec), model_or_spec.input_shape
        input_dtype = model_or_spec.input_dtype
    else:
        model = model_or_spec
    if input_shape is None:
        raise ValueError("count_flops of a module needs input_shape")
    was_training = model.training
    model.eval()
    try:
        # not under no_grad: there, a view of a parameter (``self.query.expand(...)`` as an
        # attention's query) requires grad without a grad_fn, which the counter's module
        # tracker cannot hook; one sample's graph is freed at once
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros((1, *input_shape), dtype=getattr(torch, input_dtype)))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
