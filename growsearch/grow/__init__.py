"""Growing children from trained parents: spec-level ops and the warm-start recipe.

Sits above the engine (:mod:`growsearch.morph`, any PyTorch model) and the architectures
(:mod:`growsearch.arch`): it applies an :class:`~growsearch.arch.ArchSpec`'s widen/deepen ops
to a model built from it, then the recipe that decides what the child starts from.

    child = grow_child(parent, parent_spec, ops, total_steps=steps, seed=0, calibration=x)
    train(child.model, data, dataclasses.replace(cfg, **child.train_overrides(cfg.lr)),
          step_scale=child.step_scale)

(a loop of one's own: ``growsearch.train.scale_steps(optimizer, child.model, child.step_scale)``).
"""

from growsearch.grow._child import GrownChild, child_step_scale, grow_child
from growsearch.grow._ops import apply_op, apply_ops, new_entries
from growsearch.grow._recipe import (
    AUTO_SCOPE_MAX_EXPONENT,
    AUTO_SCOPE_MIN_SHRINK,
    AUTO_SHRINK_LONG,
    AUTO_SHRINK_SHORT,
    SHRINK_SCOPES,
    WarmStartRecipe,
    auto_shrink,
    output_layer,
    perturb_student,
    recalibrate_batchnorm,
    resolve_shrink_scope,
    shrink_scale_invariant,
    student_train_overrides,
)
from growsearch.grow._rescale import Rescaling, homogeneous_rescale, rescale_output_exponent

__all__ = [
    "AUTO_SCOPE_MAX_EXPONENT",
    "AUTO_SCOPE_MIN_SHRINK",
    "AUTO_SHRINK_LONG",
    "AUTO_SHRINK_SHORT",
    "SHRINK_SCOPES",
    "GrownChild",
    "Rescaling",
    "WarmStartRecipe",
    "apply_op",
    "apply_ops",
    "auto_shrink",
    "child_step_scale",
    "grow_child",
    "homogeneous_rescale",
    "new_entries",
    "rescale_output_exponent",
    "output_layer",
    "perturb_student",
    "recalibrate_batchnorm",
    "resolve_shrink_scope",
    "shrink_scale_invariant",
    "student_train_overrides",
]
