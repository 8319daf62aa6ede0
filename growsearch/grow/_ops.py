"""Morphs of models built from an :class:`ArchSpec`: the engine output, rebuilt from the child spec.

The engine works on any traceable module; for spec-built models the child is then rebuilt with
:func:`growsearch.arch.build` from the child spec and loaded with the morphed weights (strictly),
so a checkpoint is always ``spec + weights`` and morphing agrees with building the child spec.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from growsearch.arch import ArchSpec, BasicBlock, Deepen, Op, Widen, build, module_name, output_name
from growsearch.exceptions import MorphError, SpecError
from growsearch.morph import check_init, deepen, insert_after, insert_block, widen


def apply_op(
    model: nn.Module,
    spec: ArchSpec,
    op: Op,
    *,
    init: str = "net2net",
    calibration: torch.Tensor | None = None,
    seed: int = 0,
    split_std: float | None = None,
) -> tuple[nn.Module, ArchSpec]:
    """Apply one spec-level op to a model built from ``spec``; returns (child, child_spec)."""
    check_init(init)
    try:
        child_spec = spec.apply(op)
    except SpecError as e:
        raise MorphError(str(e)) from None
    if init == "scratch":
        return build(child_spec, seed=seed).train(model.training), child_spec
    if isinstance(op, Widen):
        morphed = widen(
            model, module_name(spec, op.target), op.width, init=init, seed=seed,
            split_std=split_std, example_input=spec.example_input(),
        )  # fmt: skip
    elif isinstance(op, Deepen) and spec.custom is not None:
        _, site, group, dims, fixed = spec.custom.site(op.after)
        channels = spec.width_of(group) if group else fixed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            morphed = insert_block(model, site, op.name, dims, channels, zero=init != "random-pad")
    elif isinstance(op, Deepen) and spec.family == "resnet":
        morphed = insert_after(
            model,
            output_name(spec, op.after),
            _identity_block(spec, op, init, seed),
            f"layers.{op.name}",
        )
    elif isinstance(op, Deepen):
        morphed = deepen(
            model, output_name(spec, op.after), init=init, calibration=calibration, seed=seed,
            new_name=f"layers.{op.name}", block="layer",
        )  # fmt: skip
    else:  # pragma: no cover
        raise MorphError(f"unknown op {op!r}")
    child = build(child_spec)
    ref = next(iter(model.parameters()))
    child = child.to(device=ref.device, dtype=ref.dtype)
    try:
        child.load_state_dict(morphed.state_dict(), strict=True)
    except RuntimeError as e:  # a bug, not user input: the engine and the builder disagree
        raise AssertionError(
            f"morph of {spec.summary()} by {op} disagrees with build(child spec): {e}"
        ) from e
    return child.train(model.training), child_spec


def apply_ops(
    model: nn.Module,
    spec: ArchSpec,
    ops: Sequence[Op],
    *,
    init: str = "net2net",
    calibration: torch.Tensor | None = None,
    seed: int = 0,
    split_std: float | None = None,
) -> tuple[nn.Module, ArchSpec]:
    """Apply ops in order (each with its own derived seed)."""
    if init == "scratch":
        child_spec = spec.apply_all(ops)
        return build(child_spec, seed=seed).train(model.training), child_spec
    for i, op in enumerate(ops):
        model, spec = apply_op(
            model,
            spec,
            op,
            init=init,
            calibration=calibration,
            seed=seed * 1000 + i,
            split_std=split_std,
        )
    return model, spec


_MARK = 0.8125  # new_entries' parent value: exact in every float type, no init's default


def new_entries(
    spec: ArchSpec,
    ops: Sequence[Op],
    *,
    init: str = "net2net",
    calibration: torch.Tensor | None = None,
    seed: int = 0,
    split_std: float | None = None,
) -> dict[str, torch.Tensor]:
    """Which entries of the child's parameters :func:`apply_ops` (same arguments) does not copy
    from the parent: parameter name -> bool tensor of its shape.

    The ops are applied to a model of ``spec`` with every parameter set to one value that no
    init produces (not 0 or 1, a normalisation's defaults): an entry the morph copied keeps it,
    one it added (fresh, zero, a default) or changed (a split unit's rescaled outgoing weights
    under ``net2net``) does not, and a parameter the parent lacks (an inserted layer) is new
    throughout. No weights are needed, so a resumed trial rebuilds the masks from
    its proposal alone. Under ``zero`` init: the new units' incoming and outgoing weights, their
    normalisation parameters, and the inserted layers.
    """
    marked = build(spec)
    if calibration is not None:  # deepen runs it through the model
        marked = marked.to(calibration.device)
    with torch.no_grad():
        for p in marked.parameters():
            p.fill_(_MARK)
    parent = dict(marked.named_parameters())
    child, _ = apply_ops(
        marked, spec, ops, init=init, calibration=calibration, seed=seed, split_std=split_std
    )
    return {
        name: p.detach() != _MARK if name in parent else torch.ones_like(p, dtype=torch.bool)
        for name, p in child.named_parameters()
    }


def _identity_block(spec: ArchSpec, op: Deepen, init: str, seed: int) -> nn.Module:
    """A resnet basic block that starts as the identity: bn2's γ and β are zero, so
    relu(0 + x) = x for the (non-negative) output of the previous block."""
    i, _ = spec.locate(op.after)
    width = int(spec.stages[i].width)  # type: ignore[arg-type]
    dims = len(spec.input_shape) - 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = BasicBlock(dims, width, width, width, spec.kernel_size, 1)
    if init in ("net2net", "zero", "net2net-noise"):
        with torch.no_grad():
            block.bn2.weight.zero_()
            block.bn2.bias.zero_()
            if init == "net2net-noise":
                block.bn2.weight.add_(
                    torch.randn(width, generator=torch.Generator().manual_seed(seed)) * 1e-3
                )
    return block
