"""The warm-start recipe: how a search turns a trained parent into a child it then trains.

The morph alone (Net2Net, function-preserving) is not enough to make a grown child worth its
warm start: replicas that start identical stay close, and a network warm-started from a
converged parent generalises worse than a fresh one (Ash & Adams, "On Warm-Starting Neural
Network Training", NeurIPS 2020). The recipe is everything *around* the morph that decides
whether the child beats a freshly initialised network of the same shape, kept as data so the
search and the benchmark (``benchmarks/net2net_replication.py``) apply exactly the same thing:

    child, child_spec = prepare_student(
        parent, parent_spec, ops, recipe, calibration=x, seed=s, total_steps=steps
    )
    overrides = student_train_overrides(recipe, base_lr=cfg.lr, total_steps=steps)
    train(child, data, dataclasses.replace(cfg, **overrides))
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import fx, nn

from growsearch.arch import ArchSpec, Op, build
from growsearch.exceptions import MorphError
from growsearch.morph._coupling import trace
from growsearch.morph._inits import INITS
from growsearch.morph._spec_ops import apply_ops

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_PRODUCERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
SHRINK_SCOPES = ("all", "scale-invariant")
# ``shrink="auto"``: λ by the number of optimizer steps the child will train (see auto_shrink)
AUTO_SHRINK_SHORT = (135, 0.6)  # up to this many steps: the mild shrink
AUTO_SHRINK_LONG = (270, 0.3)  # from this many steps on: the strong shrink


def auto_shrink(total_steps: int) -> float:
    """The shrink λ that ``shrink="auto"`` uses for a child trained ``total_steps`` steps.

    0.6 up to 135 steps, 0.3 from 270 steps on, linear in log(steps) between. Why it depends
    on the length: the shrink raises the loss of the parent's weights so the child leaves the
    parent's basin (Ash & Adams), and a child needs steps to win that loss back. Measured
    (``results/search_efficiency.md``, ``results/search_efficiency_length.md``):

    - 135-step children (5 epochs of 27 steps), on MNIST 5k and on MNIST-1D: with 0.6, children
      of trained children gain over their parents instead of losing (+0.3 against -0.3 points
      of validation accuracy on MNIST 5k, +0.2 against -1.0 on MNIST-1D) and the searches end
      higher; children of the seed do the same with either.
    - 189-step children (7 epochs; here λ = 0.454): the interpolated λ ended best on MNIST-1D
      (99.50% against 99.37% with 0.3 and 99.47% with 0.6) and between the two on MNIST 5k
      (97.80% against 97.50% and 98.13%).
    - 270-step children (10 epochs): on MNIST-1D 0.3 is better for children of the seed (0.6
      costs them 0.6 points of test accuracy) and the same for later children; MNIST 5k still
      ended higher with 0.6 (98.17% against 97.73%). The rule keeps 0.3 from here on.
    - 2,400-step students need 0.3 (with 0.6 they miss the replication target on both wider
      settings: ``results/net2net_replication_ablation_zero_shrink06_table.md``).

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

    The defaults are the recipe measured in ``results/net2net_replication.md`` and chosen by
    ``results/search_efficiency_{mnist1d,mnist5k}_recipes.md``: an exact morph whose new units
    get fresh incoming weights and zero outgoing weights (``init="zero"``, as Auto-Keras and NNI
    widen; for deepen it is the same identity layer as ``net2net``), then every parameter × λ
    (``shrink``, ``shrink_scope="all"``) and a BatchNorm re-estimate. The shrink raises the loss
    of a converged teacher again and makes Adam's steps relatively larger, so the child keeps
    learning instead of sitting in the teacher's basin (the warm-start gap of Ash & Adams,
    NeurIPS 2020). It does not keep the parent's predictions exactly (in deep children it can
    cost most of the accuracy right after the morph; they recover within their first epochs).
    λ depends on how long the child trains (``shrink="auto"``, :func:`auto_shrink`): 0.3 from
    270 steps on (the 2,400-step replication students need it), 0.6 up to 135 steps (such short
    children lose more to the strong shrink than they can win back).

    The child then trains with a linear learning-rate warm-up over its first 10% of steps
    (``warmup_fraction``), then the cosine decay. Measured, paired on the same architectures:

    - Children of MNIST 5k's seed (135 steps, λ 0.6; ``results/seed_children_mnist5k.md``):
      +0.23 points of test accuracy (higher in 13 of 18, lower in 3), 97.17% against 97.21% for
      the same architectures trained from scratch for the seed's and the child's epochs
      together; 5% and 20% did as well.
    - Children of MNIST-1D's seed (270 steps, λ 0.3; ``results/seed_children_mnist1d.md``):
      neutral (−0.01 points, 9 higher and 9 lower).
    - Searches (``results/search_efficiency.md``): every warm controller stood higher at 1/3 of
      the budget on both datasets; TPE on MNIST 5k reached the from-scratch target with 1/3 of
      the compute instead of 0.42.
    - The replication's 2,400-step students, side by side with the recipe without it
      (``results/net2net_replication_ablation_warmup_table.md``): 0.2 to 0.5 points higher in
      all four settings, the ≤ 1/4-of-the-steps target still met in each.

    A likely reason, not isolated: Adam's first steps are about ``lr`` in size whatever the
    gradient, so a fresh optimizer at the full rate moves the inherited weights far before its
    moments settle; a fresh network has nothing to lose that way.

    Why ``zero`` and not ``net2net``'s replicas (random zero-sum split of outgoing weights,
    ``split_std`` 0.5; both exact): the replicas start as copies of existing features, the zero
    units as new ones. With the same shrink, ``zero`` meets the replication target (≤ 1/4 of
    the steps to the fresh student's final accuracy, no worse at the end) in all four settings,
    ``net2net`` in the two deeper ones only; in searches (3 seeds, one run per dataset) it ends
    better on MNIST 5k with every controller (97.1–97.5% vs 96.4–96.7%) and on MNIST-1D with
    evolution (99.3% vs 98.9%), at about the same compute to the from-scratch target.

    ``shrink_scope="scale-invariant"`` with ``logit_scale=0.09`` keeps every prediction exactly
    and learns as well in the replication benchmark, but searches with it were slower: on
    MNIST-1D warm searches reached the from-scratch search's final best with 0.55–0.60 of the
    compute against 0.25–0.35 with this default (same run, 3 seeds); on MNIST 5k it was a little
    better for evolution (97.0% vs 96.4%) and the same for TPE.

    Attributes:
        init: The morph's init (``net2net``, ``net2net-noise``, ``zero``, ``random-pad`` or
            ``scratch``); see :func:`growsearch.morph.widen`.
        split_std: Spread of the random split of a source unit's outgoing weights over its
            replicas for ``net2net`` (exact for any value; ``None``: the engine's default).
        student_lr_factor: The child's peak learning rate as a factor of the base (teacher's)
            learning rate. The paper advises 1/10; measured, that is too small here.
        warmup_fraction: Linear learning-rate warm-up over this fraction of the child's steps
            (0.1: the first 10%; 0 starts at the peak learning rate).
        shrink: λ of shrink-and-perturb, applied after the morph to every parameter
            (``θ ← λ·θ + σ·θ_fresh``); 1 keeps the weights. ``"auto"`` (the default): by the
            child's length, 0.6 up to 135 training steps, 0.3 from 270 on
            (:func:`auto_shrink`); resolve it with :meth:`for_steps`.
        perturb_std: σ of shrink-and-perturb: the scale of a fresh initialisation of the child
            (``build(child_spec)``) added to the weights; 0 adds nothing.
        recalibrate_bn: After a shrink/perturb, re-estimate BatchNorm running statistics on the
            calibration batch (the old ones no longer match the changed weights).
        shrink_scope: Which parameters ``shrink`` multiplies. ``"all"``: every parameter
            (Ash & Adams' shrink). ``"scale-invariant"``: only the Linear/Conv layers whose
            output goes straight into a BatchNorm — their scale does not change the function,
            so the BatchNorm's running statistics are rescaled with them (mean × λ, var × λ²)
            and the child keeps its parent's predictions — while Adam's steps become larger
            relative to the smaller weights (a higher effective learning rate).
        logit_scale: Multiplies the weight and bias of the layer that produces the model's
            output (a softmax temperature: the predicted class of every input is kept, the
            loss of a confident teacher rises again); 1 leaves it alone.
    """

    init: str = "zero"
    split_std: float | None = 0.5
    student_lr_factor: float = 1.0
    warmup_fraction: float = 0.1
    shrink: float | str = "auto"
    perturb_std: float = 0.0
    recalibrate_bn: bool = True
    shrink_scope: str = "all"
    logit_scale: float = 1.0

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
        if self.student_lr_factor <= 0:
            raise ValueError(
                f"WarmStartRecipe.student_lr_factor: expected > 0, got {self.student_lr_factor!r}"
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
        """True if the child predicts its parent's class for every input (logits may scale)."""
        return (
            self.init in ("net2net", "zero")
            and self.perturb_std == 0.0
            and (self.shrink == 1.0 or self.shrink_scope == "scale-invariant")
        )


def prepare_student(
    parent_model: nn.Module,
    parent_spec: ArchSpec,
    ops: Sequence[Op],
    recipe: WarmStartRecipe | None = None,
    *,
    calibration: torch.Tensor | None,
    seed: int,
    total_steps: int | None = None,
) -> tuple[nn.Module, ArchSpec]:
    """Grow ``parent_model`` by ``ops`` the way ``recipe`` says; the parent is not modified.

    Applies the morph with :func:`growsearch.morph.apply_ops` (the recipe's ``init`` and
    ``split_std``), then, for warm-started inits, shrink-and-perturb
    (``θ ← shrink·θ + perturb_std·θ_fresh`` with ``θ_fresh`` a seeded fresh build of the
    child spec) and a re-estimate of the BatchNorm running statistics on ``calibration``.

    Args:
        parent_model: A trained model built from ``parent_spec``.
        parent_spec: Its architecture.
        ops: The widen/deepen ops that turn ``parent_spec`` into the child's spec.
        recipe: The recipe (default: :class:`WarmStartRecipe`'s defaults).
        calibration: An input batch (needed by deepen with BatchNorm and by the re-estimate).
        seed: Seeds the morph (mapping, split, fresh units) and the perturbation.
        total_steps: The optimizer steps the child will train; needed when the recipe's
            ``shrink`` is ``"auto"``.

    Returns:
        ``(child_model, child_spec)``; the child is in the parent's train/eval mode.
    """
    recipe = recipe or WarmStartRecipe()
    if recipe.shrink == "auto" and recipe.init != "scratch":
        if total_steps is None:
            raise ValueError(
                "prepare_student: the recipe's shrink is 'auto' (it depends on the child's "
                "length); pass total_steps=<the child's training steps> or a numeric shrink"
            )
        recipe = recipe.for_steps(total_steps)
    child, child_spec = apply_ops(
        parent_model,
        parent_spec,
        list(ops),
        init=recipe.init,
        calibration=calibration,
        seed=seed,
        split_std=recipe.split_std,
    )
    return perturb_student(
        child, child_spec, recipe, calibration=calibration, seed=seed
    ), child_spec


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
    ``shrink == 1, perturb_std == 0``. Split from :func:`prepare_student` so a caller can check
    the morph's function preservation before the (deliberately non-exact) perturbation.

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
    shrink = float(recipe.shrink)
    if shrink == 1.0 and recipe.perturb_std == 0.0 and recipe.logit_scale == 1.0:
        return child
    with torch.no_grad():
        if recipe.shrink_scope == "all":
            for p in child.parameters():
                p.mul_(shrink)
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
                "prepare_student: shrink/perturb changes what BatchNorm sees; pass calibration=<input batch>"
            )
        recalibrate_batchnorm(child, calibration)
    return child


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
        if not isinstance(layer, _PRODUCERS) or len(users) != 1:
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
        if isinstance(layer, _PRODUCERS):
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
        if isinstance(mod, nn.Dropout | nn.Dropout1d | nn.Dropout2d):
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
    learning rate and no warm-up).

    Returns:
        ``{"lr": ..., "warmup_steps": ...}``.
    """
    if base_lr <= 0 or total_steps < 1:
        raise ValueError(
            f"student_train_overrides: need base_lr > 0 and total_steps >= 1, got {base_lr}, {total_steps}"
        )
    if recipe.init == "scratch":
        return {"lr": float(base_lr), "warmup_steps": 0}
    warmup = int(round(recipe.warmup_fraction * total_steps))
    return {
        "lr": float(base_lr) * recipe.student_lr_factor,
        "warmup_steps": min(warmup, total_steps - 1),
    }


__all__ = [
    "AUTO_SHRINK_LONG",
    "AUTO_SHRINK_SHORT",
    "SHRINK_SCOPES",
    "WarmStartRecipe",
    "auto_shrink",
    "output_layer",
    "perturb_student",
    "prepare_student",
    "recalibrate_batchnorm",
    "shrink_scale_invariant",
    "student_train_overrides",
]
