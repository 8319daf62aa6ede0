"""Ray for one search session: its environment defaults, starting or joining it, checking that
a trial fits on it, and ending what a crashed session of the same run left running.

A local Ray started here binds to the loopback interface only and records its processes in
``<run>/ray_session.json``; a resume kills those (and only those) if they outlived their
driver, so a crash never leaves a stray Ray holding the machine.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from growsearch.exceptions import ConfigError

SESSION_FILE = "ray_session.json"

ENV_DEFAULTS = {
    # a local Ray binds to loopback only
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    # growsearch checkpoints every epoch on purpose (resume); Tune's warning about it is noise
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Tune's newer console output prints its own configuration box whatever `verbose` says
    "RAY_AIR_NEW_OUTPUT": "0",
}
"""Ray's settings for growsearch's use of it; a value the user set in the environment wins."""


def set_env_defaults() -> None:
    """Apply :data:`ENV_DEFAULTS`; Ray reads some at import, so call this before ``import ray``
    (``growsearch/__init__.py`` does, so every process that imports growsearch has them)."""
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


RAY_LOG = "ray_driver.log"
"""Ray's log lines in the driver, kept in the run's scratch folder instead of the console."""


class ClusterTooSmall(ConfigError):
    """No node of the Ray cluster has the CPUs/GPUs one trial asks for: no trial could start."""


@contextmanager
def ray_session(
    address: str | None, run_dir: Path, runtime_env: dict[str, Any] | None
) -> Iterator[None]:
    """Connect to ``address``, else start a local loopback-only Ray (and record its processes);
    shut it down on leaving if this call started or connected it. A Ray already initialised in
    this process is used as it is. ``runtime_env``: the job's (the user's model code, see
    ``_usercode``)."""
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    # Ray's own log lines in the driver (its start-up banner, warnings) go to the run's log
    # file, not the console. ray.init clears the "ray" logger's handlers, so its banner, logged
    # during init, is caught by a filter on the logger that emits it, and the file handler is
    # attached again once Ray is up.
    handler = logging.FileHandler(run_dir / RAY_LOG, delay=True)  # no file until a line comes
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    to_file = _ToFile(handler)
    banner = logging.getLogger(_RAY_BANNER_LOGGER)
    ray_logger = logging.getLogger("ray")
    propagate = ray_logger.propagate
    banner.addFilter(to_file)
    try:
        try:
            ray.init(address=address, **kwargs)
        except Exception as e:  # ConnectionError, TimeoutError, ValueError...
            raise ConfigError(
                f"--address: cannot connect to a Ray cluster at {address!r} ({type(e).__name__})"
            ) from None
        ray_logger.addHandler(handler)
        ray_logger.propagate = False
        try:
            _record_session(address, run_dir)
            yield
        finally:
            ray.shutdown()
    finally:
        banner.removeFilter(to_file)
        ray_logger.removeHandler(handler)
        ray_logger.propagate = propagate
        handler.close()


_RAY_BANNER_LOGGER = "ray._private.authentication.authentication_token_setup"


class _ToFile(logging.Filter):
    """Hands each record to ``handler`` (the run's Ray log file) and keeps it off the console."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        self.handler.handle(record)
        return False


def _record_session(address: str | None, run_dir: Path) -> None:
    """Write which Ray this driver uses (for a local one: its session folder and PIDs)."""
    import ray

    node = ray._private.worker._global_node
    info = {"address": address, "driver_pid": os.getpid()}
    if address is None and node is not None:
        info["session_dir"] = node.get_session_dir_path()
        info["pids"] = [
            p.process.pid for procs in node.all_processes.values() for p in procs if p.process
        ]
    (run_dir / SESSION_FILE).write_text(json.dumps(info))


def check_cluster_resources(space: Any, address: str | None) -> str | None:
    """With Ray up: one trial's CPUs and GPUs must fit on one alive node, else Tune would wait
    forever for resources. Returns a note for the user (GPUs there but unused), or None.

    Raises:
        ClusterTooSmall: naming the ``resources`` key, what a trial asks and what the cluster has.
    """
    import ray

    nodes = [dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    where = "the local Ray" if address is None else f"the Ray cluster at {address}"
    asked = {"CPU": space.resources.cpus_per_trial, "GPU": space.resources.gpus_per_trial}
    keys = {"CPU": "resources.cpus_per_trial", "GPU": "resources.gpus_per_trial"}
    hints = {
        "CPU": "lower it",
        "GPU": "lower it, or start Ray with GPUs (ray start --head --num-gpus N) and pass --address",
    }
    for res, want in asked.items():
        largest = max((n.get(res, 0.0) for n in nodes), default=0.0)
        if want > 0 and want > largest + 1e-9:
            raise ClusterTooSmall(
                f"{space.path}: {keys[res]}: a trial asks for {want:g} {res}, but {where} has "
                f"{total.get(res, 0.0):g} {res} (at most {largest:g} on one node), so no trial "
                f"could ever start; {hints[res]} (nothing was run)"
            )
    if not any(all(n.get(r, 0.0) + 1e-9 >= w for r, w in asked.items()) for n in nodes):
        raise ClusterTooSmall(
            f"{space.path}: resources: a trial asks for {asked['CPU']:g} CPU and "
            f"{asked['GPU']:g} GPU, but no node of {where} has both (nothing was run)"
        )
    if asked["GPU"] == 0 and total.get("GPU", 0.0) > 0:
        return (
            f"note: {where} has {total['GPU']:g} GPU but resources.gpus_per_trial is 0: "
            "trials train on the CPU"
        )
    return None


def cleanup_stale_ray(run_dir: Path) -> list[int]:
    """End the Ray processes a crashed session of this run left behind — only this run's,
    found by the session folder in their command line, and the PIDs it recorded."""
    path = run_dir / SESSION_FILE
    info = json.loads(path.read_text()) if path.is_file() else {}
    session = info.get("session_dir")
    if not session:
        return []
    pids = set(int(p) for p in info.get("pids", []))
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and _uses_session(proc, session):
            pids.add(int(proc.name))
    killed = []
    for pid in sorted(pids):
        if pid == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # already gone
        if b"ray" not in cmd:
            continue  # a recycled PID that is not Ray's: leave it alone
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    return killed


def _uses_session(proc: Path, session: str) -> bool:
    """Whether a process belongs to a Ray session: the session folder is in its command line or
    it holds files open there (Ray's agents rename themselves, but keep their session logs open)."""
    try:
        if session.encode() in (proc / "cmdline").read_bytes():
            return True
        for fd in (proc / "fd").iterdir():
            try:
                if os.readlink(fd).startswith(session):
                    return True
            except OSError:
                continue
    except OSError:
        return False
    return False
