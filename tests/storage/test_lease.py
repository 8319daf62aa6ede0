"""The run lock on object storage: a lease object written with conditional PUTs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from growsearch.exceptions import ConfigError
from growsearch.runner._lock import run_lock
from growsearch.storage import location
from tests.storage.conftest import BUCKET


def _run(uri: str) -> None:
    (location(uri) / "run.json").write_text("{}")
    (location(uri) / "space.json").write_text("{}")


def test_a_second_holder_is_refused_and_the_lease_is_released(s3) -> None:
    run = location(f"s3://{BUCKET}/lease/a")
    with run_lock(run):
        lease = json.loads((run / ".lock").read_text())
        assert lease["expires"] > time.time() + 30
        with pytest.raises(ConfigError, match="in use by a running search") as e, run_lock(run):
            pass
        assert "\n" not in str(e.value)
    assert not (run / ".lock").exists()
    with run_lock(run):  # free again
        pass


def test_a_live_lease_from_another_machine_refuses_the_cli(s3, tmp_path) -> None:
    uri = f"s3://{BUCKET}/lease/b"
    _run(uri)
    held = {"owner": "x", "host": "another-machine", "pid": 1, "expires": time.time() + 60}
    (location(uri) / ".lock").write_text(json.dumps(held))
    import os

    env = {**os.environ, **s3.env, "GROWSEARCH_SCRATCH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "growsearch.cli", "resume", uri],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "in use by a running search (pid 1 on another-machine" in done.stderr
    assert done.stderr.count("\n") == 1


def test_an_expired_or_orphaned_lease_is_taken_over(s3) -> None:
    run = location(f"s3://{BUCKET}/lease/c")
    expired = {"owner": "x", "host": "another-machine", "pid": 1, "expires": time.time() - 1}
    (run / ".lock").write_text(json.dumps(expired))
    with run_lock(run):
        assert json.loads((run / ".lock").read_text())["owner"] != "x"
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    orphan = {"owner": "y", "host": socket.gethostname(), "pid": int(dead),
              "expires": time.time() + 60}  # fmt: skip
    (run / ".lock").write_text(json.dumps(orphan))
    with run_lock(run):  # its holder on this machine is gone (kill -9): no need to wait
        assert json.loads((run / ".lock").read_text())["owner"] != "y"


def test_conditional_writes_decide_a_race(s3) -> None:
    """Two drivers that both saw no lease: the conditional PUT lets exactly one create it."""
    from growsearch.runner._lock import _Lease, _Taken

    run = location(f"s3://{BUCKET}/lease/d")
    first, second = _Lease(run), _Lease(run)
    first._write(if_none_match=True)
    with pytest.raises(_Taken):
        second._write(if_none_match=True)
    etag = first.etag
    first._write(if_match=etag)  # a renewal
    with pytest.raises(_Taken):
        second._write(if_match=etag)  # a takeover based on a stale read
