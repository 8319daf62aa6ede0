"""Execution on Ray Tune: the trainable, the searcher bridge, callbacks and the results store."""

from growsearch.runner._results import COLUMNS, ResultsStore, load_results

__all__ = [
    "COLUMNS",
    "ResultsStore",
    "SearchInterrupted",
    "load_results",
    "resume_search",
    "run_search",
]


def __getattr__(name: str):  # these import Ray: only when asked for
    if name in ("run_search", "resume_search", "SearchInterrupted"):
        from growsearch.runner import _run

        return getattr(_run, name)
    raise AttributeError(name)
