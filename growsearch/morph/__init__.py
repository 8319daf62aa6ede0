"""The Net2Net morph engine: function-preserving widen and deepen of ordinary PyTorch models.

from growsearch.morph import widen, deepen, MorphError
child = widen(model, "features.3", 64, init="net2net", seed=0)
child = deepen(model, "features.4", init="net2net", calibration=x_batch, seed=0)
"""

from growsearch.exceptions import MorphError
from growsearch.morph._deepen import ResidualBlock, deepen, insert_after
from growsearch.morph._groups import (
    InsertedBlock,
    ModelSpace,
    Refusal,
    Site,
    WidthGroup,
    analyse_model,
    insert_block,
)
from growsearch.morph._inits import EXACT_INITS, INITS, WidenDefaults
from growsearch.morph._recipe import (
    WarmStartRecipe,
    auto_shrink,
    perturb_student,
    prepare_student,
    recalibrate_batchnorm,
    student_train_overrides,
)
from growsearch.morph._spec_ops import apply_op, apply_ops
from growsearch.morph._widen import widen

__all__ = [
    "EXACT_INITS",
    "INITS",
    "InsertedBlock",
    "ModelSpace",
    "Refusal",
    "Site",
    "WidthGroup",
    "analyse_model",
    "insert_block",
    "MorphError",
    "ResidualBlock",
    "WarmStartRecipe",
    "WidenDefaults",
    "apply_op",
    "apply_ops",
    "auto_shrink",
    "deepen",
    "insert_after",
    "perturb_student",
    "prepare_student",
    "recalibrate_batchnorm",
    "student_train_overrides",
    "widen",
]
