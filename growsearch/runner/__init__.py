"""Execution on Ray Tune: the trainable, the searcher bridge, callbacks and the results store."""

from growsearch.results import COLUMNS, ResultsStore, load_results
from growsearch.runner._ray import set_env_defaults
from growsearch.runner._run import SearchInterrupted, controller_class, resume_search, run_search

__all__ = [
    "COLUMNS",
    "ResultsStore",
    "SearchInterrupted",
    "controller_class",
    "load_results",
    "resume_search",
    "run_search",
    "set_env_defaults",
]
