"""The exception hierarchy.

Every error caused by user input derives from :class:`GrowsearchError`; the CLI turns one into a
single line and exit status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GrowsearchError(Exception):
    """Base class of every error growsearch raises on purpose."""


class SpecError(GrowsearchError):
    """An architecture spec (or an operation on it) is invalid."""


class MorphError(GrowsearchError):
    """The morph engine cannot transform a model exactly; the message names the module and why."""


class CheckpointError(GrowsearchError):
    """A checkpoint is missing, truncated, corrupted or tampered with."""


class ConfigError(GrowsearchError):
    """A search space or command-line option is invalid."""


class DataError(GrowsearchError):
    """A dataset is unknown or cannot be read."""


class TrainingError(GrowsearchError):
    """Training diverged (NaN/inf loss) or failed."""


class ReportError(TrainingError):
    """A training loop broke the reporting contract: a metric that is not a finite number, the
    objective's metric missing, or no report at all."""
