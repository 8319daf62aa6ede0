"""``run_search`` and ``resume_search``: a search space → Ray Tune → ``results/<run>/``.

A run folder holds ``space.json`` (the validated space), ``run.json`` (how it was started),
``search_state.json`` (the searcher and controller state), ``trials.parquet``, ``study.db``,
``models/<trial>/`` (each trial's latest checkpoint), ``best/`` and ``ray/`` (Tune's own
experiments, one per session: ``search-1``, ``search-2`` after a resume, ...).

The run folder is a local path or a URI (``s3://bucket/runs/name``, see
:mod:`growsearch.storage`); Ray Tune gets the same filesystem for its own storage, and every
worker reads parents and writes checkpoints there. What is the driver's own business stays in
its local scratch folder (the run folder itself when that is local): the record of the Ray it
started (``ray_session.json``) and the local mirror of a remote run's SQLite study.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from growsearch.exceptions import ConfigError
from growsearch.results import (
    ResultsStore,
    check_run_dir,
    default_storage,
    load_results,
    study_storage,
    trials_path,
)
from growsearch.runner._checks import check_address, check_storage
from growsearch.runner._export import export_best
from growsearch.runner._lock import run_lock
from growsearch.runner._ray import (
    ClusterTooSmall,
    check_cluster_resources,
    cleanup_stale_ray,
    ray_session,
)
from growsearch.runner._reconcile import reconcile
from growsearch.storage import Location, check_reachable, location, scratch_dir

if TYPE_CHECKING:
    from growsearch.runner._searcher import ControllerSearcher


class SearchInterrupted(Exception):
    """The search stopped before its budget was spent (Ctrl-C); it can be resumed."""

    def __init__(self, run_dir: Path | Location, df: pd.DataFrame):
        super().__init__(f"search interrupted; continue it with: growsearch resume {run_dir}")
        self.run_dir = run_dir
        self.df = df


def run_search(
    space: Any,
    run_dir: str | Path | Location,
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
        run_dir: the run's folder, a local path or a URI (``s3://bucket/runs/name``); must not
            hold anything yet (nothing is ever overwritten).
        address: an existing Ray cluster (default: start a local Ray bound to 127.0.0.1).
        storage: an Optuna RDB URL (default: SQLite ``run_dir/study.db``; for a run on a URI a
            local mirror of it, uploaded there after every trial).
        console: a rich Console for the live display (default: stdout).
        progress: show the live progress line.
        max_failures: how often a failed trial is retried (from its last checkpoint).
        controller: a Controller instance (default: ``space.controller``'s, by name).
        callbacks: more Ray Tune callbacks.

    Raises:
        ConfigError: bad input (checked before anything is written).
        SearchInterrupted: stopped by Ctrl-C before the budget was spent; resume it.
    """
    run_dir = location(run_dir)
    check_reachable(run_dir)
    if run_dir.listdir():
        raise ConfigError(
            f"{run_dir}: a run already exists there; choose another --name (nothing was changed)"
        )
    address = check_address(address)
    check_storage(storage)
    from growsearch.controllers import make_controller

    if controller is None:  # its own checks, before writing
        make_controller(space.controller.name, space, seed=space.seed)
    created = not run_dir.exists()
    run_dir.mkdir()
    try:
        with run_lock(run_dir):
            (run_dir / "space.json").write_text(
                json.dumps(space.to_dict(), indent=2, sort_keys=True)
            )
            run_info = {
                "name": run_dir.name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                # None: the default study, study.db in the run folder (see study_storage)
                "storage": storage
                or (default_storage(run_dir.local) if run_dir.local is not None else None),
                "address": address,
                "max_failures": max_failures,
                **(
                    {} if controller is None else {"controller_class": controller_class(controller)}
                ),
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
        run_dir.rmtree()
        if not created:
            run_dir.mkdir()
        raise


def resume_search(
    run_dir: str | Path | Location,
    *,
    address: str | None = None,
    console: Any = None,
    progress: bool = True,
    controller: Any = None,
    callbacks: Sequence[Any] = (),
) -> pd.DataFrame:
    """Continue a stopped or crashed search: finished trials are kept, running ones continue
    from their last checkpoint, the controller's state is restored, the budget is kept exactly."""
    from growsearch.runner._searcher import load_state
    from growsearch.space import SearchSpace

    run_dir = check_run_dir(run_dir)
    address = check_address(address)
    with run_lock(run_dir):
        cleanup_stale_ray(scratch_dir(run_dir))
        try:
            data = json.loads((run_dir / "space.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{run_dir / 'space.json'}: corrupt ({e})") from None
        space = SearchSpace.from_dict(data, path=str(run_dir / "space.json"))
        return _execute(
            space, run_dir, load_state(run_dir), address=address, console=console,
            progress=progress, controller=controller, callbacks=callbacks,
        )  # fmt: skip


def _execute(
    space: Any,
    run_dir: Location,
    state: dict[str, Any] | None,
    *,
    address: str | None,
    console: Any,
    progress: bool,
    controller: Any,
    callbacks: Sequence[Any],
) -> pd.DataFrame:
    """One session of a search, on a locked run folder: restore ``state`` (a resume), run Tune
    until the budget is spent or the search is stopped, refresh ``best/``, return the trials."""
    from growsearch.controllers import make_controller
    from growsearch.runner._callbacks import Progress, RecordCallback
    from growsearch.runner._searcher import ControllerSearcher
    from growsearch.runner._usercode import prepare_user_code

    run_info = json.loads((run_dir / "run.json").read_text())
    settings = {**space.to_dict(), "run_dir": str(run_dir)}
    url, mirror = study_storage(run_dir, run_info.get("storage"), writer=True)
    store = ResultsStore(
        run_dir, url, study_name=run_dir.name, objectives=list(space.objectives), mirror=mirror,
        modes=list(space.modes),
    )  # fmt: skip
    metric, mode = space.objective.metric, space.objective.mode
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
        reconcile(searcher, store, run_dir)
    if console is None:
        from rich.console import Console

        console = Console()
    time_s = (
        space.budget.time_minutes * 60 - searcher.elapsed_s if space.budget.time_minutes else None
    )
    if searcher.complete() or (time_s is not None and time_s <= 0):
        df = load_results(run_dir)
        export_best(run_dir, df, metric, mode)
        return df
    seed_arch = space.seed_arch
    if state is None and seed_arch is not None and seed_arch.custom is not None:
        widths = [(layer.name, layer.width) for layer in seed_arch.layers]
        console.print(
            f"growsearch: {seed_arch.custom.outline(widths)}", markup=False, soft_wrap=True
        )
    scratch = scratch_dir(run_dir)
    with ray_session(address, scratch, prepare_user_code(space, run_dir, address)):
        note = check_cluster_resources(space, address)
        if note is not None:
            console.print(f"growsearch: {note}", style="yellow", markup=False)
        run_info["sessions"] = int(run_info.get("sessions", 0)) + 1
        (run_dir / "run.json").write_text(json.dumps(run_info, indent=2))
        started = time.monotonic()
        try:
            with Progress(
                console, trials=space.budget.trials, time_s=time_s, enabled=progress
            ) as bar:
                tuner = _tuner(
                    space, searcher, run_dir, time_s=time_s, session=run_info["sessions"],
                    max_failures=int(run_info.get("max_failures", 1)),
                    callbacks=[RecordCallback(store, bar, searcher), *callbacks],
                )  # fmt: skip
                tuner.fit()
        finally:
            searcher.elapsed_s += time.monotonic() - started
            searcher._persist()
    df = load_results(run_dir) if trials_path(run_dir).is_file() else pd.DataFrame()
    export_best(run_dir, df, metric, mode)
    if searcher.fatal is not None:
        raise ConfigError(
            f"{space.path}: training: the first trial failed, and every trial would: "
            f"{searcher.fatal}"
        )
    out_of_time = time_s is not None and time.monotonic() - started >= time_s - 1
    if not searcher.complete() and not out_of_time:
        raise SearchInterrupted(run_dir, df)
    return df


def _tuner(
    space: Any,
    searcher: ControllerSearcher,
    run_dir: Location,
    *,
    time_s: float | None,
    session: int,
    max_failures: int,
    callbacks: list[Any],
) -> Any:
    """Ray Tune's Tuner for one session (experiment ``ray/search-<session>``): the searcher
    enforces the budget, ASHA (when the space has a ``scheduler``) stops weak children early."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from growsearch.runner._trainable import train_trial

    scheduler = None
    if space.scheduler is not None:
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=max(space.training.epochs, space.training.seed_epochs),
            grace_period=space.scheduler.grace_period,
            reduction_factor=space.scheduler.reduction_factor,
        )
    resources = {"cpu": space.resources.cpus_per_trial, "gpu": space.resources.gpus_per_trial}
    return tune.Tuner(
        tune.with_resources(train_trial, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            metric=space.objective.metric,  # ASHA stops the children worst by the objective
            mode=space.objective.mode,
            num_samples=-1,  # the searcher enforces the budget (FINISHED)
            max_concurrent_trials=space.resources.concurrency,
            time_budget_s=time_s,
            reuse_actors=True,
            scheduler=scheduler,
            trial_dirname_creator=lambda t: f"trial_{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=f"search-{session}",
            # Tune's own storage on the run's filesystem (a URI: every node uploads there)
            storage_path=str(run_dir / "ray")
            if run_dir.local is not None
            else (run_dir / "ray").path,
            storage_filesystem=None if run_dir.local is not None else run_dir.fs,
            callbacks=callbacks,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


def controller_class(controller: object) -> str:
    """``module.QualName`` of a controller instance's class (recorded in ``run.json``, checked
    when the run is resumed with a new instance)."""
    return f"{type(controller).__module__}.{type(controller).__qualname__}"
