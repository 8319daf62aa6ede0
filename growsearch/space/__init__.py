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
from growsearch.space._fields import Section, boolean, integer, invalid
from growsearch.space._load import (
    NoOptions,
    Objective,
    SearchSpace,
    UserModel,
    load_space,
    validate_options,
)
from growsearch.space._mutations import (
    DeepenConfig,
    MutationSpace,
    Rng,
    WidenConfig,
    custom_encode,
    custom_params,
    plan_custom_growth,
    plan_growth,
)

__all__ = [
    "AugmentConfig",
    "BudgetConfig",
    "ControllerConfig",
    "DatasetConfig",
    "DeepenConfig",
    "MutationSpace",
    "NoOptions",
    "OBJECTIVES",
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
    "boolean",
    "custom_encode",
    "custom_params",
    "integer",
    "invalid",
    "load_space",
    "plan_custom_growth",
    "plan_growth",
    "validate_options",
]
