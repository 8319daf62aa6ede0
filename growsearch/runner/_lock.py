"""The run-folder lock: one search at a time on a run folder.

**Local folder**: an ``flock`` on ``<run>/.lock`` rather than a pid file: the kernel drops it
when the holder's process ends, however it ends (even by ``kill -9``), so a crashed search
never leaves its run locked. The holder writes its pid there, for the message a second search
gets.

**Object store** (``s3://``): a lease object ``<run>/.lock`` (JSON: owner, host, pid, expiry),
created with a conditional PUT (``If-None-Match: *``) so that of two drivers exactly one
creates it, renewed every :data:`RENEW_S` seconds by a thread (``If-Match`` on its ETag), and
deleted when the search ends. A lease whose holder stopped renewing is taken over once it has
expired (:data:`LEASE_S`), again with ``If-Match``, so two drivers cannot both take it; a
holder on this machine whose process is gone (``kill -9``) is taken over at once. Conditional
writes need ``boto3`` (``pip install growsearch[s3]``).

**Other filesystems** (``gs://``, ``hdfs://``, or S3 without boto3): the same lease, written
unconditionally and read back: best effort, it catches a second driver started after the first
one but not two started within the same second.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from growsearch.exceptions import ConfigError
from growsearch.storage import Location, location

LEASE_S = 60.0
"""How long a lease on an object store lasts without renewal."""
RENEW_S = 15.0
"""How often the holder renews it."""
LOCK_FILE = ".lock"

log = logging.getLogger("growsearch")


@contextmanager
def run_lock(run_dir: str | os.PathLike[str] | Location) -> Iterator[None]:
    """Hold an exclusive lock on the run folder; a second search on it is refused."""
    run_dir = location(run_dir)
    if run_dir.local is None:
        with _Lease(run_dir):
            yield
        return
    fd = os.open(run_dir.local / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise ConfigError(
                f"{run_dir}: in use by a running search (pid {owner}); refusing to start a second one"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock (so does the process dying, even by kill -9)


class _Taken(Exception):
    """A conditional write lost: someone else wrote the lease first."""


class _Lease:
    """A lease object on a remote run folder (see the module docstring)."""

    def __init__(self, run_dir: Location):
        self.run_dir = run_dir
        self.obj = run_dir / LOCK_FILE
        self.owner = uuid.uuid4().hex
        self.host = socket.gethostname()
        self.etag: str | None = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.s3 = _s3_client(run_dir)

    def _body(self) -> bytes:
        return json.dumps(
            {"owner": self.owner, "host": self.host, "pid": os.getpid(),
             "expires": time.time() + LEASE_S}
        ).encode()  # fmt: skip

    # ---- storage primitives: conditional on S3 with boto3, best effort elsewhere -----------
    def _read(self) -> tuple[dict[str, Any] | None, str | None]:
        """The current lease and its ETag, (None, None) if there is none."""
        if self.s3 is not None:
            client, bucket, key = self.s3
            try:
                got = client.get_object(Bucket=bucket, Key=key)
            except client.exceptions.NoSuchKey:
                return None, None
            return _parse(got["Body"].read()), got["ETag"]
        try:
            return _parse(self.obj.read_bytes()), None
        except FileNotFoundError:
            return None, None

    def _write(self, *, if_none_match: bool = False, if_match: str | None = None) -> None:
        if self.s3 is not None:
            from botocore.exceptions import ClientError

            client, bucket, key = self.s3
            cond: dict[str, str] = {}
            if if_none_match:
                cond["IfNoneMatch"] = "*"
            elif if_match is not None:
                cond["IfMatch"] = if_match
            try:
                put = client.put_object(Bucket=bucket, Key=key, Body=self._body(), **cond)
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                    raise _Taken() from None
                raise
            self.etag = put["ETag"]
            return
        self.obj.write_bytes(self._body())
        time.sleep(0.5)  # then read back: the last of two racing writers wins
        lease, _ = self._read()
        if lease is None or lease.get("owner") != self.owner:
            raise _Taken()

    # ---- the lease -------------------------------------------------------------------------
    def __enter__(self) -> _Lease:
        for _ in range(3):
            lease, etag = self._read()
            try:
                if lease is None:
                    self._write(if_none_match=True)
                elif self._stale(lease):
                    self._write(if_match=etag)
                else:
                    raise self._refusal(lease)
                break
            except _Taken:
                continue  # someone wrote it meanwhile: look again
        else:
            lease, _ = self._read()
            raise self._refusal(lease or {})
        self.thread = threading.Thread(target=self._renew, name="growsearch-lease", daemon=True)
        self.thread.start()
        return self

    def _stale(self, lease: dict[str, Any]) -> bool:
        if float(lease.get("expires", 0)) < time.time():
            return True
        if lease.get("host") == self.host:  # a holder on this machine whose process is gone
            return not _alive(int(lease.get("pid", 0)))
        return False

    def _refusal(self, lease: dict[str, Any]) -> ConfigError:
        left = max(0, int(float(lease.get("expires", 0)) - time.time()))
        return ConfigError(
            f"{self.run_dir}: in use by a running search (pid {lease.get('pid', '?')} on "
            f"{lease.get('host', '?')}; its lease expires in {left} s unless renewed); "
            "refusing to start a second one"
        )

    def _renew(self) -> None:
        while not self.stop.wait(RENEW_S):
            try:
                self._write(if_match=self.etag) if self.s3 is not None else self._write()
            except _Taken:
                log.error(
                    "growsearch: %s: another driver took over this run's lease; stop this one",
                    self.run_dir,
                )
                return
            except Exception as e:  # network trouble: try again at the next period
                log.warning("growsearch: %s: could not renew the run's lease: %s", self.run_dir, e)

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        try:
            lease, _ = self._read()
            if lease is not None and lease.get("owner") == self.owner:
                if self.s3 is not None:
                    client, bucket, key = self.s3
                    client.delete_object(Bucket=bucket, Key=key)
                else:
                    self.obj.unlink()
        except Exception as e:  # it expires on its own
            log.warning("growsearch: %s: could not release the run's lease: %s", self.run_dir, e)


def _parse(data: bytes) -> dict[str, Any]:
    try:
        lease = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return lease if isinstance(lease, dict) else {}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _s3_client(run_dir: Location) -> tuple[Any, str, str] | None:
    """(boto3 client, bucket, key of the lease) for a run on S3; None elsewhere, or without
    boto3 (then the lease is best effort, with a warning)."""
    if not run_dir.uri.startswith("s3://"):
        return None
    try:
        import boto3
    except ImportError:
        log.warning(
            "growsearch: boto3 is not installed, so the lock on %s is best effort; "
            "pip install 'growsearch[s3]' for a safe one",
            run_dir,
        )
        return None
    bucket, _, prefix = run_dir.path.partition("/")
    key = f"{prefix}/{LOCK_FILE}" if prefix else LOCK_FILE
    return boto3.client("s3"), bucket, key
