"""A 2-node cluster whose worker node cannot see the driver's disk: the run lives on S3."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> dict:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for the network and mount namespaces")
    pytest.importorskip("moto")
    work = tmp_path_factory.mktemp("s3cluster")
    script = Path(__file__).with_name("cluster_s3_scenario.py")
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(script), str(work)],
        capture_output=True, text=True, timeout=2400,
    )  # fmt: skip
    assert (work / "scenario.json").exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((work / "scenario.json").read_text())


def test_trials_on_a_node_without_the_drivers_disk_succeed(scenario: dict) -> None:
    assert scenario["worker_tmp"] == "PRIVATE", scenario["steps"]
    assert len(scenario["nodes"]) == 2, scenario
    assert scenario["search_a_rc"] == 0, scenario["search_a_out"]
    metas = scenario["metas_a"]
    assert len(metas) == 6, metas
    assert len({m["node_id"] for m in metas.values()}) == 2, metas  # both nodes trained trials
    # children grew from parents trained on the other node (read from S3, not a shared disk)
    crossed = [
        t for t, m in metas.items()
        if m["parent_id"] and metas[m["parent_id"]]["node_id"] != m["node_id"]
    ]  # fmt: skip
    assert crossed, metas


def test_driver_killed_then_resumed_from_the_uri_on_the_cluster(scenario: dict) -> None:
    # the kill landed mid-run: on a running driver, with some trials recorded and some not
    assert scenario["b_exit_at_kill"] == -signal.SIGKILL, scenario
    before = scenario["b_at_kill"]
    assert 2 <= scenario["b_rows_at_kill"] < 5 and len(before) < 5, scenario
    assert scenario["resume_b_rc"] == 0, scenario["resume_b_out"]
    final = scenario["b_final"]
    assert sorted(final) == [f"t{i:04d}" for i in range(5)], final  # none lost, none twice
    assert set(final.values()) == {"completed"}, final
    # trials finished before the kill were kept as they were, not re-run
    after = scenario["b_after"]
    finished = {t: r for t, r in before.items() if r["status"] == "completed"}
    assert finished, before
    assert {t: after[t] for t in finished} == finished, (before, after)
