"""Figures of a run, each a pure function of the trials DataFrame (``load_results(run_dir)``).

Tables (``lineage``, ``pareto_front``, ``best_so_far``, ``lineage_curves``, ``leaderboard``),
their plotly figures for the dashboard and the HTML report, and matplotlib copies for PNGs.
Each takes the search's objective as ``metric`` and ``mode`` (``run_objective`` of the run's
``space.json``; default ``("val_acc", "max")``).
"""

from growsearch.viz._figures import (
    FIGURES,
    all_figures,
    best_so_far_figure,
    curves_figure,
    lineage_figure,
    pareto_figure,
)
from growsearch.viz._static import STATIC_FIGURES, save_pngs
from growsearch.viz._tables import (
    Lineage,
    best_so_far,
    format_value,
    leaderboard,
    leaderboard_columns,
    lineage,
    lineage_curves,
    metric_label,
    metric_test_column,
    metric_title,
    op_label,
    ops_labels,
    pareto_front,
    succeeded,
)

__all__ = [
    "FIGURES",
    "STATIC_FIGURES",
    "Lineage",
    "all_figures",
    "best_so_far",
    "best_so_far_figure",
    "curves_figure",
    "format_value",
    "leaderboard",
    "leaderboard_columns",
    "lineage",
    "lineage_curves",
    "lineage_figure",
    "metric_label",
    "metric_test_column",
    "metric_title",
    "op_label",
    "ops_labels",
    "pareto_figure",
    "pareto_front",
    "save_pngs",
    "succeeded",
]
