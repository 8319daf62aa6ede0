"""Execution on Ray Tune: the trainable, the searcher bridge, callbacks and the results store."""

from growsearch.runner._results import COLUMNS, ResultsStore, load_results
from growsearch.runner._run import SearchInterrupted, resume_search, run_search

__all__ = [
    "COLUMNS",
    "ResultsStore",
    "SearchInterrupted",
    "load_results",
    "resume_search",
    "run_search",
]
