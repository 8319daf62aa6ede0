"""``growsearch report``: one self-contained HTML file per run, plus PNG copies of its figures.

``RUN_DIR/report.html`` embeds plotly.js inline (no CDN: it opens offline, mailed or archived)
with the leaderboard and every figure of :mod:`growsearch.viz`; ``RUN_DIR/figures/*.png`` are
matplotlib drawings of the same figures (no browser needed to make them). Both follow the
run's objective (the metric and its direction in ``space.json``).
"""

from __future__ import annotations

import html
import json
import tempfile
import time
from pathlib import Path
from typing import cast

import pandas as pd

from growsearch.storage import Location
from growsearch.viz import (
    all_figures,
    format_value,
    leaderboard,
    lineage,
    metric_label,
    metric_test_column,
    metric_title,
    save_pngs,
)

FIGURE_CAPTIONS = {
    "lineage": "Each trial is a node coloured by validation accuracy, placed by generation; "
    "each edge is labelled with the Net2Net ops that grew the child from its parent.",
    "pareto_params": "Validation accuracy against parameter count; the orange staircase is the "
    "Pareto front (no other trial is both smaller and more accurate).",
    "pareto_flops": "Validation accuracy against FLOPs per example, with its Pareto front.",
    "best_so_far": "Best validation accuracy after each finished trial, against the training "
    "compute spent so far (trials in the order they finished, failed ones included).",
    "curves": "Learning curves along the lineage: a child's curve starts where its parent's "
    "ended, at the accuracy of the morphed model before it trained.",
}
"""The figures' captions for a classification search (objective ``val_acc``, ``max``)."""


