"""The plotly figures, their matplotlib copies and the HTML report, on a hand-made table."""

from __future__ import annotations

import re

import numpy as np
import pytest

from growsearch.report import render_report
from growsearch.viz import (
    FIGURES,
    STATIC_FIGURES,
    all_figures,
    best_so_far_figure,
    curves_figure,
    lineage_figure,
    pareto_figure,
    save_pngs,
)
from tests.viz._runs import hand_made

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _trace(fig, name):
    return next(t for t in fig.data if t.name == name)


def test_lineage_figure() -> None:
    df = hand_made()
    fig = lineage_figure(df)
    nodes, failed = _trace(fig, "trials"), _trace(fig, "failed")
    assert len(nodes.x) == 6 and len(failed.x) == 1  # every trial is a node
    assert all(label.split()[0] in set(df["trial_id"]) for label in nodes.text)
    assert list(nodes.marker.color) == list(df[df["status"] == "completed"]["val_acc"])
    ops = _trace(fig, "ops")
    assert len(ops.x) == 6  # a label per parent link
    assert "widen(s0l0→48)<br>deepen(s1l0→+s1l1)" in ops.text
    edges = _trace(fig, "edges")
    assert sum(v is None for v in edges.x) == 6


def test_pareto_figure() -> None:
    fig = pareto_figure(hand_made(), "params")
    front = _trace(fig, "Pareto front")
    assert sorted(front.x) == [1000, 1500, 4000, 6000]
    assert len(_trace(fig, "trial").x) == 2  # t0004, t0006; the failed trial is not drawn
    assert fig.layout.xaxis.type == "log"
    assert "FLOPs" in pareto_figure(hand_made(), "flops").layout.xaxis.title.text


def test_best_so_far_figure_is_monotone() -> None:
    fig = best_so_far_figure(hand_made())
    best = [t for t in fig.data if t.name == "best so far"]
    assert len(best) == 2  # vs seconds, vs epochs
    for t in best:
        assert np.all(np.diff(np.asarray(t.y, dtype=float)) >= 0)
        assert np.all(np.diff(np.asarray(t.x, dtype=float)) >= 0)


def test_curves_figure() -> None:
    fig = curves_figure(hand_made())
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"t0000", "t0001", "t0002", "t0004", "t0005", "t0006"}
    assert list(by_name["t0001"].x) == [3, 4, 5]  # starts where t0000 ended


def test_empty_run_draws_placeholders() -> None:
    empty = hand_made().iloc[:0]
    for name, fig in all_figures(empty).items():
        texts = [a.text for a in fig.layout.annotations]
        assert "no finished trials yet" in texts, name


def test_pngs(tmp_path) -> None:
    paths = save_pngs(hand_made(), tmp_path / "figures")
    assert [p.stem for p in paths] == list(STATIC_FIGURES) == list(FIGURES)
    for p in paths:
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 10_000
    save_pngs(hand_made().iloc[:0], tmp_path / "empty")  # no trials: still draws


def test_report_is_self_contained() -> None:
    page = render_report(hand_made(), "growsearch run test")
    assert page.count("<figure") == len(FIGURES)
    assert 'id="leaderboard"' in page and page.count('<tr id="trial-') == 7
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js inline, no CDN
    assert not re.search(r"<link[^>]+href=", page)
    assert page.count("Plotly.newPlot") == len(FIGURES)
    assert len(page) > 3_000_000  # plotly.js itself is embedded (once)
    assert len(page) < 2 * 3_000_000


@pytest.mark.parametrize("name", list(FIGURES))
def test_figures_serialize(name: str) -> None:
    fig = FIGURES[name](hand_made())
    assert fig.to_json()  # what the dashboard stores
