"""``growsearch report`` and the dashboard's figure updates, on a real small run (slow)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import urllib.request
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects

from growsearch.cli import main
from growsearch.dashboard import FIGURE_ID_PREFIX, Dashboard, FigurePublisher, run_storage
from growsearch.runner import load_results
from growsearch.viz import FIGURES, lineage, pareto_front

pytestmark = pytest.mark.slow


def test_figures_of_a_real_run(run_dir: Path) -> None:
    df = load_results(run_dir)
    tree = lineage(df)
    assert len(tree.nodes) == len(df) == 6
    assert len(tree.edges) == df["parent_id"].notna().sum()  # every child links to its parent
    assert all(re.fullmatch(r"((widen\(s\d+l\d+→\d+\)|deepen\(s\d+l\d+→\+s\d+l\d+\))(, )?)+", lbl)
               for lbl in tree.edges["label"])  # fmt: skip
    assert pareto_front(df, "params").any() and pareto_front(df, "flops").any()
    best = df.loc[df["val_acc"].idxmax()]
    assert pareto_front(df, "params")[best.name]  # the most accurate trial is on the front


def test_report_command(run_dir: Path, capsys) -> None:
    assert main(["report", str(run_dir)]) == 0
    assert "report.html" in capsys.readouterr().out
    page = (run_dir / "report.html").read_text()
    assert not re.search(r"<script[^>]+src=", page)
    assert 'id="fig-lineage"' in page and 'id="leaderboard"' in page
    for name in FIGURES:
        png = run_dir / "figures" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_run_dir_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    for cmd in (["report", str(tmp_path)], ["dashboard", str(tmp_path / "nope")]):
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("growsearch: error:") and "\n" not in err


def test_port_in_use_is_one_line_exit_2(run_dir: Path, capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["dashboard", str(run_dir), "--port", str(port)]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err


def _graphs(study: optuna.Study) -> dict[str, dict]:
    objs = get_plotly_graph_objects(study._storage.get_study_system_attrs(study._study_id))
    return {k: json.loads(v) for k, v in objs.items()}


def test_publisher_saves_and_updates_figures(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / run_dir.name  # a copy: the run is shared with other tests
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("ray", "models", "best"))
    info = json.loads((run / "run.json").read_text())
    info["storage"] = f"sqlite:///{run / 'study.db'}"
    (run / "run.json").write_text(json.dumps(info))
    storage = run_storage(run)
    pub = FigurePublisher(run, storage)
    assert pub.poll() and not pub.poll()  # published once; unchanged: nothing to do
    study = optuna.load_study(study_name=run.name, storage=storage)
    graphs = _graphs(study)
    assert set(graphs) == {FIGURE_ID_PREFIX + n for n in FIGURES}
    nodes = next(t for t in graphs["growsearch-lineage"]["data"] if t.get("name") == "trials")
    assert len(nodes["text"]) == 6  # (x, y are binary-encoded by plotly 6)
    from optuna_dashboard import get_note

    assert "t0000" in get_note(study) and "| rank |" in get_note(study)

    df = pd.read_parquet(run / "trials.parquet")  # a seventh trial finishes
    new = df.iloc[[-1]].copy()
    new["trial_id"], new["parent_id"], new["val_acc"] = "t0099", df["trial_id"].iloc[0], 0.99
    pd.concat([df, new], ignore_index=True).to_parquet(run / "trials.parquet", index=False)
    assert pub.poll()
    graphs = _graphs(study)
    nodes = next(t for t in graphs["growsearch-lineage"]["data"] if t.get("name") == "trials")
    assert len(nodes["text"]) == 7 and len(graphs) == len(FIGURES)  # replaced in place, not added


def test_dashboard_serves_the_study(run_dir: Path) -> None:
    with Dashboard(run_dir, port=0, refresh_seconds=0.5) as dash:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/dashboard/studies/\d+", dash.url)
        study_id = dash.url.rsplit("/", 1)[1]
        base = f"http://127.0.0.1:{dash.port}"
        with urllib.request.urlopen(f"{base}/api/studies/{study_id}", timeout=30) as r:
            detail = json.load(r)
        assert detail["name"] == run_dir.name and len(detail["trials"]) == 6
        ids = {g["id"] for g in detail["plotly_graph_objects"]}
        assert ids == {FIGURE_ID_PREFIX + n for n in FIGURES}
        with urllib.request.urlopen(dash.url, timeout=30) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
