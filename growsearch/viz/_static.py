"""Matplotlib (Agg) copies of the figures, for PNG files.

Plotly's own static export needs kaleido and a Chrome; matplotlib draws the same tables with
no browser, offline, the same way on every machine. Like the plotly figures, each draws the
objective's ``metric`` with its ``mode`` (default ``("val_acc", "max")``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from growsearch.viz._figures import COST_TITLES, _node_label, figure_name
from growsearch.viz._tables import (
    DEFAULT_METRIC,
    DEFAULT_MODE,
    best_so_far,
    lineage,
    lineage_curves,
    metric_label,
    metric_title,
    pareto_front,
    succeeded,
    with_columns,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CMAP = "viridis"


def _cmap(mode: str) -> str:
    """The colour map for ``mode``: reversed for ``min``, so the best is the brightest."""
    return CMAP + "_r" if mode == "min" else CMAP


def _figure(ncols: int = 1, size: tuple[float, float] = (8.0, 5.0)) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110, layout="constrained")  # no pyplot: no global state
    axes = fig.subplots(1, ncols, sharey=True, squeeze=False)[0]
    return fig, list(axes)


def _empty(fig: Figure, ax: Axes) -> Figure:
    ax.text(0.5, 0.5, "no finished trials yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _value_range(df: pd.DataFrame, metric: str = DEFAULT_METRIC) -> tuple[float, float]:
    values = pd.to_numeric(with_columns(df, metric)[metric], errors="coerce").dropna()
    if values.empty:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    return (lo, hi) if hi > lo else (lo - 0.01, hi + 0.01)


def lineage_png(df: pd.DataFrame, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE) -> Figure:
    """The lineage tree (see :func:`growsearch.viz.lineage_figure`)."""
    tree = lineage(with_columns(df, metric)) if not df.empty else None
    n_gen = 1 if tree is None else int(tree.nodes["generation"].max()) + 1
    n_leaf = 1 if tree is None else int(tree.nodes["y"].max()) + 1
    fig, (ax,) = _figure(size=(max(7.0, 2.6 * n_gen + 2), max(3.5, 0.9 * n_leaf + 1.5)))
    if tree is None:
        return _empty(fig, ax)
    nodes = tree.nodes.set_index("trial_id", drop=False)
    for p, t, label in zip(tree.edges["parent_id"], tree.edges["trial_id"], tree.edges["label"]):
        x0, y0 = nodes.at[p, "generation"], nodes.at[p, "y"]
        x1, y1 = nodes.at[t, "generation"], nodes.at[t, "y"]
        ax.plot([x0, x1], [y0, y1], color="#b0b0b0", lw=1.2, zorder=1)
        ax.text(
            (x0 + x1) / 2,
            (y0 + y1) / 2,
            label.replace(", ", "\n"),
            fontsize=7,
            color="#555",
            ha="center",
            va="bottom",
            zorder=3,
        )
    ok = succeeded(tree.nodes, metric)
    good, bad = tree.nodes[ok], tree.nodes[~ok]
    lo, hi = _value_range(good, metric)
    sc = ax.scatter(
        good["generation"],
        good["y"],
        c=good[metric],
        cmap=_cmap(mode),
        vmin=lo,
        vmax=hi,
        s=260,
        edgecolors="#333",
        zorder=2,
    )
    ax.scatter(bad["generation"], bad["y"], marker="x", s=120, color="#d62728", zorder=2)
    for _, r in tree.nodes.iterrows():
        ax.annotate(
            _node_label(r, "\n", metric),
            (r["generation"], r["y"]),
            xytext=(0, -13),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8,
        )
    fig.colorbar(sc, ax=ax, label=metric_label(metric))
    ax.set_xticks(range(n_gen))
    ax.set_xlim(-0.5, n_gen - 0.5)
    ax.set_ylim(n_leaf - 0.4, -0.6)
    ax.set_yticks([])
    ax.set_xlabel("generation")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_title("Lineage: trials grown from their parents", loc="left")
    return fig


def pareto_png(
    df: pd.DataFrame, cost: str = "params", metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE
) -> Figure:
    """``metric`` against ``cost`` with the Pareto front (see
    :func:`growsearch.viz.pareto_figure`)."""
    fig, (ax,) = _figure()
    ok = succeeded(df, metric) & df[cost].notna() if not df.empty else None
    if ok is None or not ok.any():
        return _empty(fig, ax)
    front = pareto_front(df, cost, metric, mode)
    rest, best = df[ok & ~front], df[front].sort_values(cost)
    ax.scatter(
        rest[cost].astype(float),
        rest[metric],
        s=40,
        color="#9ecae1",
        edgecolors="#3182bd",
        label="trial",
    )
    ax.step(best[cost].astype(float), best[metric], where="post", color="#e6550d", ls=":")
    ax.scatter(
        best[cost].astype(float),
        best[metric],
        s=70,
        color="#e6550d",
        edgecolors="#333",
        label="Pareto front",
        zorder=3,
    )
    for _, r in best.iterrows():
        ax.annotate(
            r["trial_id"],
            (float(r[cost]), r[metric]),
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlabel(COST_TITLES.get(cost, cost))
    ax.set_ylabel(metric_title(metric))
    ax.legend(loc="upper right" if mode == "min" else "lower right")  # away from the front
    ax.grid(alpha=0.3)
    title = f"{figure_name(metric)} vs {COST_TITLES.get(cost, cost)}: Pareto front"
    ax.set_title(title, loc="left")
    return fig


def best_so_far_png(
    df: pd.DataFrame, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE
) -> Figure:
    """The best ``metric`` so far vs compute (see :func:`growsearch.viz.best_so_far_figure`)."""
    fig, axes = _figure(ncols=2, size=(10.0, 4.5))
    if df.empty:
        return _empty(fig, axes[0])
    b = best_so_far(df, metric, mode)
    for ax, x, title in zip(
        axes,
        ("compute_seconds", "compute_epochs"),
        ("cumulative training seconds", "cumulative epochs"),
    ):
        ax.scatter(b[x], b[metric], s=25, color="#9ecae1", label="trial")
        ax.step(
            b[x], b[f"best_{metric}"], where="post", color="#e6550d", lw=2.2, label="best so far"
        )
        ax.set_xlabel(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(metric_title(metric))
    axes[0].legend(loc="upper right" if mode == "min" else "lower right")
    title = f"Best {figure_name(metric).lower()} so far vs training compute"
    fig.suptitle(title, x=0.02, ha="left")
    return fig


def curves_png(df: pd.DataFrame, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE) -> Figure:
    """Learning curves along the lineage (see :func:`growsearch.viz.curves_figure`)."""
    import matplotlib as mpl

    fig, (ax,) = _figure()
    curves = lineage_curves(df, metric) if not df.empty else None
    if curves is None or curves.empty:
        return _empty(fig, ax)
    values = pd.to_numeric(with_columns(df, metric)[metric], errors="coerce")
    final = dict(zip(df["trial_id"].astype(str), values))
    lo, hi = _value_range(df, metric)
    cmap = mpl.colormaps[_cmap(mode)]
    for t, c in curves.groupby("trial_id", sort=False):
        value = final.get(t)
        color = cmap(0.5 if value is None or np.isnan(value) else (value - lo) / (hi - lo))
        ax.plot(c["epoch"], c[metric], color=color, lw=1.8)
        trained = c[c["trained"]]
        ax.scatter(trained["epoch"], trained[metric], color=color, s=12)
        ax.annotate(
            t,
            (c["epoch"].iloc[-1], c[metric].iloc[-1]),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=7,
            color=color,
            va="center",
        )
    ax.set_xlabel("epochs along the lineage")
    ax.set_ylabel(metric_title(metric))
    ax.grid(alpha=0.3)
    ax.set_title("Learning curves along the lineage", loc="left")
    return fig


def _pareto(cost: str) -> Callable[..., Figure]:
    def make(df: pd.DataFrame, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE) -> Figure:
        return pareto_png(df, cost, metric=metric, mode=mode)

    return make


STATIC_FIGURES: dict[str, Callable[..., Figure]] = {
    "lineage": lineage_png,
    "pareto_params": _pareto("params"),
    "pareto_flops": _pareto("flops"),
    "best_so_far": best_so_far_png,
    "curves": curves_png,
}
"""Each figure by name: ``make(df)``, or ``make(df, metric=..., mode=...)`` (as
:data:`growsearch.viz.FIGURES`)."""


def save_pngs(
    df: pd.DataFrame, folder: str | Path, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE
) -> list[Path]:
    """Write every figure of the objective's ``metric`` and ``mode`` as ``folder/<name>.png``;
    returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in STATIC_FIGURES.items():
        path = folder / f"{name}.png"
        make(df, metric=metric, mode=mode).savefig(path)
        paths.append(path)
    return paths
