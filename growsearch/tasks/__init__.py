"""Tasks: what a trial trains for and how a split is scored.

>>> task = Classification(num_classes=10)
>>> task.objective
('val_acc', 'max')
"""

from growsearch.tasks._base import MODES, MeanLoss, Task, as_float, finite
from growsearch.tasks._classification import Classification
from growsearch.tasks._measure import measure, model_device
from growsearch.tasks._regression import LOSSES, Regression
from growsearch.tasks._user import UserTask, load_user_task

TASKS = ("classification", "regression")
"""The built-in tasks a search space can name."""

__all__ = [
    "LOSSES",
    "MODES",
    "TASKS",
    "Classification",
    "MeanLoss",
    "Regression",
    "Task",
    "UserTask",
    "as_float",
    "finite",
    "load_user_task",
    "measure",
    "model_device",
]
