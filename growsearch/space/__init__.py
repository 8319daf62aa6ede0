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
    ObjectiveConfig,
    ResourcesConfig,
    SchedulerConfig,
    SeedModelConfig,
    TaskConfig,
    TrainingConfig,
)
from growsearch.space._fields import Section
from growsearch.space._load import (
    NoOptions,
    Objective,
    SearchSpace,
    UserModel,
    load_space,
    validate_options,
)
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
    "Objective",
    "ObjectiveConfig",
    "ResourcesConfig",
    "Rng",
    "SchedulerConfig",
    "SearchSpace",
    "Section",
    "SeedModelConfig",
    "TaskConfig",
    "TrainingConfig",
    "UserModel",
    "WidenConfig",
    "load_space",
    "plan_growth",
    "validate_options",
]
