"""``run_search`` and ``resume_search``: a search space → Ray Tune → ``results/<run>/``.

A run folder holds ``space.json`` (the validated space), ``run.json`` (how it was started),
``search_state.json`` (the searcher and controller state), ``trials.parquet``, ``study.db``,
``models/<trial>/`` (each trial's latest checkpoint), ``best/`` and ``ray/`` (Tune's own
experiments, one per session: ``search-1``, ``search-2`` after a resume, ...).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from growsearch.exceptions import ConfigError
from growsearch.runner._results import (
    ResultsStore,
    default_storage,
    load_results,
    ranked,
    trial_row,
    trial_status,
)

# A local Ray must bind to loopback only; set before ray is imported anywhere in this process.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# growsearch checkpoints every epoch on purpose (resume); Tune's warning about it is noise here
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Tune's newer console output prints its own configuration box whatever `verbose` says
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

RUN_FILES = ("run.json", "space.json")


class SearchInterrupted(Exception):
    """The search stopped before its budget was spent (Ctrl-C); it can be resumed."""

    def __init__(self, run_dir: Path, df: pd.DataFrame):
        super().__init__(f"search interrupted; continue it with: growsearch resume {run_dir}")
        self.run_dir = run_dir
        self.df = df


class ClusterTooSmall(ConfigError):
    """No node of the Ray cluster has the CPUs/GPUs one trial asks for: no trial could start."""


# ---- validation before anything is written ---------------------------------------------------
def check_address(address: str | None) -> str | None:
    """``host:port`` of a Ray cluster must answer; returns the address to use (None = local)."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None or address == "auto":
        return address
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            pass
    except (OSError, ValueError):
        raise ConfigError(f"--address: no Ray cluster answers at {address!r}") from None
    return address


def check_storage(storage: str | None) -> None:
    """An Optuna storage URL must parse, and a server URL must be reachable."""
    if storage is None:
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        url = make_url(storage)
    except (ArgumentError, ValueError):
        raise ConfigError(f"--storage: not a database URL: {storage!r}") from None
    if url.get_backend_name() == "sqlite":
        db = url.database
        if db and db != ":memory:" and not Path(db).resolve().parent.is_dir():
            raise ConfigError(f"--storage: folder of SQLite file {db!r} does not exist")
        return
    try:
        with create_engine(url).connect():
            pass
    except (NoSuchModuleError, ImportError):
        raise ConfigError(f"--storage: no driver for {url.drivername!r}") from None
    except SQLAlchemyError as e:
        raise ConfigError(
            f"--storage: cannot connect to {storage!r} ({type(e).__name__})"
        ) from None


