"""Every display layer follows the run's objective: a metric to minimise (``val_mse``, ``min``)
ranks, fronts, best-so-far and labels by that metric, not by ``val_acc``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from growsearch.api import Run
from growsearch.cli import main
from growsearch.dashboard import summary_note
from growsearch.report import leaderboard_html, render_report, write_report
from growsearch.results import ranked
from growsearch.viz import (
    FIGURES,
    best_so_far,
    best_so_far_figure,
    curves_figure,
    leaderboard,
    lineage_curves,
    lineage_figure,
    pareto_figure,
    pareto_front,
)
from growsearch.viz._static import best_so_far_png, curves_png, lineage_png, pareto_png
from tests.viz._runs import hand_made, row

MSE, MIN = "val_mse", "min"
BEST_FIRST = ["t0005", "t0001", "t0004", "t0002", "t0006", "t0000"]  # lowest val_mse first
FRONT = {"t0000", "t0002", "t0001", "t0005"}  # (params, val_mse) none is smaller and lower


def mse_frame() -> pd.DataFrame:
    """The hand-made lineage as a regression search: ``val_mse``/``test_mse`` columns, the
    curves in MSE (falling), ``val_acc``/``test_acc`` NaN as for any task but classification."""
    w = {"op": "widen", "target": "s0l0", "width": 48}
    d = {"op": "deepen", "after": "s1l0", "name": "s1l1"}
    rows = [
        row("t0000", None, [], [[8], [16]], 1000, 0.50, curve=[0.9, 0.6, 0.50], seconds=3.0),
        row("t0001", "t0000", [w], [[48], [16]], 4000, 0.30, curve=[0.4, 0.30], acc_before=0.5),
        row("t0002", "t0000", [d], [[8], [16, 16]], 1500, 0.40, curve=[0.45, 0.40]),
        row("t0004", "t0001", [w, d], [[48], [16, 16]], 5000, 0.35, curve=[0.36, 0.35]),
        row("t0003", "t0001", [d], [[48], [16, 16]], 4500, None, status="failed", seconds=0.5),
        row("t0005", "t0002", [w], [[48], [16, 16]], 6000, 0.20, curve=[0.25, 0.20]),
        row("t0006", "t0002", [w], [[48], [16, 16]], 6000, 0.45, curve=[0.5, 0.45]),
    ]  # fmt: skip
    df = pd.DataFrame(rows)
    df["val_mse"], df["test_mse"] = df["val_acc"], df["test_acc"] + 0.02
    df["val_acc"], df["test_acc"] = np.nan, np.nan
    return df


def _trace(fig, name):
    return next(t for t in fig.data if t.name == name)


# ---- tables ----------------------------------------------------------------------------------
def test_leaderboard_ranks_the_lowest_first() -> None:
    df = mse_frame()
    board = leaderboard(df, MSE, MIN)
    assert list(board["trial_id"]) == [*BEST_FIRST, "t0003"]
    assert list(board["trial_id"][:6]) == list(ranked(df, MSE, MIN)["trial_id"])
    assert list(board["rank"]) == ["1", "2", "3", "4", "5", "6", "-"]
    assert {"val_mse", "test_mse"} <= set(board.columns) and "val_acc" not in board.columns
    assert board["val_mse"].iloc[0] == 0.20 and board["test_mse"].iloc[0] == pytest.approx(0.21)
    # by val_acc (all NaN here) nothing succeeded: every trial is unranked
    assert set(leaderboard(df)["rank"]) == {"-"}


def test_best_so_far_is_the_running_minimum() -> None:
    b = best_so_far(mse_frame(), MSE, MIN)
    assert list(b["best_val_mse"]) == [0.50, 0.30, 0.30, 0.30, 0.30, 0.20, 0.20]
    assert b["best_val_mse"].is_monotonic_decreasing
    assert np.isnan(b["val_mse"].iloc[4])  # the failed trial: compute, no value
    # the default (max) is the running maximum of the same column
    assert list(best_so_far(mse_frame(), MSE)["best_val_mse"])[-1] == 0.50


def test_pareto_front_with_min_mode() -> None:
    df = mse_frame()
    assert set(df[pareto_front(df, "params", MSE, MIN)]["trial_id"]) == FRONT
    # maximising the same column would keep only the smallest model (the worst MSE)
    assert set(df[pareto_front(df, "params", MSE, "max")]["trial_id"]) == {"t0000"}


def test_lineage_curves_hold_the_objective() -> None:
    c = lineage_curves(mse_frame(), MSE)
    assert "val_mse" in c.columns and "val_acc" not in c.columns
    child = c[c["trial_id"] == "t0001"]
    assert list(child["epoch"]) == [3, 4, 5]
    assert list(child["val_mse"]) == [0.5, 0.4, 0.30]  # acc_before (in MSE), then its epochs


# ---- figures ---------------------------------------------------------------------------------
def test_pareto_figure_names_the_metric_and_draws_the_min_front() -> None:
    fig = pareto_figure(mse_frame(), "params", metric=MSE, mode=MIN)
    assert fig.layout.yaxis.title.text == "val_mse"
    assert "val_mse" in fig.layout.title.text
    front = _trace(fig, "Pareto front")
    assert sorted(front.x) == [1000, 1500, 4000, 6000]
    assert list(front.y) == [0.50, 0.40, 0.30, 0.20]  # smallest first, MSE falling
    assert len(_trace(fig, "trial").x) == 2  # t0004, t0006


def test_best_so_far_figure_is_non_increasing() -> None:
    fig = best_so_far_figure(mse_frame(), metric=MSE, mode=MIN)
    assert fig.layout.yaxis.title.text == "val_mse"
    best = [t for t in fig.data if t.name == "best so far"]
    assert len(best) == 2
    for t in best:
        y = np.asarray(t.y, dtype=float)
        assert np.all(np.diff(y) <= 0) and y[-1] == 0.20


def test_lineage_and_curves_figures_use_the_metric() -> None:
    df = mse_frame()
    lin = lineage_figure(df, metric=MSE, mode=MIN)
    nodes = _trace(lin, "trials")
    assert list(nodes.marker.color) == list(df[df["status"] == "completed"]["val_mse"])
    assert nodes.marker.colorbar.title.text == "val_mse" and nodes.marker.reversescale
    assert "t0005 0.2<br>" in " ".join(nodes.text)
    assert len(_trace(lin, "failed").x) == 1
    curves = curves_figure(df, metric=MSE, mode=MIN)
    assert curves.layout.yaxis.title.text == "val_mse"
    by_name = {t.name: t for t in curves.data}
    assert list(by_name["t0001"].y) == [0.5, 0.4, 0.30]


def test_classification_figures_keep_their_titles() -> None:
    df = hand_made()
    assert pareto_figure(df).layout.yaxis.title.text == "validation accuracy"
    assert best_so_far_figure(df).layout.yaxis.title.text == "validation accuracy"
    assert curves_figure(df).layout.yaxis.title.text == "validation accuracy"
    assert pareto_figure(df).layout.title.text.startswith("Accuracy vs parameters")
    assert not _trace(lineage_figure(df), "trials").marker.reversescale


@pytest.mark.parametrize("name", list(FIGURES))
def test_figures_of_a_min_objective_serialize(name: str) -> None:
    fig = FIGURES[name](mse_frame(), metric=MSE, mode=MIN)
    assert fig.to_json() and "val acc" not in fig.to_json()


def test_static_figures_name_the_metric() -> None:
    df = mse_frame()
    assert pareto_png(df, "params", MSE, MIN).axes[0].get_ylabel() == "val_mse"
    assert best_so_far_png(df, MSE, MIN).axes[0].get_ylabel() == "val_mse"
    assert curves_png(df, MSE, MIN).axes[0].get_ylabel() == "val_mse"
    lin = lineage_png(df, MSE, MIN)
    assert lin.axes[-1].get_ylabel() == "val_mse"  # the colour bar
    assert pareto_png(hand_made()).axes[0].get_ylabel() == "validation accuracy"


# ---- report and dashboard note ---------------------------------------------------------------
def _body_ids(page: str) -> list[str]:
    return [part.split('"', 1)[0] for part in page.split('<tr id="trial-')[1:]]


def test_report_leaderboard_and_note_follow_the_objective() -> None:
    df = mse_frame()
    table = leaderboard_html(df, MSE, MIN)
    assert "<th>val_mse</th><th>test_mse</th>" in table and "val acc" not in table
    assert _body_ids(table) == [*BEST_FIRST, "t0003"]
    assert '<tr id="trial-t0005" class="best">' in table
    page = render_report(df, "growsearch run reg", metric=MSE, mode=MIN)
    assert _body_ids(page[page.index('id="leaderboard"') :]) == [*BEST_FIRST, "t0003"]
    assert "validation accuracy" not in page.split("<h2>Figures</h2>")[1].split("<script")[0]
    note = summary_note("reg", df, metric=MSE, mode=MIN)
    assert "| val_mse | test_mse |" in note and "best **t0005**" in note
    lines = [ln for ln in note.splitlines() if ln.startswith("| ") and "rank" not in ln]
    assert [ln.split(" | ")[1] for ln in lines] == [*BEST_FIRST, "t0003"]
    # classification keeps its headers
    assert "<th>val acc</th><th>test acc</th>" in leaderboard_html(hand_made())
    assert "| val acc | test acc |" in summary_note("cls", hand_made())


# ---- a run folder: the API and the CLI -------------------------------------------------------
def _column(table: str, i: int) -> list[str]:
    """Column ``i`` of the body rows of a table printed by rich."""
    return [ln.split("│")[i + 1].strip() for ln in table.splitlines() if ln.startswith("│")]


def _run_folder(base: Path, df: pd.DataFrame, space: dict) -> Path:
    run = base / "reg"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"name": "reg"}))
    (run / "space.json").write_text(json.dumps(space))
    df.to_parquet(run / "trials.parquet", index=False)
    return run


REGRESSION_SPACE = {"objective": {"metric": MSE, "mode": MIN}, "objectives": [MSE, "params"]}


def test_run_api_follows_the_objective(tmp_path: Path) -> None:
    run = Run(_run_folder(tmp_path, mse_frame(), REGRESSION_SPACE))
    assert run.objective == (MSE, MIN)
    assert run.objectives == [MSE, "params"]
    assert run.best is not None and run.best["trial_id"] == "t0005"
    front = run.front()
    assert list(front["trial_id"]) == ["t0000", "t0002", "t0001", "t0005"]  # smallest first
    old = Run(_run_folder(tmp_path / "old", hand_made(), {}))  # before objectives had a mode
    assert old.objective == ("val_acc", "max") and old.objectives == ["val_acc"]
    assert old.best is not None and old.best["trial_id"] == "t0005"


def test_cli_show_ranks_by_the_objective(tmp_path: Path, capsys) -> None:
    run = _run_folder(tmp_path, mse_frame(), REGRESSION_SPACE)
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    board, _, front = out.partition("Pareto front")
    header = next(ln for ln in board.splitlines() if "rank" in ln)
    assert "val_mse" in header and "test_mse" in header and "val acc" not in header
    assert _column(board, 1) == [*BEST_FIRST, "t0003"]  # lowest val_mse first, failed last
    assert _column(board, 5)[:2] == ["0.2", "0.3"]
    assert "failed: TrainingError" in board
    assert front.startswith(" (val_mse against params)")
    assert _column(front, 0) == ["t0000", "t0002", "t0001", "t0005"]  # smallest first


def test_cli_show_of_a_classification_run_is_unchanged(tmp_path: Path, capsys) -> None:
    run = _run_folder(tmp_path, hand_made(), {"objectives": ["val_acc", "params"]})
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    header = next(ln for ln in out.splitlines() if "rank" in ln)
    assert "val acc" in header and "test acc" in header
    assert "Pareto front (val acc against params)" in out
    board = out.partition("Pareto front")[0]
    assert _column(board, 1)[:4] == ["t0005", "t0001", "t0004", "t0002"]  # highest first
    assert _column(board, 5)[:2] == ["0.9500", "0.9000"] and _column(board, 6)[0] == "0.9400"


def test_cli_show_with_a_corrupt_space_is_one_line(tmp_path: Path, capsys) -> None:
    run = _run_folder(tmp_path, mse_frame(), REGRESSION_SPACE)
    (run / "space.json").write_text("{not json")
    assert main(["show", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("growsearch: error:") and "space.json: corrupt" in err
    assert "\n" not in err


def test_write_report_reads_the_objective(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, mse_frame(), REGRESSION_SPACE)
    page = write_report(run, pngs=False).read_text()  # type: ignore[union-attr]
    assert "<th>val_mse</th>" in page
    assert _body_ids(page[page.index('id="leaderboard"') :])[0] == "t0005"
