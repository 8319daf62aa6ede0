"""Search spaces: the YAML file, validated once, and the mutations it allows.

>>> space = load_space("search_spaces/mnist1d_cnn.yaml", {"budget.trials": 5})
>>> space.seed_arch.summary(), space.controller.name
('cnn[32|64]', 'evolution')
"""

from growsearch.space._config import (
    OBJECTIVES,
    AugmentConfig,
    BudgetConfig,
    ControllerConfig,
    DatasetConfig,
    ResourcesConfig,
    SchedulerConfig,
    SeedModelConfig,
    TrainingConfig,
)
from growsearch.space._fields import Section
from growsearch.space._load import NoOptions, SearchSpace, UserModel, load_space, validate_options
from growsearch.space._mutations import DeepenConfig, MutationSpace, Rng, WidenConfig, plan_growth

__all__ = [
    "OBJECTIVES",
    "AugmentConfig",
    "BudgetConfig",
    "ControllerConfig",
    "DatasetConfig",
    "DeepenConfig",
    "MutationSpace",
    "NoOptions",
    "ResourcesConfig",
    "Rng",
    "SchedulerConfig",
    "SearchSpace",
    "Section",
    "SeedModelConfig",
    "TrainingConfig",
    "UserModel",
    "WidenConfig",
    "load_space",
    "plan_growth",
    "validate_options",
]
