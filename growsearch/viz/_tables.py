"""Pure functions of the trials DataFrame: the tables every figure (plotly or matplotlib) draws.

Row order of ``trials.parquet`` is the order trials finished in; "compute so far" follows it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from growsearch.runner._results import pareto_front as pareto_front  # re-exported
from growsearch.runner._results import ranked

OK_STATUSES = ("completed", "stopped")


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


def succeeded(df: pd.DataFrame) -> pd.Series:
    """Rows with a usable accuracy."""
    return df["status"].isin(OK_STATUSES) & df["val_acc"].notna()


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


def best_so_far(df: pd.DataFrame) -> pd.DataFrame:
    """Best validation accuracy after each finished trial, against the compute spent so far.

    Columns: ``trial_id``, ``val_acc`` (NaN for a failed trial), ``compute_seconds`` and
    ``compute_epochs`` (cumulative ``train_seconds`` / ``epochs``, failed trials included) and
    ``best_val_acc`` (non-decreasing; NaN until a trial succeeds).
    """
    ok = succeeded(df)
    acc = pd.to_numeric(df["val_acc"], errors="coerce").where(ok)
    seconds = pd.to_numeric(df["train_seconds"], errors="coerce").fillna(0.0).astype(float)
    epochs = pd.to_numeric(df["epochs"], errors="coerce").fillna(0).astype(float)
    return pd.DataFrame(
        {
            "trial_id": df["trial_id"].astype(str).to_numpy(),
            "val_acc": acc.to_numpy(dtype=float),
            "compute_seconds": seconds.cumsum().to_numpy(),
            "compute_epochs": epochs.cumsum().to_numpy(),
            "best_val_acc": acc.cummax().ffill().to_numpy(dtype=float),  # cummax skips NaN
        }
    )


def lineage_curves(df: pd.DataFrame) -> pd.DataFrame:
    """Every trial's learning curve on the epochs of its whole lineage.

    A child's curve starts where its parent's ends: its first point is ``(parent's last epoch,
    acc_before)`` (the morphed model before training; the parent's last accuracy if unknown),
    then one point per epoch it trained. Columns: ``trial_id``, ``parent_id``, ``epoch``,
    ``val_acc``, ``trained`` (False for that starting point).
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
    return pd.DataFrame(out, columns=["trial_id", "parent_id", "epoch", "val_acc", "trained"])


LEADERBOARD_COLUMNS = [
    "rank", "trial_id", "parent_id", "ops", "arch_summary", "params", "flops", "val_acc",
    "test_acc", "epochs", "train_seconds", "status",
]  # fmt: skip


def leaderboard(df: pd.DataFrame) -> pd.DataFrame:
    """Trials best first (validation accuracy), failed ones last with their error as status."""
    ok = succeeded(df)
    good = ranked(df[ok])
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
    return out[LEADERBOARD_COLUMNS].reset_index(drop=True)