def check_run_dir(run_dir: str | Path) -> Path:
    """A folder that holds a growsearch run, else ConfigError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run directory")
    missing = [f for f in RUN_FILES if not (run_dir / f).is_file()]
    if missing:
        raise ConfigError(f"{run_dir}: not a growsearch run (missing {', '.join(missing)})")
    return run_dir.resolve()


# ---- run-folder lock and Ray processes -------------------------------------------------------
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


def _ray_session(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "ray_session.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def cleanup_stale_ray(run_dir: Path) -> list[int]:
    """End the Ray processes a crashed session of this run left behind — only this run's,
    found by the session folder in their command line, and the PIDs it recorded."""
    info = _ray_session(run_dir)
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


def _start_ray(
    address: str | None, run_dir: Path, runtime_env: dict[str, Any] | None = None
) -> bool:
    """Connect to ``address``, else start a local loopback-only Ray (and record its processes).
    ``runtime_env``: the job's (the user's model code, see ``_usercode``).
    Returns True if this process started or connected it (and so must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    try:
        ray.init(address=address, **kwargs)
    except Exception as e:  # ConnectionError, TimeoutError, ValueError...
        raise ConfigError(
            f"--address: cannot connect to a Ray cluster at {address!r} ({type(e).__name__})"
        ) from None
    node = ray._private.worker._global_node
    info = {"address": address, "driver_pid": os.getpid()}
    if address is None and node is not None:
        info["session_dir"] = node.get_session_dir_path()
        info["pids"] = [
            p.process.pid for procs in node.all_processes.values() for p in procs if p.process
        ]
    (run_dir / "ray_session.json").write_text(json.dumps(info))
    return True


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


# ---- the search ------------------------------------------------------------------------------
def run_search(
    space: Any,
    run_dir: str | Path,
    *,
    address: str | None = None,
    storage: str | None = None,
    console: Any = None,
    progress: bool = True,
    max_failures: int = 1,
    controller: Any = None,
    callbacks: Sequence[Any] = (),
) -> pd.DataFrame:
    """Run the search ``space`` describes; write everything under ``run_dir`` and return the trials.

    Args:
        space: a validated :class:`growsearch.space.SearchSpace`.
        run_dir: the run's folder; must not exist yet (nothing is ever overwritten).
        address: an existing Ray cluster (default: start a local Ray bound to 127.0.0.1).
        storage: an Optuna RDB URL (default: SQLite ``run_dir/study.db``).
        console: a rich Console for the live display (default: stdout).
        progress: show the live progress line.
        max_failures: how often a failed trial is retried (from its last checkpoint).
        controller: a Controller instance (default: ``space.controller``'s, by name).
        callbacks: more Ray Tune callbacks.

    Raises:
        ConfigError: bad input (checked before anything is written).
        SearchInterrupted: stopped by Ctrl-C before the budget was spent; resume it.
    """
    run_dir = Path(run_dir).resolve()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(
            f"{run_dir}: a run already exists there; choose another --name (nothing was changed)"
        )
    address = check_address(address)
    check_storage(storage)
    from growsearch.controllers import make_controller

    if controller is None:  # its own checks, before writing
        make_controller(space.controller.name, space, seed=space.seed)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(run_dir):
            (run_dir / "space.json").write_text(
                json.dumps(space.to_dict(), indent=2, sort_keys=True)
            )
            run_info = {
                "name": run_dir.name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "storage": storage or default_storage(run_dir),
                "address": address,
                "max_failures": max_failures,
                **({} if controller is None else {"controller_class": _class_path(controller)}),
                "command": " ".join(sys.argv),
                "sessions": 0,
            }
            (run_dir / "run.json").write_text(json.dumps(run_info, indent=2))
            return _execute(
                space, run_dir, None, address=address, console=console, progress=progress,
                controller=controller, callbacks=callbacks,
            )  # fmt: skip
    except ClusterTooSmall:
        # found once Ray was up, before any trial: leave no half-made run behind (the folder
        # was absent or empty before this call)
        shutil.rmtree(run_dir, ignore_errors=True)
        if not created:
            run_dir.mkdir(parents=True, exist_ok=True)
        raise


def resume_search(
    run_dir: str | Path,
    *,
    address: str | None = None,
    console: Any = None,
    progress: bool = True,
    controller: Any = None,
    callbacks: Sequence[Any] = (),
) -> pd.DataFrame:
    """Continue a stopped or crashed search: finished trials are kept, running ones continue
    from their last checkpoint, the controller's state is restored, the budget is kept exactly."""
    from growsearch.space import SearchSpace

    run_dir = check_run_dir(run_dir)
    address = check_address(address)
    with run_lock(run_dir):
        cleanup_stale_ray(run_dir)
        try:
            data = json.loads((run_dir / "space.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{run_dir / 'space.json'}: corrupt ({e})") from None
        space = SearchSpace.from_dict(data, path=run_dir / "space.json")
        from growsearch.runner._searcher import load_state

        return _execute(
            space, run_dir, load_state(run_dir), address=address, console=console,
            progress=progress, controller=controller, callbacks=callbacks,
        )  # fmt: skip


def _execute(
    space: Any,
    run_dir: Path,
    state: dict[str, Any] | None,
    *,
    address: str | None,
    console: Any,
    progress: bool,
    controller: Any = None,
    callbacks: Sequence[Any] = (),
) -> pd.DataFrame:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from growsearch.controllers import make_controller
    from growsearch.runner._callbacks import Progress, RecordCallback
    from growsearch.runner._searcher import ControllerSearcher
    from growsearch.runner._trainable import train_trial

    run_info = json.loads((run_dir / "run.json").read_text())
    settings = {**space.to_dict(), "run_dir": str(run_dir)}
    store = ResultsStore(
        run_dir, run_info.get("storage"), study_name=run_dir.name, objectives=list(space.objectives)
    )
    if controller is None:
        controller = make_controller(space.controller.name, space, seed=space.seed)
    searcher = ControllerSearcher(
        controller,
        settings,
        max_trials=space.budget.trials,
        max_epochs=space.budget.epochs,
        state_dir=run_dir,
    )
    if state is not None:
        searcher.set_state(state)
        _reconcile(searcher, store, run_dir)
    scheduler = None
    if space.scheduler is not None:
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=max(space.training.epochs, space.training.seed_epochs),
            grace_period=space.scheduler.grace_period,
            reduction_factor=space.scheduler.reduction_factor,
        )
    if console is None:
        from rich.console import Console

        console = Console()
    time_s = (
        space.budget.time_minutes * 60 - searcher.elapsed_s if space.budget.time_minutes else None
    )
    if searcher.complete() or (time_s is not None and time_s <= 0):
        df = load_results(run_dir)
        export_best(run_dir, df)
        return df
    from growsearch.runner._usercode import prepare_user_code

    owns_ray = _start_ray(address, run_dir, prepare_user_code(space, run_dir, address))
    try:
        note = check_cluster_resources(space, address)
    except ClusterTooSmall:
        if owns_ray:
            import ray

            ray.shutdown()
        raise
    if note is not None:
        console.print(f"growsearch: {note}", style="yellow", markup=False)
    run_info["sessions"] = int(run_info.get("sessions", 0)) + 1
    (run_dir / "run.json").write_text(json.dumps(run_info, indent=2))
    started = time.monotonic()
    try:
        with Progress(console, trials=space.budget.trials, time_s=time_s, enabled=progress) as bar:
            record = RecordCallback(store, bar)
            resources = {
                "cpu": space.resources.cpus_per_trial,
                "gpu": space.resources.gpus_per_trial,
            }
            tuner = tune.Tuner(
                tune.with_resources(train_trial, resources),
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    metric="val_acc",
                    mode="max",
                    num_samples=-1,  # the searcher enforces the budget (FINISHED)
                    max_concurrent_trials=space.resources.concurrency,
                    time_budget_s=time_s,
                    reuse_actors=True,
                    scheduler=scheduler,
                    trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
                ),
                run_config=tune.RunConfig(
                    name=f"search-{run_info['sessions']}",
                    storage_path=str(run_dir / "ray"),
                    callbacks=[record, *callbacks],
                    verbose=0,
                    failure_config=tune.FailureConfig(
                        max_failures=int(run_info.get("max_failures", 1))
                    ),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
            tuner.fit()
    finally:
        searcher.elapsed_s += time.monotonic() - started
        searcher._persist()
        if owns_ray:
            import ray

            ray.shutdown()
    df = load_results(run_dir) if (run_dir / "trials.parquet").exists() else pd.DataFrame()
    export_best(run_dir, df)
    out_of_time = time_s is not None and time.monotonic() - started >= time_s - 1
    if not searcher.complete() and not out_of_time:
        raise SearchInterrupted(run_dir, df)
    return df


def _reconcile(searcher: Any, store: ResultsStore, run_dir: Path) -> None:
    """After a crash, the searcher state and the results store may each miss the other's last
    event: a trial recorded in the parquet is finished for the controller too, and a finished
    trial missing from the parquet is recorded from its checkpoint's metrics."""
    from growsearch.checkpoint import load_checkpoint
    from growsearch.exceptions import CheckpointError

    known = store.known()
    df = store.df.set_index("trial_id") if len(store.df) else None
    for ours in list(searcher.issued):
        if ours in known and ours not in searcher.finished:
            assert df is not None  # ours in known implies store.df has rows
            row = df.loc[ours]
            status = str(row["status"])
            result = (
                None
                if status == "failed"
                else {
                    "val_acc": row["val_acc"],
                    "params": row["params"],
                    "flops": row["flops"],
                    "epoch": row["epochs"],
                }
            )
            searcher.observe(ours, status, result)
        if ours in known:
            if ours in searcher.pending:
                searcher.pending.remove(ours)
        elif ours in searcher.finished:
            try:
                m = load_checkpoint(run_dir / "models" / ours).meta.get("metrics", {})
                error = None
            except CheckpointError:
                m, error = {}, "lost before it was recorded"
            store.record(trial_row(searcher.issued[ours], m, trial_status(m), error, []))


def export_best(run_dir: str | Path, df: pd.DataFrame) -> Path | None:
    """Copy the best trial's weights and spec to ``run_dir/best`` (a loadable checkpoint)."""
    ok = ranked(df) if not df.empty else df
    if ok.empty:
        return None
    best = ok.iloc[0]
    src = Path(run_dir) / "models" / str(best["trial_id"])
    dst = Path(run_dir) / "best"
    tmp = Path(run_dir) / ".best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    (tmp / "trial.json").write_text(json.dumps({k: _plain(v) for k, v in best.items()}, indent=2))
    old = Path(run_dir) / ".best.old"
    if dst.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)
    return dst


def _class_path(obj: object) -> str:
    """``module.QualName`` of ``obj``'s class (recorded for a run's controller instance)."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, str | bool | int | float):
        return v
    try:
        return None if pd.isna(v) else v.item()
    except (AttributeError, ValueError, TypeError):
        return str(v)
