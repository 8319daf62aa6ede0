"""Plotly figures of a run, each a pure function of the trials DataFrame.

Each figure follows the search's objective: ``metric`` (the column drawn, ``val_acc`` by
default) and ``mode`` (``max`` or ``min``: which way is better, for the Pareto front, the best
so far and the colour scales, whose brightest end is always the best).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from growsearch.viz._tables import (
    DEFAULT_METRIC,
    DEFAULT_MODE,
    _parent,
    best_so_far,
    format_value,
    lineage,
    lineage_curves,
    metric_label,
    metric_title,
    pareto_front,
    succeeded,
    with_columns,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

COLORSCALE = "Viridis"
FAILED_COLOR = "#d62728"
COST_TITLES = {"params": "parameters", "flops": "FLOPs (per example)"}


def figure_name(metric: str) -> str:
    """``metric`` as the subject of a figure's title: ``Accuracy`` for ``val_acc`` (a
    classification search's titles), else the metric's name."""
    return "Accuracy" if metric == "val_acc" else metric


def _hover_format(metric: str) -> str:
    """A plotly ``%{y}`` number format matching :func:`format_value`."""
    return ".4f" if metric == "val_acc" else ".4g"


def _figure(title: str) -> go.Figure:
    import plotly.graph_objects as go

    return _style(go.Figure(), title)


def _style(fig: go.Figure, title: str) -> go.Figure:
    # no fixed width: the dashboard and the report size the figure to its box
    fig.update_layout(
        title={"text": title, "x": 0.02},
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        hovermode="closest",
    )
    return fig


def _empty(fig: go.Figure) -> go.Figure:
    fig.add_annotation(
        text="no finished trials yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _hover(r: pd.Series, metric: str = DEFAULT_METRIC) -> str:
    value = format_value(r.get(metric), metric) or "-"
    params = "-" if pd.isna(r["params"]) else f"{int(r['params']):,}"
    text = (
        f"<b>{r['trial_id']}</b> {r['arch_summary']}<br>{metric_label(metric)} {value}"
        f"<br>params {params}"
    )
    if isinstance(r.get("parent_id"), str) and r["parent_id"]:
        text += f"<br>parent {r['parent_id']}"
    if r["status"] not in ("completed", "stopped"):
        text += f"<br>{r['status']}: {r['error']}"
    return text


def _node_label(r: pd.Series, newline: str = "<br>", metric: str = DEFAULT_METRIC) -> str:
    v = r.get(metric)
    if v is None or pd.isna(v):
        value = "failed"
    else:
        value = f"{float(v):.3f}" if metric == "val_acc" else f"{float(v):.3g}"
    return f"{r['trial_id']} {value}{newline}{r['arch_summary']}"


def lineage_figure(
    df: pd.DataFrame, compact: bool = False, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE
) -> go.Figure:
    """The lineage tree: a node per trial coloured by ``metric`` (brightest: best for
    ``mode``), left to right by generation, each edge labelled with the child's morph ops
    (``widen(s0l0→48)``).

    ``compact`` labels nodes with their trial id only (the metric and architecture on hover),
    for small boxes such as the dashboard's.
    """
    import plotly.graph_objects as go

    fig = _figure("Lineage: trials grown from their parents")
    if df.empty:
        return _empty(fig)
    tree = lineage(with_columns(df, metric))
    nodes = tree.nodes.set_index("trial_id", drop=False)
    ex: list[float | None] = []
    ey: list[float | None] = []
    for p, t in zip(tree.edges["parent_id"], tree.edges["trial_id"]):
        x0, y0, x1, y1 = (
            nodes.at[p, "generation"],
            nodes.at[p, "y"],
            nodes.at[t, "generation"],
            nodes.at[t, "y"],
        )
        ex += [x0, x1, None]
        ey += [y0, y1, None]
    fig.add_trace(
        go.Scatter(
            x=ex,
            y=ey,
            mode="lines",
            line={"color": "#b0b0b0", "width": 1.5},
            hoverinfo="skip",
            showlegend=False,
            name="edges",
        )
    )
    mid = tree.edges.merge(nodes[["generation", "y"]], left_on="parent_id", right_index=True)
    mid = mid.merge(
        nodes[["generation", "y"]], left_on="trial_id", right_index=True, suffixes=("_p", "_c")
    )
    fig.add_trace(
        go.Scatter(
            x=(mid["generation_p"] + mid["generation_c"]) / 2,
            y=(mid["y_p"] + mid["y_c"]) / 2,
            mode="text",
            text=[label.replace(", ", "<br>") for label in mid["label"]],
            textfont={"size": 9 if compact else 10, "color": "#555"},
            textposition="top center",
            hovertext=[
                f"{p} → {t}: {lbl}"
                for p, t, lbl in zip(mid["parent_id"], mid["trial_id"], mid["label"])
            ],
            hoverinfo="text",
            showlegend=False,
            name="ops",
        )
    )
    ok = succeeded(tree.nodes, metric)
    good, bad = tree.nodes[ok], tree.nodes[~ok]
    fig.add_trace(
        go.Scatter(
            x=good["generation"],
            y=good["y"],
            mode="markers+text",
            text=list(good["trial_id"])
            if compact
            else [_node_label(r, metric=metric) for _, r in good.iterrows()],
            textfont={"size": 9 if compact else 10},
            textposition="bottom center",
            marker={
                "size": 18,
                "color": good[metric],
                "colorscale": COLORSCALE,
                **({"reversescale": True} if mode == "min" else {}),  # the best is the brightest
                "showscale": True,
                "colorbar": {"title": {"text": metric_label(metric)}},
                "line": {"width": 1, "color": "#333"},
            },
            hovertext=[_hover(r, metric) for _, r in good.iterrows()],
            hoverinfo="text",
            showlegend=False,
            name="trials",
        )
    )
    if len(bad):
        fig.add_trace(
            go.Scatter(
                x=bad["generation"],
                y=bad["y"],
                mode="markers+text",
                text=bad["trial_id"],
                textposition="bottom center",
                marker={"size": 14, "symbol": "x", "color": FAILED_COLOR},
                hovertext=[_hover(r, metric) for _, r in bad.iterrows()],
                hoverinfo="text",
                name="failed",
            )
        )
    top = int(tree.nodes["generation"].max())
    fig.update_xaxes(
        title="generation",
        tickmode="linear",
        dtick=1,
        range=[-0.4, top + 0.4],
        showgrid=False,
        zeroline=False,
    )
    bottom = float(tree.nodes["y"].max())
    fig.update_yaxes(visible=False, range=[bottom + 0.7, -0.5])  # top-down, room for labels
    return fig


def pareto_figure(
    df: pd.DataFrame, cost: str = "params", metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE
) -> go.Figure:
    """``metric`` against ``cost`` (``params`` or ``flops``), the Pareto front drawn (no other
    trial is as small and as good by ``mode``, one of the two strictly)."""
    import plotly.graph_objects as go

    fig = _figure(f"{figure_name(metric)} vs {COST_TITLES.get(cost, cost)}: Pareto front")
    ok = df[succeeded(df, metric) & df[cost].notna()] if not df.empty else df
    if ok.empty:
        return _empty(fig)
    front = pareto_front(df, cost, metric, mode)
    rest, best = df[succeeded(df, metric) & ~front], df[front].sort_values(cost)
    for part, name, marker in (
        (rest, "trial", {"size": 9, "color": "#9ecae1", "line": {"width": 1, "color": "#3182bd"}}),
        (
            best,
            "Pareto front",
            {"size": 12, "color": "#e6550d", "line": {"width": 1, "color": "#333"}},
        ),
    ):
        fig.add_trace(
            go.Scatter(
                x=part[cost].astype(float),
                y=part[metric],
                mode="markers",
                name=name,
                marker=marker,
                hovertext=[_hover(r, metric) for _, r in part.iterrows()],
                hoverinfo="text",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=best[cost].astype(float),
            y=best[metric],
            mode="lines+text",
            line={"shape": "hv", "color": "#e6550d", "dash": "dot"},
            text=best["trial_id"],
            textposition="top left",
            hoverinfo="skip",
            name="front",
            showlegend=False,
        )
    )
    fig.update_xaxes(title=COST_TITLES.get(cost, cost), type="log")
    fig.update_yaxes(title=metric_title(metric))
    fig.update_layout(legend={"orientation": "h", "y": -0.2})
    return fig


def best_so_far_figure(
    df: pd.DataFrame, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE
) -> go.Figure:
    """The best value of ``metric`` so far (highest for ``mode`` ``max``, lowest for ``min``)
    against the training compute spent: cumulative training seconds (left) and cumulative
    epochs (right), trials in the order they finished."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06)
    _style(fig, f"Best {figure_name(metric).lower()} so far vs training compute")
    if df.empty:
        return _empty(fig)
    b = best_so_far(df, metric, mode)
    number = _hover_format(metric)
    for col, (x, title) in enumerate(
        (
            ("compute_seconds", "cumulative training seconds"),
            ("compute_epochs", "cumulative epochs"),
        ),
        start=1,
    ):
        fig.add_trace(
            go.Scatter(
                x=b[x],
                y=b[metric],
                mode="markers",
                name="trial",
                showlegend=col == 1,
                marker={"size": 7, "color": "#9ecae1"},
                text=b["trial_id"],
                hovertemplate=f"%{{text}}: {metric_label(metric)} %{{y:{number}}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=b[x],
                y=b[f"best_{metric}"],
                mode="lines",
                name="best so far",
                showlegend=col == 1,
                line={"shape": "hv", "color": "#e6550d", "width": 2.5},
                text=b["trial_id"],
                hovertemplate=f"after %{{text}}: best %{{y:{number}}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title=title, row=1, col=col)
    fig.update_yaxes(title=metric_title(metric), row=1, col=1)
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return fig


def curves_figure(
    df: pd.DataFrame, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE
) -> go.Figure:
    """Every trial's learning curve of ``metric`` (the ``curve`` column: the objective per
    epoch), each child's starting where its parent's ended (x: epochs of training along the
    lineage, warm start included), coloured by its final value (brightest: best for ``mode``)."""
    import plotly.graph_objects as go
    from plotly.colors import sample_colorscale

    fig = _figure("Learning curves along the lineage")
    curves = lineage_curves(df, metric) if not df.empty else None
    if curves is None or curves.empty:
        return _empty(fig)
    final = dict(
        zip(
            df["trial_id"].astype(str),
            pd.to_numeric(with_columns(df, metric)[metric], errors="coerce"),
        )
    )
    values = np.array([v for v in final.values() if not pd.isna(v)], dtype=float)
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    number = _hover_format(metric)
    for t, c in curves.groupby("trial_id", sort=False):
        value = final.get(t)
        frac = 0.5 if value is None or pd.isna(value) or hi == lo else (value - lo) / (hi - lo)
        color = sample_colorscale(COLORSCALE, [1.0 - frac if mode == "min" else frac])[0]
        parent = _parent(c["parent_id"].iloc[0])
        fig.add_trace(
            go.Scatter(
                x=c["epoch"],
                y=c[metric],
                mode="lines+markers",
                name=t,
                line={"color": color, "width": 2},
                marker={"size": [4 if trained else 0 for trained in c["trained"]], "color": color},
                hovertemplate=(
                    f"{t}"
                    + (f" (from {parent})" if parent else "")
                    + f"<br>epoch %{{x}}: {metric_label(metric)} %{{y:{number}}}<extra></extra>"
                ),
            )
        )
        last = c.iloc[-1]
        fig.add_annotation(
            x=last["epoch"],
            y=last[metric],
            text=t,
            showarrow=False,
            xanchor="left",
            xshift=4,
            font={"size": 9, "color": color},
        )
    fig.update_xaxes(title="epochs along the lineage")
    fig.update_yaxes(title=metric_title(metric))
    fig.update_layout(showlegend=False)
    return fig


def _pareto(cost: str) -> Callable[..., go.Figure]:
    def make(df: pd.DataFrame, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE) -> Any:
        return pareto_figure(df, cost, metric=metric, mode=mode)

    return make


FIGURES: dict[str, Callable[..., go.Figure]] = {
    "lineage": lineage_figure,
    "pareto_params": _pareto("params"),
    "pareto_flops": _pareto("flops"),
    "best_so_far": best_so_far_figure,
    "curves": curves_figure,
}
"""Each figure by name: ``make(df)``, or ``make(df, metric=..., mode=...)`` for a search
whose objective is not ``("val_acc", "max")``."""


def all_figures(
    df: pd.DataFrame, compact: bool = False, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE
) -> dict[str, go.Figure]:
    """Every figure of a run by name (the names of ``FIGURES``), in report order, drawing the
    objective's ``metric`` with ``mode`` (see :func:`growsearch.results.run_objective`).

    ``compact``: the lineage tree with short node labels (see :func:`lineage_figure`).
    """
    figs = {name: make(df, metric=metric, mode=mode) for name, make in FIGURES.items()}
    if compact:
        figs["lineage"] = lineage_figure(df, compact=True, metric=metric, mode=mode)
    return figs
