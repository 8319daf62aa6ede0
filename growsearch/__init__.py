"""growsearch: neural architecture search that grows trained networks (Net2Net) on Ray Tune.

>>> run = growsearch.run("search_spaces/mnist1d_cnn.yaml", trials=5)
>>> run.trials, run.best, run.best_model()

See ``docs/api.md``.
"""

from growsearch.api import Run, resume, run
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
from growsearch.runner import SearchInterrupted, load_results, set_env_defaults
from growsearch.space import SearchSpace, load_space

set_env_defaults()  # before anything imports ray: a local Ray binds to loopback only

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GrowsearchError",
    "MorphError",
    "Run",
    "SearchInterrupted",
    "SearchSpace",
    "SpecError",
    "TrainingError",
    "__version__",
    "load_model",
    "load_results",
    "load_space",
    "resume",
    "run",
]
