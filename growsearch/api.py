"""The Python API: run a search, resume one, read a run's results.

>>> run = growsearch.run("search_spaces/mnist1d_cnn.yaml", trials=5)
>>> run.best["val_acc"], run.best_model()

The ``growsearch run`` and ``growsearch resume`` commands are thin wrappers over :func:`run`
and :func:`resume`: same settings, same checks, same one-line errors. See ``docs/api.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from growsearch.exceptions import ConfigError
from growsearch.storage import Location, check_reachable, location

if TYPE_CHECKING:
    from torch import nn

    from growsearch.controllers import Controller
    from growsearch.space import SearchSpace

DICT_RUN_NAME = "search"
"""The run name of a space given as a dict without a ``name``."""
SIZE_COSTS = ("params", "flops")
"""The size objectives a search may minimise beside its metric: the costs of :meth:`Run.front`."""


class Run:
    """A run folder (``<results_dir>/<name>``): its trials, its best trial and best model.

    ``Run(path)`` opens an existing run without running anything; ``path`` is a local folder
    or a URI (``s3://bucket/runs/name``).

    Raises:
        ConfigError: ``path`` is not a growsearch run folder.
    """

    def __init__(self, run_dir: str | os.PathLike[str] | Location):
        from growsearch.results import check_run_dir

        self.location: Location = check_run_dir(run_dir)
        # a local run: its absolute Path; a run on a URI: its Location (``str()`` is the URI)
        self.dir: Path | Location = self.location.local or self.location

    @property
    def trials(self) -> pd.DataFrame:
        """One row per finished trial, as :func:`growsearch.load_results` reads them (empty,
        with the same columns, when no trial has finished)."""
        from growsearch.results import COLUMNS, load_results, trials_path

        if not trials_path(self.location).is_file():
            return pd.DataFrame(columns=COLUMNS)
        return load_results(self.location)

    @property
    def best(self) -> pd.Series | None:
        """The best trial's row by the run's :attr:`objective` (ties to the smaller model: the
        ranking of the leaderboard and of ``best/``), or None when no trial succeeded."""
        from growsearch.results import ranked

        ok = ranked(self.trials, *self.objective)
        return None if ok.empty else ok.iloc[0]

    @property
    def objective(self) -> tuple[str, str]:
        """``(metric, mode)``: the metric the search optimises (a ``trials`` column such as
        ``val_acc`` or ``val_mse``) and ``"max"`` or ``"min"`` (``("val_acc", "max")`` for a
        run whose ``space.json`` names none).

        Raises:
            ConfigError: ``space.json`` is unreadable.
        """
        from growsearch.results import run_objective

        return run_objective(self._space())

    @property
    def objectives(self) -> list[str]:
        """The search's objectives as its space gave them: the objective's metric, then
        ``params`` and/or ``flops`` if the search minimises size too (``["val_acc"]``,
        ``["val_mse", "params"]``).

        Raises:
            ConfigError: ``space.json`` is unreadable.
        """
        space = self._space()
        return list(space.get("objectives") or [self.objective[0]])

    def front(self, cost: str | None = None) -> pd.DataFrame:
        """The Pareto-optimal trials, smallest first: no other trial is as small (``cost``:
        ``params`` or ``flops``; default the search's first size objective, else ``params``)
        and as good by the run's :attr:`objective`, with one of the two strictly better.

        Raises:
            ValueError: ``cost`` is neither ``params`` nor ``flops``.
        """
        from growsearch.results import pareto_front

        if cost is None:
            cost = next((o for o in self.objectives if o in SIZE_COSTS), "params")
        if cost not in SIZE_COSTS:
            raise ValueError(f"Run.front: cost must be 'params' or 'flops', got {cost!r}")
        df = self.trials
        if df.empty:
            return df
        metric, mode = self.objective
        return df[pareto_front(df, cost, metric, mode)].sort_values(cost, kind="stable")

    def _space(self) -> dict[str, Any]:
        """The run's ``space.json`` (the validated space it was started with)."""
        path = self.location / "space.json"
        try:
            space = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: corrupt ({e})") from None
        if not isinstance(space, dict):
            raise ConfigError(f"{path}: corrupt (expected a JSON object)")
        return space

    def best_model(self, device: str = "cpu") -> nn.Module:
        """The best trial's model (``<dir>/best``), ready in eval mode on ``device``.

        Raises:
            CheckpointError: no trial succeeded, or the checkpoint does not load.
        """
        from growsearch.checkpoint import load_model

        return load_model(self.location / "best", device=device)

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"


def run(
    space: str | os.PathLike[str] | Mapping[str, Any] | SearchSpace,
    *,
    name: str | None = None,
    results_dir: str | os.PathLike[str] = "results/runs",
    trials: int | None = None,
    time_budget: float | None = None,
    concurrency: int | None = None,
    address: str | None = None,
    storage: str | None = None,
    seed: int | None = None,
    warm_start: bool | None = None,
    controller: str | Controller | None = None,
    callbacks: Sequence[Any] = (),
    retries: int = 1,
    progress: bool = True,
    console: Any = None,
) -> Run:
    """Run a search and return its :class:`Run` once the budget is spent.

    Args:
        space: A search-space YAML file, its content as a dict (relative paths in it resolve
            against the current directory) or a :class:`~growsearch.space.SearchSpace`.
        name: The run folder's name (default: the space's ``name``, else the file's stem;
            ``"search"`` for a dict without one). It must not hold a run already.
        results_dir: The parent folder of run folders: a local path or a URI that
            ``pyarrow.fs`` opens (``s3://bucket/runs``, ``gs://...``, ``file://...``); see
            ``docs/cluster.md``.
        trials: Overrides ``budget.trials``.
        time_budget: Overrides ``budget.time_minutes`` (wall-clock minutes).
        concurrency: Overrides ``resources.concurrency`` (trials running at once).
        address: An existing Ray cluster (default: ``RAY_ADDRESS``, else a local Ray bound to
            127.0.0.1, started and shut down here).
        storage: An Optuna storage URL (default: SQLite in the run folder).
        seed: Overrides ``seed``.
        warm_start: Overrides ``warm_start``: False trains every child from scratch (the
            baseline), True warm-starts them; None keeps the space's setting.
        controller: A registered controller's name (overrides ``controller.name``) or a
            :class:`~growsearch.controllers.Controller` instance, built on the same space.
        callbacks: Ray Tune callbacks (``ray.tune.Callback``), called along the search's own.
        retries: How often a failed trial is retried, from its last checkpoint.
        progress: Print the run folder and a live progress line.
        console: A ``rich`` Console for that output (default: stdout).

    Raises:
        GrowsearchError: Bad input, one line naming the file or option (nothing is written).
        SearchInterrupted: Stopped (Ctrl-C) before the budget was spent; :func:`resume` it.
    """
    from growsearch.controllers import Controller

    if retries < 0:
        raise ConfigError(f"--retries: expected an integer >= 0, got {retries}")
    overrides: dict[str, Any] = {}
    if trials is not None:
        overrides["budget.trials"] = trials
    if time_budget is not None:
        overrides["budget.time_minutes"] = time_budget
    if concurrency is not None:
        overrides["resources.concurrency"] = concurrency
    if seed is not None:
        overrides["seed"] = seed
    if warm_start is not None:
        overrides["warm_start"] = bool(warm_start)
    instance: Controller | None = None
    if isinstance(controller, str):
        overrides["controller.name"] = controller
    elif isinstance(controller, Controller):
        instance = controller
    elif controller is not None:
        raise ConfigError(
            "controller: expected a controller name or a growsearch.controllers.Controller, "
            f"got {type(controller).__name__}"
        )
    resolved = _load(space, overrides)
    name = name or resolved.name
    parent = location(results_dir)
    check_reachable(parent)
    run_dir = parent / name
    if run_dir.listdir():
        raise ConfigError(
            f"{run_dir}: a run named {name!r} already exists; choose another --name (nothing was changed)"
        )
    from growsearch.runner import run_search

    console = _console(console, progress)
    if progress:
        console.print(f"growsearch: searching {resolved.path.name} → {run_dir}")
    run_search(
        resolved,
        run_dir,
        address=address,
        storage=storage,
        console=console,
        progress=progress,
        max_failures=retries,
        controller=instance,
        callbacks=list(callbacks),
    )
    return Run(run_dir)


def resume(
    run_dir: str | os.PathLike[str] | Location,
    *,
    address: str | None = None,
    controller: Controller | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    console: Any = None,
) -> Run:
    """Continue a stopped or crashed search and return its :class:`Run` once the budget is spent.

    Finished trials are kept, running ones continue from their last checkpoint, the
    controller's state is restored; a finished run is returned as it is, without starting Ray.

    Args:
        run_dir: The run folder.
        address: An existing Ray cluster (default: as in :func:`run`).
        controller: For a run started with a controller instance only: a new instance of the
            same class (its state is restored from the run). Other runs rebuild their
            controller from the run's space.
        callbacks: Ray Tune callbacks, as in :func:`run`.
        progress: Print the run folder and a live progress line.
        console: A ``rich`` Console for that output (default: stdout).

    Raises:
        GrowsearchError: Not a run folder, or bad input (one line).
        SearchInterrupted: Stopped again before the budget was spent.
    """
    from growsearch.controllers import Controller
    from growsearch.results import check_run_dir
    from growsearch.runner import controller_class, resume_search

    path = check_run_dir(run_dir)
    recorded = _recorded_controller(path)
    if controller is not None and not isinstance(controller, Controller):
        raise ConfigError(
            f"controller: expected a growsearch.controllers.Controller, got {type(controller).__name__}"
        )
    if recorded is not None and controller is None:
        raise ConfigError(
            f"{path}: this run's controller is an instance of {recorded}; resume it from Python "
            "with growsearch.resume(run_dir, controller=<a new instance>)"
        )
    if controller is not None and recorded != controller_class(controller):
        what = "a registered controller" if recorded is None else f"an instance of {recorded}"
        raise ConfigError(
            f"controller: this run's controller is {what}, got an instance of {controller_class(controller)}"
        )
    console = _console(console, progress)
    if progress:
        console.print(f"growsearch: resuming {path}")
    resume_search(
        path,
        address=address,
        console=console,
        progress=progress,
        controller=controller,
        callbacks=list(callbacks),
    )
    return Run(path)


# ---- helpers ---------------------------------------------------------------------------------
def _load(space: Any, overrides: dict[str, Any]) -> SearchSpace:
    """``space`` (a path, a dict or a SearchSpace) validated with ``overrides``."""
    from growsearch.space import SearchSpace, load_space

    if isinstance(space, SearchSpace):
        return space.with_overrides(overrides) if overrides else space
    if isinstance(space, Mapping):
        data = dict(space)
        data.setdefault("name", DICT_RUN_NAME)
        # path "<dict>": messages say "<dict>: key: ...", relative paths resolve against "."
        return SearchSpace.from_dict(data, path="<dict>", overrides=overrides)
    if isinstance(space, str | os.PathLike):
        return load_space(Path(space), overrides)
    raise ConfigError(
        f"space: expected a YAML file path, a dict or a SearchSpace, got {type(space).__name__}"
    )


def _console(console: Any, progress: bool) -> Any:
    if console is None and progress:
        from rich.console import Console

        console = Console(width=max(120, Console().width))
    return console


def _recorded_controller(run_dir: Location) -> str | None:
    """The class of the controller instance a run was started with (None: a registered one,
    rebuilt from the run's space)."""
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{run_dir / 'run.json'}: corrupt ({e})") from None
    value = info.get("controller_class") if isinstance(info, dict) else None
    return value if isinstance(value, str) else None
