"""The warm-start recipe: what happens around the morph when a search grows a child.

The morph alone keeps the parent's function, but a network warm-started from a converged parent
tends to generalise worse than a fresh one (Ash & Adams, NeurIPS 2020). The recipe is the data
that decides what the child starts from and how it trains: the morph's init, shrink-and-perturb,
a BatchNorm re-estimate, the child's learning rate and warm-up. The search and the benchmarks
apply it through one function, :func:`growsearch.grow.grow_child`. Why the defaults are what
they are: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace

import torch
from torch import fx, nn

from growsearch.arch import ArchSpec, build
from growsearch.exceptions import MorphError
from growsearch.grow._rescale import homogeneous_rescale, rescale_output_exponent
from growsearch.morph import INITS, WEIGHTED, trace

_BN = nn.modules.batchnorm._BatchNorm  # 1-, 2-, 3-d and SyncBatchNorm
SHRINK_SCOPES = (
    "auto", "all", "scale-invariant", "homogeneous", "homogeneous-hidden", "homogeneous-norms",
)  # fmt: skip
# ``shrink_scope="auto"``: the predictions-keeping rescale that carries the shrink past every
# normalisation ("homogeneous-norms"), with λ raised to at least AUTO_SCOPE_MIN_SHRINK where
# the logits would carry λ to a power above AUTO_SCOPE_MAX_EXPONENT (long chains of layers
# without normalisation; see resolve_shrink_scope)
AUTO_SCOPE_MAX_EXPONENT = 2
AUTO_SCOPE_MIN_SHRINK = 0.6
# ``shrink="auto"``: λ by the number of optimizer steps the child will train (see auto_shrink)
AUTO_SHRINK_SHORT = (135, 0.6)  # up to this many steps: the mild shrink
AUTO_SHRINK_LONG = (270, 0.3)  # from this many steps on: the strong shrink


def auto_shrink(total_steps: int) -> float:
    """The shrink λ that ``shrink="auto"`` uses for a child trained ``total_steps`` steps.

    ``AUTO_SHRINK_SHORT``'s λ up to its step count, ``AUTO_SHRINK_LONG``'s from its step count
    on, linear in log(steps) between. The shrink raises the loss of the parent's weights so the
    child leaves the parent's basin, and a child needs steps to win that loss back: short
    children get the milder shrink. Measurements: ``docs/benchmarks.md#the-warm-start-recipe``.

    Raises:
        ValueError: ``total_steps`` < 1.
    """
    if total_steps < 1:
        raise ValueError(f"auto_shrink: need total_steps >= 1, got {total_steps}")
    (short_n, short_l), (long_n, long_l) = AUTO_SHRINK_SHORT, AUTO_SHRINK_LONG
    if total_steps <= short_n:
        return short_l
    if total_steps >= long_n:
        return long_l
    t = math.log(total_steps / short_n) / math.log(long_n / short_n)
    return short_l + t * (long_l - short_l)


@dataclass(frozen=True)
class WarmStartRecipe:
    """How a warm-started child is made and how its training differs from a fresh network's.

    The default: an exact morph whose new units get fresh incoming and zero outgoing weights
    (``init="zero"``; for deepen the same identity layer as ``net2net``), then a shrink by λ
    (``shrink="auto"``, :func:`auto_shrink`) whose scope is chosen per child
    (``shrink_scope="auto"``, :func:`resolve_shrink_scope`) that keeps every prediction of the
    parent: the homogeneous rescale, which on a normalised network reaches the same layers as
    the whole-network shrink (every weight and normalisation scale × λ) and without
    normalisation rescales biases by λ^depth instead of throwing the parent's function away.
    The child then trains with a linear learning-rate warm-up over its first
    ``warmup_fraction`` of steps. The shrink raises the loss of a converged parent again and
    makes Adam's steps relatively larger, so the child keeps learning instead of sitting in the
    parent's basin. The warm-up keeps a fresh optimizer's first, ``lr``-sized steps from moving
    the inherited weights far. The measurements behind each default, and the alternatives tried:
    ``docs/benchmarks.md#the-warm-start-recipe``.

    Attributes:
        init: The morph's init (``net2net``, ``net2net-noise``, ``zero``, ``random-pad`` or
            ``scratch``); see :func:`growsearch.morph.widen`.
        split_std: Spread of the random split of a source unit's outgoing weights over its
            replicas for ``net2net`` (exact for any value; ``None``: the engine's default).
        lr_factor: The child's peak learning rate as a factor of the base (teacher's)
            learning rate.
        warmup_fraction: Linear learning-rate warm-up over this fraction of the child's steps
            (0.1: the first 10%; 0 starts at the peak learning rate).
        shrink: λ of shrink-and-perturb, applied after the morph to every parameter
            (``θ ← λ·θ + σ·θ_fresh``); 1 keeps the weights. ``"auto"`` (the default): by the
            child's length (:func:`auto_shrink`); resolve it with :meth:`for_steps`.
        perturb_std: σ of shrink-and-perturb: the scale of a fresh initialisation of the child
            (``build(child_spec)``) added to the weights; 0 adds nothing.
        recalibrate_bn: After a shrink/perturb, re-estimate BatchNorm running statistics on the
            calibration batch (the old ones no longer match the changed weights).
        shrink_scope: Which parameters ``shrink`` multiplies. ``"auto"`` (the default):
            ``"homogeneous-norms"``, with λ at least ``AUTO_SCOPE_MIN_SHRINK`` where the logits
            would carry λ to a power above ``AUTO_SCOPE_MAX_EXPONENT``
            (:func:`resolve_shrink_scope`). ``"all"``: every parameter (Ash & Adams' shrink);
            it moves predictions (on normalised networks a few, through the logits layer's
            bias and the BatchNorm re-estimate; without normalisation nearly all).
            ``"scale-invariant"``: only the Linear/Conv layers whose output goes straight
            into a BatchNorm — their scale does not change the function, so the BatchNorm's
            running statistics are rescaled with them (mean × λ, var × λ²) and the child
            keeps its parent's predictions — while Adam's steps become larger relative to the
            smaller weights (a higher effective learning rate).
            ``"homogeneous"``: every Linear/Conv where the network stays positively homogeneous
            (ReLU networks with or without normalisation, residual adds included; found on the
            torch.fx graph: :func:`growsearch.grow.homogeneous_rescale`): weights × λ, biases
            × λ^depth, normalisation statistics rescaled; the logits become the parent's ×
            λ^depth (a temperature), so every prediction is kept. ``"homogeneous-hidden"``:
            the same, then the logits layer undoes the temperature (the logits are exactly the
            parent's; only the hidden layers are smaller). ``"homogeneous-norms"``: the same
            as ``"homogeneous"``, and every affine normalisation's scale and shift × λ too, so
            the layers after a normalisation are shrunk as well (the logits carry λ² behind a
            final normalisation instead of λ); every prediction is kept.
        cycle_fraction: The child's cosine learning-rate cycle ends at this fraction of its
            steps (warm-up included), then restarts at the peak and decays again over the rest
            (:attr:`growsearch.train.TrainConfig.cycle_steps`): the child reaches an annealed
            accuracy early, where an early-stopping scheduler judges it. 0: one cycle.
        logit_scale: Multiplies the weight and bias of the layer that produces the model's
            output (a softmax temperature: the predicted class of every input is kept, the
            loss of a confident teacher rises again); 1 leaves it alone.
        new_entry_lr_factor: The entries the morph added (:func:`growsearch.grow.new_entries`:
            new units' weights, inserted layers) take steps this many times as long as the
            inherited ones (``GrownChild.step_scale`` for :func:`growsearch.train.train`), so
            what the parent did not have catches up with what it learned; 1: one learning rate
            for all.
        keep_outputs: Keep the parent's output values, not only its predictions: a
            ``homogeneous*`` shrink's temperature is undone at the output layer (as
            ``"homogeneous-hidden"`` does), and a model whose output does not come from a
            Linear/Conv is not shrunk. What a task other than classification needs (a
            regression's numbers, a user's loss); classification keeps the temperature.
    """

    init: str = "zero"
    split_std: float | None = 0.5
    lr_factor: float = 1.0
    warmup_fraction: float = 0.1
    shrink: float | str = "auto"
    perturb_std: float = 0.0
    recalibrate_bn: bool = True
    shrink_scope: str = "auto"
    logit_scale: float = 1.0
    cycle_fraction: float = 0.2
    new_entry_lr_factor: float = 3.0
    keep_outputs: bool = False

    def __post_init__(self) -> None:
        if self.shrink_scope not in SHRINK_SCOPES:
            raise ValueError(
                f"WarmStartRecipe.shrink_scope: must be one of {list(SHRINK_SCOPES)}, got {self.shrink_scope!r}"
            )
        if not 0.0 < self.logit_scale <= 1.0:
            raise ValueError(
                f"WarmStartRecipe.logit_scale: expected a number in (0, 1], got {self.logit_scale!r}"
            )
        if self.init not in INITS:
            raise ValueError(
                f"WarmStartRecipe.init: must be one of {list(INITS)}, got {self.init!r}"
            )
        if self.split_std is not None and self.split_std < 0:
            raise ValueError(
                f"WarmStartRecipe.split_std: expected None or >= 0, got {self.split_std!r}"
            )
        if self.lr_factor <= 0:
            raise ValueError(f"WarmStartRecipe.lr_factor: expected > 0, got {self.lr_factor!r}")
        if not self.new_entry_lr_factor > 0:
            raise ValueError(
                "WarmStartRecipe.new_entry_lr_factor: expected > 0, "
                f"got {self.new_entry_lr_factor!r}"
            )
        if not 0.0 <= self.cycle_fraction < 1.0:
            raise ValueError(
                f"WarmStartRecipe.cycle_fraction: expected a number in [0, 1), got {self.cycle_fraction!r}"
            )
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(
                f"WarmStartRecipe.warmup_fraction: expected a number in [0, 1), got {self.warmup_fraction!r}"
            )
        if self.shrink != "auto" and not (
            isinstance(self.shrink, int | float)
            and not isinstance(self.shrink, bool)
            and 0.0 < self.shrink <= 1.0
        ):
            raise ValueError(
                f"WarmStartRecipe.shrink: expected 'auto' or a number in (0, 1], got {self.shrink!r}"
            )
        if self.perturb_std < 0:
            raise ValueError(
                f"WarmStartRecipe.perturb_std: expected >= 0, got {self.perturb_std!r}"
            )

    def for_steps(self, total_steps: int) -> WarmStartRecipe:
        """This recipe with ``shrink="auto"`` resolved for a child of ``total_steps`` steps."""
        if self.shrink != "auto":
            return self
        return replace(self, shrink=auto_shrink(total_steps))

    @property
    def exact(self) -> bool:
        """True if the child computes its parent's function (up to float rounding)."""
        return (
            self.init in ("net2net", "zero")
            and self.shrink == 1.0
            and self.perturb_std == 0.0
            and self.logit_scale == 1.0
        )

    @property
    def keeps_predictions(self) -> bool:
        """True if the child predicts its parent's class for every input (logits may scale);
        False for an unresolved ``shrink_scope="auto"`` (it decides per child)."""
        return (
            self.init in ("net2net", "zero")
            and self.perturb_std == 0.0
            and (self.shrink == 1.0 or self.shrink_scope not in ("all", "auto"))
        )


def perturb_student(
    child: nn.Module,
    child_spec: ArchSpec,
    recipe: WarmStartRecipe,
    *,
    calibration: torch.Tensor | None,
    seed: int,
) -> nn.Module:
    """The recipe's step after the morph: shrink-and-perturb, then a BatchNorm re-estimate.

    Modifies ``child`` in place and returns it. A no-op for ``scratch`` children and for
    ``shrink == 1, perturb_std == 0``. Kept apart from the morph so
    :func:`growsearch.grow.grow_child` can measure the morph's function preservation first.

    Raises:
        ValueError: The recipe's ``shrink`` is ``"auto"``: resolve it first with
            :meth:`WarmStartRecipe.for_steps`.
    """
    if recipe.init == "scratch":
        return child
    if recipe.shrink == "auto":
        raise ValueError(
            "perturb_student: the recipe's shrink is 'auto'; resolve it for the child's length "
            "first (recipe.for_steps(total_steps))"
        )
    if recipe.shrink_scope == "auto":
        recipe = resolve_shrink_scope(child, recipe)
    shrink = float(recipe.shrink)
    if shrink == 1.0 and recipe.perturb_std == 0.0 and recipe.logit_scale == 1.0:
        return child
    with torch.no_grad():
        if recipe.shrink_scope == "all":
            for p in child.parameters():
                p.mul_(shrink)
        elif recipe.shrink_scope.startswith("homogeneous") and shrink != 1.0:
            undo = recipe.shrink_scope == "homogeneous-hidden" or recipe.keep_outputs
            out_layer = _output_layer_or_none(child) if undo else None
            if not undo or out_layer is not None:  # else nothing could undo the temperature
                rescaled = homogeneous_rescale(
                    child, shrink, scale_norms=recipe.shrink_scope == "homogeneous-norms"
                )
                if out_layer is not None and rescaled.output_exponent:
                    for p in out_layer.parameters():  # undo the temperature
                        p.mul_(shrink**-rescaled.output_exponent)
        elif shrink != 1.0:
            shrink_scale_invariant(child, shrink)
        if recipe.logit_scale != 1.0:
            for p in output_layer(child).parameters():
                p.mul_(recipe.logit_scale)
        if recipe.perturb_std > 0:
            fresh = build(child_spec, seed=10_007 * (seed + 1))
            fresh_params = dict(fresh.named_parameters())
            for name, p in child.named_parameters():
                p.add_(fresh_params[name].to(p.device, p.dtype), alpha=recipe.perturb_std)
    changed_stats = recipe.perturb_std > 0 or (recipe.shrink_scope == "all" and shrink != 1.0)
    if changed_stats and recipe.recalibrate_bn and any(isinstance(m, _BN) for m in child.modules()):
        if calibration is None:
            raise MorphError(
                "grow_child: shrink/perturb changes what BatchNorm sees; pass calibration=<input batch>"
            )
        recalibrate_batchnorm(child, calibration)
    return child


@torch.no_grad()
def resolve_shrink_scope(child: nn.Module, recipe: WarmStartRecipe) -> WarmStartRecipe:
    """``recipe`` with ``shrink_scope="auto"`` decided for this morphed ``child``.

    Always a rescale that keeps every prediction: ``"homogeneous-norms"``, found on the
    child's torch.fx graph (:func:`growsearch.grow.homogeneous_rescale` with
    ``scale_norms``). On a normalised network it shrinks what the whole-network shrink
    shrinks, every weight and normalisation scale × λ, but keeps the running statistics and
    the logits layer's bias in step with them, so the parent's predictions survive (the
    whole-network shrink moves a few of them, more than the 1-point budget on some parents).
    The logits then carry λ^e, a temperature. Without normalisation e is the network's depth
    and λ^e starves the child of gradient at first, so where e exceeds
    ``AUTO_SCOPE_MAX_EXPONENT`` λ is raised to ``AUTO_SCOPE_MIN_SHRINK``. Nothing is
    measured on data: the choice depends on the graph and λ only. ``child`` is not modified.
    Measurements: ``docs/benchmarks.md#the-warm-start-recipe``.

    Raises:
        ValueError: The recipe's ``shrink`` is still ``"auto"``.
        MorphError: The child cannot be traced with torch.fx.
    """
    if recipe.shrink_scope != "auto":
        return recipe
    if recipe.shrink == "auto":
        raise ValueError("resolve_shrink_scope: resolve the recipe's shrink first (for_steps)")
    shrink = float(recipe.shrink)
    if shrink == 1.0:
        return replace(recipe, shrink_scope="homogeneous-norms")  # nothing to shrink
    if rescale_output_exponent(child, scale_norms=True) > AUTO_SCOPE_MAX_EXPONENT:
        shrink = max(shrink, AUTO_SCOPE_MIN_SHRINK)
    return replace(recipe, shrink_scope="homogeneous-norms", shrink=shrink)


def _output_layer_or_none(model: nn.Module) -> nn.Module | None:
    """The Linear/Conv that produces ``model``'s output, or None."""
    try:
        return output_layer(model)
    except (MorphError, ValueError):
        return None


@torch.no_grad()
def shrink_scale_invariant(model: nn.Module, factor: float) -> list[str]:
    """Multiply by ``factor`` every Linear/Conv whose only reader is a BatchNorm; in place.

    The BatchNorm normalises its input, so the layer's scale does not change the function; its
    running mean and variance are rescaled (× factor, × factor²) so eval mode agrees too. Only
    exact up to the BatchNorm's ``eps`` (relative error ~eps / (factor² var)).

    Returns:
        The names of the shrunk layers.
    """
    gm = trace(model)
    calls = Counter(str(n.target) for n in gm.graph.nodes if n.op == "call_module")
    shrunk: list[str] = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or calls[str(node.target)] != 1:
            continue
        layer = model.get_submodule(str(node.target))
        users = list(node.users)
        if not isinstance(layer, WEIGHTED) or len(users) != 1:
            continue
        user = users[0]
        if user.op != "call_module" or calls[str(user.target)] != 1:
            continue
        bn = model.get_submodule(str(user.target))
        if not isinstance(bn, _BN) or user.args[0] is not node:
            continue
        for p in layer.parameters():
            p.mul_(factor)
        if bn.running_mean is not None and bn.running_var is not None:
            bn.running_mean.mul_(factor)
            bn.running_var.mul_(factor * factor)
        shrunk.append(str(node.target))
    return shrunk


def output_layer(model: nn.Module) -> nn.Module:
    """The Linear/Conv module whose output is the model's output (the logits layer).

    Raises:
        MorphError: The output is not produced directly by such a module.
    """
    gm = trace(model)
    out = next(n for n in gm.graph.nodes if n.op == "output")
    src = out.args[0]
    if isinstance(src, fx.Node) and src.op == "call_module":
        layer = model.get_submodule(str(src.target))
        if isinstance(layer, WEIGHTED):
            return layer
    raise MorphError(
        f"logit_scale: the output of {type(model).__name__} is not produced by a Linear/Conv "
        "module, so there is no logits layer to scale; use logit_scale=1"
    )


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of batch ``x`` (train/eval mode kept)."""
    modes = {m: m.training for m in model.modules()}
    bns = [m for m in model.modules() if isinstance(m, _BN)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch gives exactly its statistics
    model.train()
    for mod in model.modules():  # dropout off: the statistics of the deterministic network
        if isinstance(mod, nn.modules.dropout._DropoutNd):
            mod.eval()
    try:
        model(x.to(next(model.parameters()).device))
    finally:
        for m, momentum in zip(bns, saved):
            m.momentum = momentum
        for mod, training in modes.items():
            mod.training = training


def student_train_overrides(recipe: WarmStartRecipe, base_lr: float, total_steps: int) -> dict:
    """Fields of :class:`growsearch.train.TrainConfig` to replace for a warm-started child.

    ``scratch`` children are trained like any fresh network (no overrides besides the base
    learning rate, no warm-up and one cosine cycle).

    Returns:
        ``{"lr": ..., "warmup_steps": ..., "cycle_steps": ...}``.
    """
    if base_lr <= 0 or total_steps < 1:
        raise ValueError(
            f"student_train_overrides: need base_lr > 0 and total_steps >= 1, got {base_lr}, {total_steps}"
        )
    if recipe.init == "scratch":
        return {"lr": float(base_lr), "warmup_steps": 0, "cycle_steps": 0}
    warmup = min(int(round(recipe.warmup_fraction * total_steps)), total_steps - 1)
    cycle = int(round(recipe.cycle_fraction * total_steps))
    return {
        "lr": float(base_lr) * recipe.lr_factor,
        "warmup_steps": warmup,
        "cycle_steps": cycle if warmup < cycle < total_steps else 0,
    }


__all__ = [
    "AUTO_SHRINK_LONG",
    "AUTO_SHRINK_SHORT",
    "AUTO_SCOPE_MAX_EXPONENT",
    "AUTO_SCOPE_MIN_SHRINK",
    "SHRINK_SCOPES",
    "WarmStartRecipe",
    "auto_shrink",
    "output_layer",
    "perturb_student",
    "recalibrate_batchnorm",
    "shrink_scale_invariant",
    "student_train_overrides",
]
