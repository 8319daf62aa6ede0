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


# ---- renewal, takeover and a lost lease, with the lease's intervals shrunk ----------------
LEASE_S, RENEW_S = 1.0, 0.1


@pytest.fixture
def short_lease(monkeypatch):
    """A lease of LEASE_S seconds renewed every RENEW_S (the module's are 60 s and 15 s)."""
    from growsearch.runner import _lock

    monkeypatch.setattr(_lock, "LEASE_S", LEASE_S)
    monkeypatch.setattr(_lock, "RENEW_S", RENEW_S)
    return _lock


def _until(check, timeout: float = 10.0):
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s"
        time.sleep(0.02)
    return got


def _lease_of(run) -> dict:
    return json.loads((run / ".lock").read_text())


@pytest.mark.parametrize("uri", [f"s3://{BUCKET}/lease/renew", "memory://growsearch-test/renew"])
def test_a_held_lease_is_renewed_past_its_lifetime(s3, short_lease, uri: str) -> None:
    """The holder keeps moving ``expires`` (conditional PUTs on S3, best-effort writes on a
    filesystem without them), so a second driver is refused long after the first lease would
    have expired."""
    run = location(uri)
    with run_lock(run):
        first = _lease_of(run)
        assert first["expires"] <= time.time() + LEASE_S
        time.sleep(2 * LEASE_S)  # the first write's lease has expired by now
        lease = _lease_of(run)
        assert lease["owner"] == first["owner"]
        assert lease["expires"] > first["expires"] and lease["expires"] > time.time()
        with pytest.raises(ConfigError, match="in use by a running search"), run_lock(run):
            pass
        assert _lease_of(run)["owner"] == first["owner"]  # the refused driver wrote nothing
    assert not (run / ".lock").exists()


@pytest.mark.parametrize("uri", [f"s3://{BUCKET}/lease/lost", "memory://growsearch-test/lost"])
def test_a_lease_that_stops_renewing_is_taken_over_and_its_holder_told(
    s3, short_lease, uri: str, caplog
) -> None:
    """A holder cut off from the store (its renewals fail) loses its lease once it expires: a
    second driver takes it over, and the first one's exit leaves the new lease alone. On S3
    the first holder's next renewal, once it is back, finds the lease taken (``If-Match``
    fails), logs it and stops renewing. (Not on a filesystem without conditional writes:
    there the returning holder's blind renewal can win the read-back, see the report.)"""
    run = location(uri)
    first = short_lease._Lease(run)
    with first:
        write = first._write

        def cut_off(**_: object) -> None:
            raise OSError("network down")

        first._write = cut_off  # type: ignore[method-assign]
        with pytest.raises(ConfigError, match="in use by a running search"), run_lock(run):
            pass  # still live: refused
        _until(lambda: _lease_of(run)["expires"] < time.time(), timeout=3 * LEASE_S)
        assert "could not renew the run's lease: network down" in caplog.text
        second = short_lease._Lease(run)
        with second:  # the expired lease is taken over
            assert _lease_of(run)["owner"] == second.owner
            assert first.thread is not None
            if first.s3 is not None:
                first._write = write  # type: ignore[method-assign]  # the network is back
                first.thread.join(timeout=10 * LEASE_S)
                assert not first.thread.is_alive(), "the first holder kept renewing a lost lease"
                assert "another driver took over this run's lease" in caplog.text
                assert _lease_of(run)["owner"] == second.owner
            first.__exit__(None, None, None)  # the first driver ends: not its lease to delete
            assert not first.thread.is_alive()
            assert _lease_of(run)["owner"] == second.owner
        assert not (run / ".lock").exists()


def test_best_effort_lease_refuses_the_writer_that_lost_the_read_back(short_lease, monkeypatch):
    """Without conditional writes (a filesystem other than S3, or S3 without boto3) a writer
    reads the lease back after a pause: of two writers in that window, the last one wins."""
    import types

    run = location("memory://growsearch-test/race")
    first, second = short_lease._Lease(run), short_lease._Lease(run)
    assert first.s3 is None
    ran = []

    def sleep(_: float) -> None:  # the pause after the first's write: the second writes then
        if not ran:
            ran.append(1)
            second._write()

    monkeypatch.setattr(short_lease, "time", types.SimpleNamespace(time=time.time, sleep=sleep))
    with pytest.raises(short_lease._Taken):
        first._write()
    assert ran and _lease_of(run)["owner"] == second.owner
    monkeypatch.setattr(short_lease, "time", time)
    with pytest.raises(ConfigError, match="in use by a running search"), run_lock(run):
        pass
    (run / ".lock").unlink()


def test_s3_without_boto3_falls_back_to_the_best_effort_lease(s3, monkeypatch, caplog) -> None:
    import builtins

    real_import = builtins.__import__

    def no_boto3(name: str, *args, **kwargs):
        if name == "boto3":
            raise ImportError("No module named 'boto3'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_boto3)
    from growsearch.runner._lock import _Lease

    lease = _Lease(location(f"s3://{BUCKET}/lease/noboto"))
    assert lease.s3 is None
    assert "boto3 is not installed, so the lock on" in caplog.text
