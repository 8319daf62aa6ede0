"""Pure functions of the trials DataFrame: the tables every figure (plotly or matplotlib) draws.

Row order of ``trials.parquet`` is the order trials finished in; "compute so far" follows it.
Every table follows the search's objective: its ``metric`` (a column such as ``val_acc`` or
``val_mse``) and ``mode`` (``max``: higher is better, ``min``: lower is better); the defaults
are a classification search's, ``("val_acc", "max")``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from growsearch.results import pareto_front as pareto_front  # re-exported
from growsearch.results import ranked

OK_STATUSES = ("completed", "stopped")
DEFAULT_METRIC = "val_acc"
DEFAULT_MODE = "max"


def metric_title(metric: str) -> str:
    """An axis title for ``metric``: ``validation accuracy`` for ``val_acc``, else its name
    (``val_mse``)."""
    return "validation accuracy" if metric == "val_acc" else metric


def metric_label(metric: str) -> str:
    """A short label for ``metric`` in tables, hovers and colour bars: ``val acc`` and ``test
    acc`` for the accuracies, else the name itself (``val_mse``, ``test_mse``)."""
    return {"val_acc": "val acc", "test_acc": "test acc"}.get(metric, metric)


def metric_test_column(metric: str) -> str:
    """The test split's column of a validation ``metric``: ``test_mse`` for ``val_mse``."""
    return "test_" + metric.removeprefix("val_")


def format_value(v: Any, metric: str) -> str:
    """A metric's value as text ("" for none): 4 decimals for an accuracy, 4 significant
    digits for any other metric (an MSE may be 3000 or 1e-5)."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    return f"{float(v):.4f}" if metric in ("val_acc", "test_acc") else f"{float(v):.4g}"


def with_columns(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """``df`` with each of ``columns`` it lacks added as NaN (a metric no trial reported)."""
    missing = [c for c in columns if c not in df.columns]
    return df.assign(**{c: np.nan for c in missing}) if missing else df


def _json(v: Any, default: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return default
    if isinstance(v, str):
        return json.loads(v) if v else default
    return v


def _parent(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def op_label(op: dict[str, Any]) -> str:
    """One morph op as text: ``widen(s0l0→48)``, ``deepen(s0l0→+s0l1)``."""
    kind = op.get("op")
    if kind == "widen":
        return f"widen({op.get('target')}→{op.get('width')})"
    if kind == "deepen":
        return f"deepen({op.get('after')}→+{op.get('name')})"
    return str(kind)


def ops_labels(ops: Any) -> list[str]:
    """The labels of a trial's ``ops`` (a JSON list, or the list itself)."""
    return [op_label(op) for op in _json(ops, [])]


def succeeded(df: pd.DataFrame, metric: str = DEFAULT_METRIC) -> pd.Series:
    """Rows of successful trials with a value of ``metric`` (none when no row has the column)."""
    if metric not in df.columns:
        return pd.Series(False, index=df.index, dtype=bool)
    return df["status"].isin(OK_STATUSES) & df[metric].notna()


@dataclass(frozen=True)
class Lineage:
    """The trial tree laid out in layers: ``nodes`` (one row per trial) and ``edges``.

    ``nodes`` has the trials' columns plus ``generation`` (0 for a seed, parent's + 1 for a
    child; the x of a layered layout) and ``y`` (leaves one apart, a parent centred on its
    children). ``edges`` has ``parent_id``, ``trial_id`` and ``label`` (the child's ops).
    """

    nodes: pd.DataFrame
    edges: pd.DataFrame


def lineage(df: pd.DataFrame) -> Lineage:
    """The trials as a tree: a node per trial, an edge per parent link, labelled with its ops."""
    ids = [str(t) for t in df["trial_id"]]
    known = set(ids)
    parent = {t: _parent(p) for t, p in zip(ids, df["parent_id"])}
    children: dict[str | None, list[str]] = {}
    for t in sorted(ids):
        p = parent[t] if parent[t] in known else None  # a parent not in the table: draw a root
        children.setdefault(p, []).append(t)

    generation: dict[str, int] = {}
    y: dict[str, float] = {}
    leaves: list[str] = []

    def place(t: str, gen: int) -> float:  # tidy layout: leaves in DFS order, parents centred
        generation[t] = gen
        kids = children.get(t, [])
        if kids:
            y[t] = float(np.mean([place(k, gen + 1) for k in kids]))
        else:
            y[t] = float(len(leaves))
            leaves.append(t)
        return y[t]

    for root in children.get(None, []):
        place(root, 0)
    nodes = df.copy()
    nodes["trial_id"] = ids
    nodes["parent_id"] = [parent[t] for t in ids]
    nodes["generation"] = [generation.get(t, 0) for t in ids]
    nodes["y"] = [y.get(t, 0.0) for t in ids]
    nodes["ops_label"] = [", ".join(ops_labels(o)) for o in df["ops"]]
    edges = pd.DataFrame(
        [
            {"parent_id": parent[t], "trial_id": t, "label": label}
            for t, label in zip(ids, nodes["ops_label"])
            if parent[t] in known
        ],
        columns=["parent_id", "trial_id", "label"],
    )
    return Lineage(nodes=nodes.reset_index(drop=True), edges=edges)