def figure_captions(metric: str = "val_acc", mode: str = "max") -> dict[str, str]:
    """The figures' captions for a search whose objective is ``metric`` with ``mode``
    (:data:`FIGURE_CAPTIONS` for ``val_acc``)."""
    if metric == "val_acc" and mode == "max":
        return FIGURE_CAPTIONS
    title = metric_title(metric)
    better = f"a {'lower' if mode == 'min' else 'higher'} {metric}"
    return {
        "lineage": f"Each trial is a node coloured by {title} (brightest: best), placed by "
        "generation; each edge is labelled with the Net2Net ops that grew the child from its "
        "parent.",
        "pareto_params": f"{title} against parameter count; the orange staircase is the Pareto "
        f"front (no other trial is both smaller and has {better}).",
        "pareto_flops": f"{title} against FLOPs per example, with its Pareto front.",
        "best_so_far": f"Best {title} ({'lowest' if mode == 'min' else 'highest'}) after each "
        "finished trial, against the training compute spent so far (trials in the order they "
        "finished, failed ones included).",
        "curves": f"Learning curves of {title} along the lineage: a child's curve starts where "
        f"its parent's ended, at the {title} of the morphed model before it trained.",
    }


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
table.leaderboard { border-collapse: collapse; font-size: 0.9em; width: 100%; }
table.leaderboard th, table.leaderboard td { padding: 4px 8px; border-bottom: 1px solid #ddd; }
table.leaderboard th { background: #f4f4f4; text-align: left; }
table.leaderboard td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.leaderboard tr.best td { font-weight: bold; }
figure { margin: 2em 0; } figcaption { color: #555; font-size: 0.9em; }
"""

_NUMERIC = {"rank", "params", "flops", "epochs", "train_seconds"}
_HEADERS = {
    "rank": "rank", "trial_id": "trial", "parent_id": "parent", "ops": "ops",
    "arch_summary": "arch", "params": "params", "flops": "FLOPs", "epochs": "epochs",
    "train_seconds": "train s", "status": "status",
}  # fmt: skip
"""Headers of the leaderboard's columns other than the metric's (named by
:func:`~growsearch.viz.metric_label`: ``val acc``, ``val_mse``)."""


def _cell(col: str, v: object, metrics: tuple[str, ...] = ("val_acc", "test_acc")) -> str:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    if col in ("params", "flops"):
        return f"{int(cast(float, v)):,}"
    if col in metrics:
        return format_value(v, col)
    if col == "train_seconds":
        return f"{float(cast(float, v)):.1f}"
    return str(v)


def leaderboard_html(df: pd.DataFrame, metric: str = "val_acc", mode: str = "max") -> str:
    """The leaderboard, best first by ``metric`` and ``mode``, as an HTML table
    (``<table class="leaderboard">``)."""
    board = leaderboard(df, metric, mode)
    metrics = (metric, metric_test_column(metric))
    head = "".join(
        f"<th>{html.escape(_HEADERS.get(c) or metric_label(c))}</th>" for c in board.columns
    )
    rows = []
    for _, r in board.iterrows():
        cls = ' class="best"' if r["rank"] == "1" else ""
        cells = "".join(
            f"<td{' class=num' if c in _NUMERIC or c in metrics else ''}>"
            f"{html.escape(_cell(c, r[c], metrics))}</td>"
            for c in board.columns
        )
        rows.append(f'<tr id="trial-{html.escape(str(r["trial_id"]))}"{cls}>{cells}</tr>')
    return (
        f'<table class="leaderboard" id="leaderboard"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_report(
    df: pd.DataFrame, title: str, meta: str = "", metric: str = "val_acc", mode: str = "max"
) -> str:
    """The report's HTML: a pure function of the trials DataFrame and the objective's
    ``metric`` and ``mode`` (plotly.js inline, once)."""
    parts = []
    captions = figure_captions(metric, mode)
    leaves = int(lineage(df).nodes["y"].max()) + 1 if len(df) else 1
    for i, (name, fig) in enumerate(all_figures(df, metric=metric, mode=mode).items()):
        fig.update_layout(height=max(480, 45 * leaves + 160) if name == "lineage" else 520)
        div = fig.to_html(
            full_html=False,
            include_plotlyjs=i == 0,  # inline, in the first figure only: no network needed
            div_id=f"fig-{name}",
            config={"displaylogo": False, "responsive": True},
        )
        caption = html.escape(captions.get(name, ""))
        parts.append(f'<figure id="figure-{name}">{div}<figcaption>{caption}</figcaption></figure>')
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class=meta>{html.escape(meta)}</p>"
        f"<h2>Leaderboard</h2>{leaderboard_html(df, metric, mode)}"
        f"<h2>Figures</h2>{''.join(parts)}"
        "</body></html>\n"
    )


def write_report(run_dir: str | Path | Location, pngs: bool = True) -> Path | Location:
    """Write ``run_dir/report.html`` (and ``run_dir/figures/*.png``); returns the HTML's path.

    ``run_dir`` is a local folder or a URI (the files are written there, each atomically). The
    leaderboard and figures follow the run's objective (``space.json``).

    Raises:
        ConfigError: ``run_dir`` is not a growsearch run or has no finished trial yet.
    """
    from growsearch.api import Run
    from growsearch.results import check_run_dir
    from growsearch.runner import load_results

    run = check_run_dir(run_dir)
    df = load_results(run)
    metric, mode = Run(run).objective
    try:
        info = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        info = {}
    meta = (
        f"{len(df)} trials · started {info.get('created', '?')} · "
        f"report written {time.strftime('%Y-%m-%d %H:%M:%S')} · {run}"
    )
    page = render_report(df, f"growsearch run {run.name}", meta, metric=metric, mode=mode)
    (run / "report.html").write_text(page)
    if pngs:
        if run.local is not None:
            save_pngs(df, run.local / "figures", metric=metric, mode=mode)
        else:  # drawn here, then uploaded
            with tempfile.TemporaryDirectory(prefix="growsearch-figures-") as tmp:
                save_pngs(df, Path(tmp), metric=metric, mode=mode)
                (run / "figures").upload_dir(tmp)
    return run.local / "report.html" if run.local is not None else run / "report.html"
