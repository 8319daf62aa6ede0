"""The run-folder lock: one search at a time on a run folder.

An ``flock`` on ``<run>/.lock`` rather than a pid file: the kernel drops it when the holder's
process ends, however it ends (even by ``kill -9``), so a crashed search never leaves its run
locked. The holder writes its pid there, for the message a second search gets.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from growsearch.exceptions import ConfigError


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder; a second search on it is refused."""
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
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
