"""The tables behind the figures, on a hand-made trials table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from growsearch.viz import (
    best_so_far,
    leaderboard,
    lineage,
    lineage_curves,
    op_label,
    ops_labels,
    pareto_front,
)
from tests.viz._runs import hand_made


def test_op_labels() -> None:
    assert op_label({"op": "widen", "target": "s0l0", "width": 48}) == "widen(s0l0→48)"
    assert op_label({"op": "deepen", "after": "s1l0", "name": "s1l1"}) == "deepen(s1l0→+s1l1)"
    assert ops_labels('[{"op": "widen", "target": "s1l0", "width": 32}]') == ["widen(s1l0→32)"]
    assert ops_labels("[]") == [] and ops_labels(None) == []


def test_lineage_nodes_are_trials_and_edges_are_parent_links() -> None:
    df = hand_made()
    tree = lineage(df)
    assert sorted(tree.nodes["trial_id"]) == sorted(df["trial_id"])
    edges = {(p, t): label for p, t, label in tree.edges.itertuples(index=False)}
    assert edges == {
        ("t0000", "t0001"): "widen(s0l0→48)",
        ("t0000", "t0002"): "deepen(s1l0→+s1l1)",
        ("t0001", "t0004"): "widen(s0l0→48), deepen(s1l0→+s1l1)",
        ("t0001", "t0003"): "deepen(s1l0→+s1l1)",
        ("t0002", "t0005"): "widen(s0l0→48)",
        ("t0002", "t0006"): "widen(s0l0→48)",
    }
    gen = dict(zip(tree.nodes["trial_id"], tree.nodes["generation"]))
    assert gen == {"t0000": 0, "t0001": 1, "t0002": 1, "t0003": 2, "t0004": 2, "t0005": 2,
                   "t0006": 2}  # fmt: skip
    y = dict(zip(tree.nodes["trial_id"], tree.nodes["y"]))
    leaves = ["t0003", "t0004", "t0005", "t0006"]
    assert sorted(y[t] for t in leaves) == [0.0, 1.0, 2.0, 3.0]  # one row per leaf
    assert y["t0001"] == (y["t0003"] + y["t0004"]) / 2  # a parent centred on its children
    assert y["t0000"] == (y["t0001"] + y["t0002"]) / 2


def test_lineage_draws_a_missing_parent_as_a_root() -> None:
    df = hand_made()
    df = df[df["trial_id"] != "t0002"]  # t0005, t0006 lose their parent
    tree = lineage(df)
    roots = tree.nodes[tree.nodes["generation"] == 0]["trial_id"]
    assert set(roots) == {"t0000", "t0005", "t0006"}
    assert not (tree.edges["parent_id"] == "t0002").any()


def test_pareto_front() -> None:
    df = hand_made()
    on = set(df[pareto_front(df, "params")]["trial_id"])
    # (params, acc): t0000 (1000, .80) t0002 (1500, .85) t0001 (4000, .90) t0005 (6000, .95);
    # t0004 (5000, .88) is beaten by t0001, t0006 by t0005, failed t0003 never on the front
    assert on == {"t0000", "t0002", "t0001", "t0005"}
    # brute force on random points: nothing on the front is dominated, everything off it is
    rng = np.random.default_rng(0)
    rand = df.iloc[[0] * 40].copy()
    rand["params"] = rng.integers(1, 20, 40)
    rand["val_acc"] = rng.integers(0, 10, 40) / 10
    mask = pareto_front(rand.reset_index(drop=True), "params").to_numpy()
    c, a = rand["params"].to_numpy(), rand["val_acc"].to_numpy()
    for i in range(40):
        dominated = any(
            c[j] <= c[i] and a[j] >= a[i] and (c[j] < c[i] or a[j] > a[i]) for j in range(40)
        )
        assert mask[i] == (not dominated)


def test_best_so_far_is_monotone_and_counts_failed_compute() -> None:
    df = hand_made()
    b = best_so_far(df)
    assert list(b["trial_id"]) == list(df["trial_id"])  # finish order
    assert b["best_val_acc"].is_monotonic_increasing
    assert list(b["best_val_acc"]) == [0.80, 0.90, 0.90, 0.90, 0.90, 0.95, 0.95]
    assert b["compute_seconds"].iloc[-1] == pytest.approx(df["train_seconds"].sum())
    assert b["compute_epochs"].iloc[-1] == df["epochs"].sum()
    assert np.isnan(b["val_acc"].iloc[4])  # the failed trial: compute, no accuracy


def test_child_curve_starts_where_parent_curve_ends() -> None:
    df = hand_made()
    c = lineage_curves(df)
    seed = c[c["trial_id"] == "t0000"]
    assert list(seed["epoch"]) == [1, 2, 3] and seed["trained"].all()
    child = c[c["trial_id"] == "t0001"]
    assert list(child["epoch"]) == [3, 4, 5]
    assert list(child["val_acc"]) == [0.80, 0.85, 0.90]  # acc_before, then its own epochs
    assert list(child["trained"]) == [False, True, True]
    grandchild = c[c["trial_id"] == "t0005"]  # parent t0002 ended at epoch 3 + 2 = 5
    assert list(grandchild["epoch"]) == [5, 6, 7]
    assert grandchild["val_acc"].iloc[0] == 0.85  # no acc_before: the parent's last accuracy


def test_leaderboard() -> None:
    board = leaderboard(hand_made())
    assert list(board["trial_id"][:3]) == ["t0005", "t0001", "t0004"]
    assert list(board["rank"][:3]) == ["1", "2", "3"]
    last = board.iloc[-1]
    assert last["trial_id"] == "t0003" and last["rank"] == "-"
    assert last["status"].startswith("failed: TrainingError")
    assert board.loc[board["trial_id"] == "t0000", "parent_id"].item() == "-"


def test_empty_table() -> None:
    empty = hand_made().iloc[:0]
    assert lineage(empty).nodes.empty and lineage(empty).edges.empty
    assert best_so_far(empty).empty and lineage_curves(empty).empty
    assert not pareto_front(empty).any() and leaderboard(empty).empty
    assert isinstance(leaderboard(empty), pd.DataFrame)
