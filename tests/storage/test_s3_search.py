"""A search whose run folder is on S3 (a loopback moto server): run, inspect, crash, resume.

Nothing of the run is on the local disk but the driver's scratch folder (the Ray session
record and the local mirror of the SQLite study); every check reads the run from its URI.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

import growsearch
from growsearch.storage import location, scratch_dir
from tests.fixtures.spaces import tiny_space
from tests.runner.test_resume import _session_processes
from tests.storage.conftest import BUCKET

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "growsearch.cli"]
TRIALS = 6


def _env(s3, scratch: Path) -> dict[str, str]:
    return {**os.environ, **s3.env, "GROWSEARCH_SCRATCH": str(scratch)}


def _rows(uri: str) -> pd.DataFrame:
    obj = location(uri) / "trials.parquet"
    try:
        return pd.read_parquet(io.BytesIO(obj.read_bytes()))
    except (OSError, ValueError):
        return pd.DataFrame()


def _study_ids(uri: str, tmp: Path) -> list[str]:
    db = (location(uri) / "study.db").download(tmp / "study-copy.db")
    study = optuna.load_study(study_name=location(uri).name, storage=f"sqlite:///{db}")
    return sorted(t.user_attrs["trial_id"] for t in study.get_trials())


def test_a_search_on_s3_runs_and_is_read_from_the_uri(s3, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may land in the current folder (no "s3:" folder)
    space = tmp_path / "s3run.yaml"
    space.write_text(tiny_space(trials=4, name="s3run"))
    results = f"s3://{BUCKET}/api-runs"
    run = growsearch.run(space, results_dir=results, progress=False)
    uri = f"{results}/s3run"
    assert str(run.dir) == uri and run.dir.name == "s3run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s3run.yaml", "scratch"]
    names = location(uri).listdir()
    for name in ("space.json", "run.json", "search_state.json", "trials.parquet", "study.db",
                 "best", "models", "ray"):  # fmt: skip
        assert name in names, names
    assert ".lock" not in names  # the lease was released
    df = growsearch.load_results(uri)
    assert len(df) == 4 and (df["status"] == "completed").all(), df[["trial_id", "error"]]
    assert df.equals(run.trials)
    assert _study_ids(uri, tmp_path) == sorted(df["trial_id"])
    model = growsearch.load_model(f"{uri}/best")
    assert sum(p.numel() for p in model.parameters()) == int(run.best["params"])
    assert (location(uri) / "models" / "t0000" / "meta.json").is_file()
    # children grew from parents read from the URI
    assert df["warm_start"].fillna(False).any() and df["parent_id"].notna().any()
    # a finished run resumes as it is
    assert len(growsearch.resume(uri, progress=False).trials) == 4

    env = _env(s3, tmp_path / "scratch")
    shown = subprocess.run([*CLI, "show", uri], capture_output=True, text=True, env=env)
    assert shown.returncode == 0 and "s3run: leaderboard" in shown.stdout, shown.stderr
    report = subprocess.run([*CLI, "report", uri], capture_output=True, text=True, env=env)
    assert report.returncode == 0, report.stderr
    assert f"{uri}/report.html" in report.stdout
    assert "<html" in (location(uri) / "report.html").read_text()
    assert any(n.endswith(".png") for n in (location(uri) / "figures").listdir())

    pytest.importorskip("optuna_dashboard")
    from growsearch.dashboard import Dashboard

    dash = Dashboard(uri, port=0)  # over a copy of the run's study, figures from the URI
    try:
        assert "/studies/" in dash.url
        assert dash.publisher.poll() and len(dash.publisher.study.get_trials()) == 4
    finally:
        dash.close()


def _start(space: Path, results: str, log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "run", str(space), "--results-dir", results],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True, env=env,
    )  # fmt: skip


def test_kill_9_of_the_driver_then_resume_from_the_uri(s3, tmp_path: Path) -> None:
    space = tmp_path / "s3crash.yaml"
    space.write_text(
        tiny_space(
            trials=TRIALS,
            name="s3crash",
            seed=1,
            training="{epochs: 3, seed_epochs: 3, batch_size: 64, lr: 0.003}",
        )  # fmt: skip
    )
    results = f"s3://{BUCKET}/crash-runs"
    uri = f"{results}/s3crash"
    env = _env(s3, tmp_path / "scratch")
    proc = _start(space, results, tmp_path / "run.log", env)
    deadline = time.monotonic() + 300
    while len(_rows(uri)) < 2:
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "fewer than 2 trials in 300 s"
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = _rows(uri)
    assert len(before) < TRIALS
    issued = json.loads((location(uri) / "search_state.json").read_text())["issued"]
    # the lease of the killed driver is still there, and is taken over (its holder is gone)
    assert (location(uri) / ".lock").is_file()
    # the driver's own record of its Ray is in its local scratch folder, not on the URI
    record = scratch_dir(location(uri)) / "ray_session.json"
    crashed = json.loads(record.read_text())["session_dir"]
    assert "ray_session.json" not in location(uri).listdir()

    done = subprocess.run(
        [*CLI, "resume", uri], capture_output=True, text=True, timeout=900, env=env
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    df = _rows(uri)
    assert sorted(df["trial_id"]) == [f"t{i:04d}" for i in range(TRIALS)]  # none lost, none twice
    assert (df["status"] == "completed").all(), df[["trial_id", "status", "error"]]
    merged = before.merge(df, on="trial_id", suffixes=("_before", "_after"))
    assert len(merged) == len(before)  # finished trials kept as they were, not re-run
    assert (merged["val_acc_before"] == merged["val_acc_after"]).all()
    assert (merged["train_seconds_before"] == merged["train_seconds_after"]).all()
    # trials issued before the crash kept their ids and proposals
    state = json.loads((location(uri) / "search_state.json").read_text())
    assert all(state["issued"][t] == p for t, p in issued.items())
    assert len(state["issued"]) == TRIALS and sorted(state["finished"]) == sorted(df["trial_id"])
    assert _study_ids(uri, tmp_path) == sorted(df["trial_id"])
    assert (location(uri) / "best" / "model.safetensors").is_file()
    assert _session_processes(crashed) == []  # the crashed session's Ray processes are gone


@pytest.mark.parametrize(
    "results, says",
    [
        ("foo://bucket/runs", "no filesystem for the scheme 'foo'"),
        ("s3://no-such-bucket-gs/runs", "the bucket 'no-such-bucket-gs' does not exist"),
    ],
)
def test_a_bad_uri_is_one_line_and_writes_nothing(s3, tmp_path: Path, results, says) -> None:
    space = tmp_path / "bad.yaml"
    space.write_text(tiny_space(trials=1, name="bad"))
    env = _env(s3, tmp_path / "scratch")
    done = subprocess.run(
        [*CLI, "run", str(space), "--results-dir", results],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]
    for cmd in ("show", "resume", "report"):
        done = subprocess.run(
            [*CLI, cmd, f"{results}/bad"], capture_output=True, text=True, env=env
        )
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (cmd, done.stderr)
    missing = subprocess.run(
        [*CLI, "show", f"s3://{BUCKET}/nothing/here"], capture_output=True, text=True, env=env
    )
    assert missing.returncode == 2 and "no such run directory" in missing.stderr
