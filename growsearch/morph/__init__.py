"""The Net2Net morph engine: function-preserving widen and deepen of ordinary PyTorch models.

It depends on torch only. Growing an :class:`~growsearch.arch.ArchSpec` and the warm-start
recipe sit above it, in :mod:`growsearch.grow`.

    from growsearch.morph import widen, deepen, analyse_model, insert_block
    child = widen(model, "features.3", 64, init="net2net", seed=0)
    child = deepen(model, "features.4", init="net2net", calibration=x_batch, seed=0)
"""

from growsearch.exceptions import MorphError
from growsearch.morph._blocks import ConvBlock, LinearBlock, bn_nd, conv_nd
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
from growsearch.morph._inits import EXACT_INITS, INITS, WidenDefaults, check_init
from growsearch.morph._trace import WEIGHTED, trace
from growsearch.morph._widen import widen

__all__ = [
    "EXACT_INITS",
    "INITS",
    "ConvBlock",
    "InsertedBlock",
    "LinearBlock",
    "ModelSpace",
    "MorphError",
    "Refusal",
    "ResidualBlock",
    "Site",
    "WEIGHTED",
    "WidenDefaults",
    "WidthGroup",
    "analyse_model",
    "bn_nd",
    "check_init",
    "conv_nd",
    "deepen",
    "insert_after",
    "insert_block",
    "trace",
    "widen",
]
