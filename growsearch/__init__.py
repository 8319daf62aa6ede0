"""growsearch: neural architecture search that grows trained networks (Net2Net) on Ray Tune."""

from growsearch.checkpoint import load_model
from growsearch.exceptions import (
    CheckpointError,
    ConfigError,
    DataError,
    GrowsearchError,
    MorphError,
    SpecError,
    TrainingError,
)
from growsearch.runner._results import load_results

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GrowsearchError",
    "MorphError",
    "SpecError",
    "TrainingError",
    "__version__",
    "load_model",
    "load_results",
]
