"""Architecture specs and the one builder from spec to ``nn.Module``."""

from growsearch.arch._blocks import BasicBlock, ConvBlock, LinearBlock
from growsearch.arch._build import build, module_name, output_name
from growsearch.arch._cost import count_flops, count_params
from growsearch.arch._custom import mismatch
from growsearch.arch._factory import load_factory
from growsearch.arch._spec import FAMILIES, ArchSpec, Deepen, Layer, Op, Stage, Widen, op_from_dict

__all__ = [
    "ArchSpec",
    "BasicBlock",
    "ConvBlock",
    "Deepen",
    "FAMILIES",
    "Layer",
    "LinearBlock",
    "Op",
    "Stage",
    "Widen",
    "build",
    "count_flops",
    "count_params",
    "load_factory",
    "mismatch",
    "module_name",
    "op_from_dict",
    "output_name",
]