def best_so_far(
    df: pd.DataFrame, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE
) -> pd.DataFrame:
    """The best value of ``metric`` after each finished trial, against the compute spent so far.

    Columns: ``trial_id``, ``<metric>`` (NaN for a failed trial), ``compute_seconds`` and
    ``compute_epochs`` (cumulative ``train_seconds`` / ``epochs``, failed trials included) and
    ``best_<metric>`` (the running maximum for ``mode`` ``max``, non-decreasing; the running
    minimum for ``min``, non-increasing; NaN until a trial succeeds).
    """
    ok = succeeded(df, metric)
    value = pd.to_numeric(with_columns(df, metric)[metric], errors="coerce").where(ok)
    seconds = pd.to_numeric(df["train_seconds"], errors="coerce").fillna(0.0).astype(float)
    epochs = pd.to_numeric(df["epochs"], errors="coerce").fillna(0).astype(float)
    best = value.cummin() if mode == "min" else value.cummax()  # both skip NaN
    return pd.DataFrame(
        {
            "trial_id": df["trial_id"].astype(str).to_numpy(),
            metric: value.to_numpy(dtype=float),
            "compute_seconds": seconds.cumsum().to_numpy(),
            "compute_epochs": epochs.cumsum().to_numpy(),
            f"best_{metric}": best.ffill().to_numpy(dtype=float),
        }
    )


def lineage_curves(df: pd.DataFrame, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """Every trial's learning curve on the epochs of its whole lineage.

    ``curve`` holds the objective's value per epoch, and ``acc_before`` its value for the
    morphed model before training; ``metric`` names the column they go in. A child's curve
    starts where its parent's ends: its first point is ``(parent's last epoch, acc_before)``
    (the parent's last value if unknown), then one point per epoch it trained. Columns:
    ``trial_id``, ``parent_id``, ``epoch``, ``<metric>``, ``trained`` (False for that
    starting point).
    """
    ids = [str(t) for t in df["trial_id"]]
    rows = {t: r for t, r in zip(ids, df.to_dict("records"))}
    curve = {t: [float(v) for v in _json(rows[t]["curve"], [])] for t in ids}
    end: dict[str, float] = {}

    def end_epoch(t: str, seen: frozenset[str] = frozenset()) -> float:
        if t not in end:
            p = _parent(rows[t]["parent_id"])
            start = end_epoch(p, seen | {t}) if p in rows and p not in seen else 0.0
            end[t] = start + len(curve[t])
        return end[t]

    out: list[tuple[str, str | None, float, float, bool]] = []
    for t in ids:
        p = _parent(rows[t]["parent_id"])
        start = end_epoch(t) - len(curve[t])
        if p in rows and curve[t]:  # a trial with no epoch draws nothing
            before = rows[t].get("acc_before")
            if before is None or pd.isna(before):
                before = curve[p][-1] if curve[p] else None
            if before is not None:
                out.append((t, p, start, float(before), False))
        out += [(t, p, start + i + 1, v, True) for i, v in enumerate(curve[t])]
    return pd.DataFrame(out, columns=["trial_id", "parent_id", "epoch", metric, "trained"])


LEADERBOARD_COLUMNS = [
    "rank", "trial_id", "parent_id", "ops", "arch_summary", "params", "flops", "val_acc",
    "test_acc", "epochs", "train_seconds", "status",
]  # fmt: skip


def leaderboard_columns(metric: str = DEFAULT_METRIC) -> list[str]:
    """The leaderboard's columns: :data:`LEADERBOARD_COLUMNS` with ``metric`` and its test
    column (:func:`metric_test_column`) in place of ``val_acc`` and ``test_acc``."""
    names = {"val_acc": metric, "test_acc": metric_test_column(metric)}
    return [names.get(c, c) for c in LEADERBOARD_COLUMNS]


def leaderboard(
    df: pd.DataFrame, metric: str = DEFAULT_METRIC, mode: str = DEFAULT_MODE
) -> pd.DataFrame:
    """Trials best first by ``metric`` and ``mode`` (:func:`~growsearch.results.ranked`'s
    order), failed ones last with their error as status; columns :func:`leaderboard_columns`
    (a metric's test column no trial reported is NaN)."""
    columns = leaderboard_columns(metric)
    df = with_columns(df, metric, metric_test_column(metric))
    ok = succeeded(df, metric)
    good = ranked(df[ok], metric, mode)
    good["rank"] = [str(i) for i in range(1, len(good) + 1)]
    bad = df[~ok].copy()
    bad["rank"] = "-"
    bad["status"] = [
        f"{s}: {e}" if isinstance(e, str) and e else str(s)
        for s, e in zip(bad["status"], bad["error"])
    ]
    out = pd.concat([good, bad]) if len(bad) else good
    out["ops"] = [", ".join(ops_labels(o)) for o in out["ops"]]
    out["parent_id"] = [_parent(p) or "-" for p in out["parent_id"]]
    return out[columns].reset_index(drop=True)
