"""Execution on Ray Tune: the trainable, the searcher bridge, callbacks and the results store."""

from growsearch.runner._results import COLUMNS, ResultsStore, load_results

__all__ = ["COLUMNS", "ResultsStore", "load_results", "run_search"]


def __getattr__(name: str):  # run_search imports Ray: only when asked for
    if name == "run_search":
        from growsearch.runner._run import run_search

        return run_search
    raise AttributeError(name)
