"""Growing a child: the one place where a trained parent becomes the child a search trains.

The search's trainable, the benchmarks and users all call :func:`grow_child`, so the morph,
the recipe's perturbation and the child's learning-rate schedule cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from growsearch.arch import ArchSpec, Op
from growsearch.grow._ops import apply_ops, new_entries
from growsearch.grow._recipe import (
    WarmStartRecipe,
    perturb_student,
    resolve_shrink_scope,
    student_train_overrides,
)


@dataclass(frozen=True)
class GrownChild:
    """A child grown from its parent, ready to train.

    Attributes:
        model: The child, in the parent's train/eval mode, on the parent's device.
        spec: Its architecture (``parent_spec`` with the ops applied).
        recipe: The recipe as applied (``shrink="auto"`` resolved for the child's length,
            ``shrink_scope="auto"`` for the child itself).
        total_steps: The optimizer steps the child is grown for.
        preserve_err: Max absolute difference of the morphed child's outputs from the
            parent's on the ``probe`` batch, relative to the parent's largest output (before
            the recipe's deliberate perturbation); None without a probe or for ``scratch``.
        step_scale: ``step_scale`` for :func:`growsearch.train.train` (or, in a loop of
            one's own, :func:`growsearch.train.scale_steps`): the recipe's
            ``new_entry_lr_factor`` on the entries the morph added, 1 elsewhere; None when
            the factor is 1 (or for ``scratch``). Training without it trains the new
            entries at the rest's learning rate.
    """

    model: nn.Module
    spec: ArchSpec
    recipe: WarmStartRecipe
    total_steps: int
    preserve_err: float | None = None
    step_scale: dict[str, torch.Tensor] | None = None

    def train_overrides(self, base_lr: float) -> dict[str, float | int]:
        """``{"lr", "warmup_steps"}`` for :class:`growsearch.train.TrainConfig`: the child's
        peak learning rate and warm-up, given the rate a fresh network would train with."""
        return student_train_overrides(self.recipe, base_lr=base_lr, total_steps=self.total_steps)


def grow_child(
    parent: nn.Module,
    parent_spec: ArchSpec,
    ops: Sequence[Op],
    recipe: WarmStartRecipe | None = None,
    *,
    total_steps: int,
    seed: int,
    calibration: torch.Tensor | None = None,
    probe: torch.Tensor | None = None,
    after_morph: Callable[[nn.Module], None] | None = None,
) -> GrownChild:
    """Grow ``parent`` by ``ops`` the way ``recipe`` says; the parent is not modified.

    The morph (:func:`growsearch.grow.apply_ops` with the recipe's init) comes first; then,
    for warm-started inits, shrink-and-perturb and a BatchNorm re-estimate on ``calibration``.
    ``shrink_scope="auto"`` is decided on the child's graph by
    :func:`growsearch.grow.resolve_shrink_scope`.

    Args:
        parent: A trained model built from ``parent_spec``.
        parent_spec: Its architecture.
        ops: The widen/deepen ops that turn ``parent_spec`` into the child's spec.
        recipe: The recipe (default: :class:`WarmStartRecipe`'s defaults).
        total_steps: The optimizer steps the child will train (the ``"auto"`` shrink and the
            warm-up depend on it).
        seed: Seeds the morph (mapping, split, fresh units) and the perturbation.
        calibration: An input batch, needed by deepen with BatchNorm and by the re-estimate.
        probe: An input batch on which to measure ``preserve_err``.
        after_morph: Called with the morphed child before the perturbation (in eval mode),
            e.g. to evaluate what the morph alone keeps.

    Raises:
        MorphError: An op cannot be applied, or the recipe needs ``calibration``.
        ValueError: ``total_steps`` < 1.
    """
    if total_steps < 1:
        raise ValueError(f"grow_child: need total_steps >= 1, got {total_steps}")
    recipe = (recipe or WarmStartRecipe()).for_steps(total_steps)
    training = parent.training
    child, child_spec = apply_ops(
        parent, parent_spec, list(ops), init=recipe.init, calibration=calibration, seed=seed,
        split_std=recipe.split_std,
    )  # fmt: skip
    preserve_err = None
    if (probe is not None and recipe.init != "scratch") or after_morph is not None:
        parent.eval()
        child.eval()
        if probe is not None and recipe.init != "scratch":
            with torch.no_grad():
                a, b = parent(probe), child(probe)
            preserve_err = float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
        if after_morph is not None:
            after_morph(child)
        parent.train(training)
        child.train(training)
    if recipe.init != "scratch":
        recipe = resolve_shrink_scope(child, recipe)
    child = perturb_student(child, child_spec, recipe, calibration=calibration, seed=seed)
    scale = child_step_scale(parent_spec, ops, recipe, calibration=calibration, seed=seed)
    return GrownChild(child, child_spec, recipe, total_steps, preserve_err, scale)


def child_step_scale(
    parent_spec: ArchSpec,
    ops: Sequence[Op],
    recipe: WarmStartRecipe,
    *,
    calibration: torch.Tensor | None,
    seed: int,
) -> dict[str, torch.Tensor] | None:
    """:attr:`GrownChild.step_scale` of the child :func:`grow_child` grows with these
    arguments, from the spec and ops alone (a resumed trial rebuilds it without the parent)."""
    factor = float(recipe.new_entry_lr_factor)
    if factor == 1.0 or recipe.init == "scratch":
        return None
    masks = new_entries(
        parent_spec, list(ops), init=recipe.init, calibration=calibration, seed=seed,
        split_std=recipe.split_std,
    )  # fmt: skip
    return {name: 1.0 + (factor - 1.0) * m.float() for name, m in masks.items() if m.any()}
