"""Beyond one machine: a 2-node Ray cluster on loopback in a loopback-only network namespace."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import growsearch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> tuple[Path, dict]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a loopback-only network namespace")
    work = tmp_path_factory.mktemp("cluster")
    script = Path(__file__).with_name("cluster_scenario.py")
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(script), str(work)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert (work / "scenario.json").exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return work, json.loads((work / "scenario.json").read_text())


def test_worker_node_killed_mid_trial_and_the_search_completes(scenario) -> None:
    work, report = scenario
    assert report["worker_raylet"], report
    assert report["killed"], f"never caught a trial on the worker node: {report}"
    assert report["search_a_rc"] == 0, (work / "a.log").read_text()[-3000:]
    df = growsearch.load_results(work / "runs" / "cluster_a")
    assert len(df) == 4 and (df["status"] == "completed").all(), df[["trial_id", "status", "error"]]
    # the trial that was running on the killed node was retried from its checkpoint
    retried = df.set_index("trial_id").loc[report["killed"]["trials"]]
    assert (retried["restarts"] >= 1).all(), df[["trial_id", "restarts"]]
    assert (retried["epochs"] == 10).all()


def test_driver_killed_then_resumed_on_the_cluster(scenario) -> None:
    work, report = scenario
    # the kill landed mid-run: on a running driver that had recorded some trials, not all
    assert report["b_exit_at_kill"] == -signal.SIGKILL, report
    before = report["b_at_kill"]
    assert 1 <= len(before) < 3 and "error" not in before, before
    assert report["resume_b_rc"] == 0, report.get("resume_b_err")
    df = growsearch.load_results(work / "runs" / "cluster_b")
    assert len(df) == 3 and df["trial_id"].is_unique and (df["status"] == "completed").all()
    # trials finished before the kill were kept as they were, not re-run
    after = df.set_index("trial_id")[["status", "val_acc", "train_seconds", "epochs"]]
    finished = {t: r for t, r in before.items() if r["status"] == "completed"}
    assert finished, before
    assert {t: after.loc[t].to_dict() for t in finished} == finished, (before, after)
