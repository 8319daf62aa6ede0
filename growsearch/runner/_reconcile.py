"""Resume reconciliation: make the searcher state and the results store agree again.

Each is written on its own after every trial event, so a crash can fall between the two
writes and leave one of them a trial behind the other; a resume closes that gap before it
asks the controller for anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from growsearch.checkpoint import load_checkpoint
from growsearch.exceptions import CheckpointError
from growsearch.results import ResultsStore, trial_row, trial_status
from growsearch.storage import Location

if TYPE_CHECKING:
    from growsearch.runner._searcher import ControllerSearcher


def reconcile(searcher: ControllerSearcher, store: ResultsStore, run_dir: Location) -> None:
    """A trial recorded in the parquet is finished for the controller too, and a finished
    trial missing from the parquet is recorded from its checkpoint's metrics."""
    known = store.known()
    df = store.df.set_index("trial_id") if len(store.df) else None
    for ours in list(searcher.issued):
        if ours in known and ours not in searcher.finished:
            assert df is not None  # ours in known implies store.df has rows
            row = df.loc[ours]
            status = str(row["status"])
            result = (
                None
                if status == "failed"
                else {
                    searcher.objective: row[searcher.objective],
                    "params": row["params"],
                    "flops": row["flops"],
                    "epoch": row["epochs"],
                }
            )
            searcher.observe(ours, status, result)
        if ours in known:
            if ours in searcher.pending:
                searcher.pending.remove(ours)
        elif ours in searcher.finished:
            try:
                m = load_checkpoint(run_dir / "models" / ours).meta.get("metrics", {})
                error = None
            except CheckpointError:
                m, error = {}, "lost before it was recorded"
            status = trial_status(m, searcher.objective)
            store.record(trial_row(searcher.issued[ours], m, status, error, []))
