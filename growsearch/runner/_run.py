"""``run_search``: a search space → a Ray Tune experiment → ``results/<run>/``."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from growsearch.exceptions import ConfigError
from growsearch.runner._results import ResultsStore, default_storage, load_results

# A local Ray must bind to loopback only; set before ray is imported anywhere in this process.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# growsearch checkpoints every epoch on purpose (resume); Tune's warning about it is noise here
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def _start_ray(address: str | None, space: Any) -> bool:
    """Connect to ``address`` (or RAY_ADDRESS), else start a local loopback-only Ray.
    Returns True if this process started it (and so must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    if address is None:
        kwargs["num_gpus"] = None
        ray.init(**kwargs)
        return True
    try:
        ray.init(address=address, **kwargs)
    except Exception as e:  # ConnectionError, TimeoutError, ValueError...
        raise ConfigError(
            f"--address: cannot connect to a Ray cluster at {address!r} ({type(e).__name__})"
        ) from None
    return True


def run_search(
    space: Any,
    run_dir: str | Path,
    *,
    address: str | None = None,
    storage: str | None = None,
    console: Any = None,
    progress: bool = True,
    max_failures: int = 0,
) -> pd.DataFrame:
    """Run the search ``space`` describes; write everything under ``run_dir`` and return the trials.

    Args:
        space: a validated :class:`growsearch.space.SearchSpace`.
        run_dir: the run's folder; must not exist yet (nothing is ever overwritten).
        address: an existing Ray cluster (default: start a local Ray bound to 127.0.0.1).
        storage: an Optuna RDB URL (default: SQLite ``run_dir/study.db``).
        console: a rich Console for the live display (default: stdout).
        progress: show the live progress line.
        max_failures: how often Ray retries a failed trial.
    """
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from growsearch.controllers import make_controller
    from growsearch.runner._callbacks import Progress, RecordCallback
    from growsearch.runner._searcher import ControllerSearcher
    from growsearch.runner._trainable import train_trial

    if space.seed_arch is None:
        raise ConfigError(
            f"{space.path}: seed_model: searches over a factory model are not supported yet"
        )
    run_dir = Path(run_dir).resolve()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(
            f"{run_dir}: a run already exists there; choose another --name (nothing was changed)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = {**space.to_dict(), "run_dir": str(run_dir)}
    (run_dir / "space.json").write_text(json.dumps(settings, indent=2, sort_keys=True))
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "name": run_dir.name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "storage": storage or default_storage(run_dir),
                "address": address,
                "command": " ".join(sys.argv),
            },
            indent=2,
        )
    )
    store = ResultsStore(
        run_dir, storage, study_name=run_dir.name, objectives=list(space.objectives)
    )
    controller = make_controller(space.controller.name, space, seed=space.seed)
    searcher = ControllerSearcher(
        controller, settings, max_trials=space.budget.trials, max_epochs=space.budget.epochs
    )
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
    owns_ray = _start_ray(address, space)
    try:
        time_s = space.budget.time_minutes * 60 if space.budget.time_minutes else None
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
                    num_samples=space.budget.trials or -1,
                    max_concurrent_trials=space.resources.concurrency,
                    time_budget_s=time_s,
                    reuse_actors=True,
                    scheduler=scheduler,
                    trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
                ),
                run_config=tune.RunConfig(
                    name="search",
                    storage_path=str(run_dir / "ray"),
                    callbacks=[record],
                    verbose=0,
                    failure_config=tune.FailureConfig(max_failures=max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
            tuner.fit()
    finally:
        if owns_ray:
            import ray

            ray.shutdown()
    df = load_results(run_dir) if (run_dir / "trials.parquet").exists() else pd.DataFrame()
    export_best(run_dir, df)
    return df


def export_best(run_dir: str | Path, df: pd.DataFrame) -> Path | None:
    """Copy the best trial's weights and spec to ``run_dir/best`` (a loadable checkpoint)."""
    if df.empty or not (df["status"] != "failed").any():
        return None
    ok = df[df["status"] != "failed"]
    best = ok.loc[ok["val_acc"].astype(float).idxmax()]
    src = Path(run_dir) / "models" / str(best["trial_id"])
    dst = Path(run_dir) / "best"
    tmp = Path(run_dir) / ".best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    (tmp / "trial.json").write_text(json.dumps({k: _plain(v) for k, v in best.items()}, indent=2))
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)
    return dst


def _plain(v: Any) -> Any:
    if v is None or isinstance(v, str | bool | int | float):
        return v
    try:
        return None if pd.isna(v) else v.item()
    except (AttributeError, ValueError, TypeError):
        return str(v)
