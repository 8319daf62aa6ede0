"""A search never loses work: kill -9 and Ctrl-C of the driver, then resume; the run-folder lock."""

from __future__ import annotations

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

from growsearch.runner._ray import _uses_session
from tests.fixtures.spaces import tiny_space

pytestmark = pytest.mark.slow

TRIALS = 8
SPACE = tiny_space(
    trials=TRIALS,
    name="resumable",
    seed=1,
    training="{epochs: 3, seed_epochs: 3, batch_size: 64, lr: 0.003}",
)
CLI = [sys.executable, "-m", "growsearch.cli"]


def _start(space: Path, results: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "run", str(space), "--results-dir", str(results)],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _rows(run_dir: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(run_dir / "trials.parquet")
    except (OSError, ValueError):
        return pd.DataFrame()


def _wait_rows(run_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> pd.DataFrame:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        df = _rows(run_dir)
        if len(df) >= n:
            return df
        assert proc.poll() is None, "the search ended before it could be interrupted"
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} trials after {timeout}s")


def _wait_file(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until ``path`` exists, while the search runs; fail fast if it ends first."""
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the search ended (exit {proc.returncode}) before {path}"
        assert time.monotonic() < end, f"no {path} after {timeout} s"
        time.sleep(0.2)


def _session_processes(session: str) -> list[int]:
    return [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _uses_session(p, session)
    ]


def _resume(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "resume", str(run_dir)], capture_output=True, text=True, timeout=600
    )


def _check_complete(run_dir: Path, before: pd.DataFrame) -> None:
    df = _rows(run_dir)
    assert len(df) == TRIALS and df["trial_id"].is_unique, df[["trial_id", "status"]]
    assert sorted(df["trial_id"]) == [f"t{i:04d}" for i in range(TRIALS)]
    assert (df["status"] == "completed").all(), df[["trial_id", "status", "error"]]
    # trials finished before the interruption are kept as they were, not re-run
    merged = before.merge(df, on="trial_id", suffixes=("_before", "_after"))
    assert len(merged) == len(before)
    assert (merged["val_acc_before"] == merged["val_acc_after"]).all()
    assert (merged["train_seconds_before"] == merged["train_seconds_after"]).all()
    study = optuna.load_study(study_name=run_dir.name, storage=f"sqlite:///{run_dir / 'study.db'}")
    ids = [t.user_attrs["trial_id"] for t in study.get_trials()]
    assert sorted(ids) == sorted(df["trial_id"])  # no duplicates, none missing
    state = json.loads((run_dir / "search_state.json").read_text())
    assert len(state["issued"]) == TRIALS and sorted(state["finished"]) == sorted(df["trial_id"])
    assert (run_dir / "best" / "model.safetensors").is_file()


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "resumable.yaml"
    path.write_text(SPACE)
    return path


def test_kill_9_of_the_driver_then_resume(space_file: Path, tmp_path: Path) -> None:
    results = tmp_path / "runs"
    run_dir = results / "resumable"
    proc = _start(space_file, results, tmp_path / "run.log")
    before = _wait_rows(run_dir, 2, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = _rows(run_dir)  # whatever was recorded when it died
    assert len(before) < TRIALS
    crashed = json.loads((run_dir / "ray_session.json").read_text())["session_dir"]

    done = _resume(run_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    _check_complete(run_dir, before)
    assert _session_processes(crashed) == []  # the crashed session's Ray processes are gone


def test_ctrl_c_says_how_to_resume_then_resume(space_file: Path, tmp_path: Path) -> None:
    results = tmp_path / "runs"
    run_dir = results / "resumable"
    log = tmp_path / "run.log"
    proc = _start(space_file, results, log)
    _wait_rows(run_dir, 1, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, log.read_text()[-2000:]
    assert f"growsearch resume {run_dir}" in log.read_text()
    before = _rows(run_dir)
    assert len(before) < TRIALS

    # the lock is free again after the driver stopped; a second resume right after is a no-op
    done = _resume(run_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    _check_complete(run_dir, before)
    again = _resume(run_dir)
    assert again.returncode == 0 and len(_rows(run_dir)) == TRIALS


def test_a_run_folder_in_use_is_refused(space_file: Path, tmp_path: Path) -> None:
    results = tmp_path / "runs"
    run_dir = results / "resumable"
    proc = _start(space_file, results, tmp_path / "run.log")
    try:
        _wait_file(run_dir / "run.json", proc)  # written under the lock, which it holds now
        assert (run_dir / ".lock").read_text() == str(proc.pid)
        second = _resume(run_dir)
        assert proc.poll() is None, "the search ended: nothing held the run folder"
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"in use by a running search (pid {proc.pid})" in second.stderr
        assert second.stderr.count("\n") == 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


def test_a_run_that_died_on_a_proposal_resumes_and_spends_its_budget(tmp_path: Path) -> None:
    """The reported crash: once the seed had trained, the driver issued a proposal whose child
    could not be built, raised building it (``growsearch: error: widen ...``), and every resume
    re-issued it and died the same way (here the child's user model file has gone). Here: a run of 3 trials, then the state such a driver
    left (t0003 issued, unbuildable, never run) and a budget of 5. The resume runs t0003 to a
    recorded failure and finishes the budget; a second resume has nothing left to do."""
    from growsearch.controllers import Proposal
    from tests.runner.test_failures import unbuildable_spec

    space = tmp_path / "crashed.yaml"
    space.write_text(
        tiny_space(
            trials=3,
            name="crashed",
            training="{epochs: 1, seed_epochs: 2, batch_size: 64, lr: 0.003}",
        )
    )
    first = subprocess.run(
        [*CLI, "run", str(space), "--results-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    run_dir = tmp_path / "runs" / "crashed"
    before = _rows(run_dir)
    assert len(before) == 3 and (before["status"] == "completed").all()

    bad = Proposal("t0003", unbuildable_spec(tmp_path)).to_dict()  # from scratch
    state = json.loads((run_dir / "search_state.json").read_text())
    state["issued"]["t0003"] = bad
    state["controller"]["proposed"].append(bad)
    (run_dir / "search_state.json").write_text(json.dumps(state))
    settings = json.loads((run_dir / "space.json").read_text())
    settings["budget"]["trials"] = 5
    (run_dir / "space.json").write_text(json.dumps(settings))

    done = _resume(run_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    df = _rows(run_dir)
    assert sorted(df["trial_id"]) == [f"t{i:04d}" for i in range(5)], df[["trial_id", "status"]]
    row = df.set_index("trial_id").loc["t0003"]
    assert row["status"] == "failed" and "SpecError: factory" in row["error"]
    assert "cannot import" in row["error"]
    others = df[df["trial_id"] != "t0003"]
    assert (others["status"] == "completed").all(), others[["trial_id", "status", "error"]]
    merged = before.merge(df, on="trial_id", suffixes=("_before", "_after"))
    assert len(merged) == 3  # the trials finished before are kept as they were, not re-run
    assert (merged["val_acc_before"] == merged["val_acc_after"]).all()
    assert (merged["train_seconds_before"] == merged["train_seconds_after"]).all()
    state = json.loads((run_dir / "search_state.json").read_text())
    results = {r["proposal"]["trial_id"]: r["status"] for r in state["controller"]["results"]}
    assert results["t0003"] == "failed" and len(results) == 5

    again = _resume(run_dir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(_rows(run_dir)) == 5
