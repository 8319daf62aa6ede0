"""A run's results: reading a run folder (:func:`check_run_dir`, :func:`load_results`,
:func:`ranked`, :func:`pareto_front`) and the store a search writes them with
(:class:`ResultsStore`): ``trials.parquet`` (one row per trial) and an Optuna study mirroring it.

The study lives where ``--storage`` says (any Optuna RDB URL), by default in SQLite: the run
folder's ``study.db`` for a local run. SQLite cannot work on an object store, so a run on a
URI (``s3://...``) keeps its default study in a local SQLite mirror (in the driver's scratch
folder) and uploads it to ``<run>/study.db`` after every recorded trial; a resume, or a reader
such as the dashboard, downloads it first. The parquet file is written before the study, and a
store that opens a study behind its parquet file catches it up, so the copy on the URI is never
more than one trial behind and loses nothing.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from growsearch.exceptions import ConfigError
from growsearch.storage import Location, check_reachable, location, scratch_dir

STUDY_FILE = "study.db"

COLUMNS = [
    "trial_id", "parent_id", "ops", "arch", "arch_summary", "params", "flops", "val_acc",
    "test_acc", "epochs", "train_seconds", "status", "error", "warm_start", "parent_acc",
    "acc_before", "acc_start", "shrink", "shrink_scope", "warmup_steps", "cycle_steps", "preserve_err", "restarts", "curve", "device", "gpu_ids", "precision",
]  # fmt: skip
"""``device`` (``cpu``, ``cuda``...), ``gpu_ids`` (Ray's GPU ids for the trial, comma-separated,
empty without) and ``precision`` (``fp32``, ``bf16`` or ``fp16`` autocast): where a trial trained."""
OBJECTIVE_DIRECTIONS: dict[str, Literal["minimize", "maximize"]] = {
    "val_acc": "maximize",
    "val_loss": "minimize",
    "params": "minimize",
    "flops": "minimize",
}
METRIC_PREFIXES = ("val_", "test_")
"""Reported metrics with these prefixes get a column of their own (``val_mse``, ``test_iou``)."""


RUN_FILES = ("run.json", "space.json")
"""The files every run folder holds from its start."""


def check_run_dir(run_dir: str | os.PathLike[str] | Location) -> Location:
    """A folder (a local path or a URI) that holds a growsearch run, else ConfigError."""
    loc = location(run_dir)
    check_reachable(loc)
    if not loc.is_dir():
        raise ConfigError(f"{run_dir}: no such run directory")
    missing = [f for f in RUN_FILES if not (loc / f).is_file()]
    if missing:
        raise ConfigError(f"{run_dir}: not a growsearch run (missing {', '.join(missing)})")
    return loc


def run_objective(space: dict[str, Any] | None) -> tuple[str, str]:
    """``(metric, mode)`` of a run's objective from its ``space.json`` (``("val_acc", "max")``
    for a run made before objectives had a direction)."""
    objective = (space or {}).get("objective") or {}
    return str(objective.get("metric", "val_acc")), str(objective.get("mode", "max"))


def trial_status(metrics: dict[str, Any] | None, metric: str = "val_acc") -> str:
    """``completed``, ``stopped`` (fewer epochs than planned: early-stopped) or ``failed`` (no
    value of the objective's ``metric``)."""
    if not metrics or metric not in metrics:
        return "failed"
    return "completed" if metrics.get("epoch", 0) >= metrics.get("epochs_planned", 0) else "stopped"


def trial_row(
    proposal: dict[str, Any],
    metrics: dict[str, Any],
    status: str,
    error: str | None,
    curve: list[float],
) -> dict[str, Any]:
    """One ``trials.parquet`` row from a proposal and the trial's last reported metrics."""
    from growsearch.arch import ArchSpec

    ok = status != "failed"
    warm = metrics.get("warm_start")
    extra = {
        k: (float(v) if ok else None)
        for k, v in metrics.items()
        if k.startswith(METRIC_PREFIXES) and isinstance(v, int | float) and not isinstance(v, bool)
    }
    return {
        **extra,
        "trial_id": proposal["trial_id"],
        "parent_id": proposal.get("parent_id"),
        "ops": json.dumps(proposal.get("ops", [])),
        "arch": json.dumps(proposal["arch"], sort_keys=True),
        "arch_summary": ArchSpec.from_dict(proposal["arch"]).summary(),
        "params": metrics.get("params"),
        "flops": metrics.get("flops"),
        "val_acc": metrics.get("val_acc") if ok else None,
        "test_acc": metrics.get("test_acc") if ok else None,
        "epochs": metrics.get("epoch", 0),
        "train_seconds": metrics.get("train_seconds"),
        "status": status,
        "error": error,
        "warm_start": bool(warm) if warm is not None else None,
        "parent_acc": metrics.get("parent_acc"),
        "acc_before": metrics.get("acc_before"),
        "acc_start": metrics.get("acc_start"),
        "shrink": metrics.get("shrink"),
        "shrink_scope": metrics.get("shrink_scope"),
        "warmup_steps": metrics.get("warmup_steps"),
        "cycle_steps": metrics.get("cycle_steps"),
        "preserve_err": metrics.get("preserve_err"),
        "restarts": metrics.get("restarts", 0),
        "curve": json.dumps(curve),
        "device": metrics.get("device"),
        "gpu_ids": metrics.get("gpu_ids"),
        "precision": metrics.get("precision"),
    }


def _missing(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def ranked(df: pd.DataFrame, metric: str = "val_acc", mode: str = "max") -> pd.DataFrame:
    """Successful trials, best first: the best value of the objective's ``metric`` (highest for
    ``mode`` ``max``, lowest for ``min``), ties to the smaller model.

    The one ranking used by the leaderboard, the report and the ``best/`` export.
    """
    if metric not in df.columns:
        return df.iloc[0:0]
    ok = df[df["status"].isin(["completed", "stopped"]) & df[metric].notna()].copy()
    ok["_value"] = ok[metric].astype(float)
    ok["_params"] = pd.to_numeric(ok["params"], errors="coerce")
    ok = ok.sort_values(
        ["_value", "_params", "trial_id"], ascending=[mode == "min", True, True], kind="stable"
    )
    return ok.drop(columns=["_value", "_params"])


def pareto_front(
    df: pd.DataFrame, cost: str = "params", metric: str = "val_acc", mode: str = "max"
) -> pd.Series:
    """Boolean mask of the trials no other trial beats: cost as low, the objective's ``metric``
    as good (``mode``), one strictly.

    Failed trials and rows without the cost are never on the front.
    """
    if metric not in df.columns:
        return pd.Series(np.zeros(len(df), dtype=bool), index=df.index, name="pareto")
    ok = df["status"].isin(["completed", "stopped"]) & df[metric].notna() & df[cost].notna()
    c = pd.to_numeric(df[cost], errors="coerce").to_numpy(dtype=float)
    a = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype=float)
    if mode == "min":
        a = -a  # larger is better below
    mask = np.zeros(len(df), dtype=bool)
    idx = np.flatnonzero(ok.to_numpy())
    for i in idx:
        others = idx[idx != i]
        dominated = (
            (c[others] <= c[i]) & (a[others] >= a[i]) & ((c[others] < c[i]) | (a[others] > a[i]))
        )
        mask[i] = not dominated.any()
    return pd.Series(mask, index=df.index, name="pareto")


def trials_path(run_dir: str | Path | Location) -> Location:
    return location(run_dir) / "trials.parquet"


def load_results(run_dir: str | Path | Location) -> pd.DataFrame:
    """The run's trials as a DataFrame (one row per trial; ``ops`` and ``arch`` are JSON).

    ``run_dir`` is a local path or a URI (``s3://bucket/runs/name``)."""
    path = trials_path(run_dir)
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a growsearch run (no trials.parquet)")
    try:
        return pd.read_parquet(io.BytesIO(path.read_bytes()))
    except (OSError, ValueError) as e:  # pyarrow's errors derive from these
        msg = str(e).splitlines()[0][:200] if str(e) else ""
        raise ConfigError(f"{path}: unreadable ({type(e).__name__}: {msg})") from None


def default_storage(run_dir: str | Path) -> str:
    return f"sqlite:///{Path(run_dir).resolve() / STUDY_FILE}"


def study_storage(
    run_dir: Location, recorded: str | None, *, writer: bool
) -> tuple[str, Path | None]:
    """The Optuna storage URL to open for a run, and the local SQLite mirror to upload after
    each write (None: the study is where the URL says).

    Args:
        run_dir: the run folder.
        recorded: ``run.json``'s ``storage`` (None: the default study of the run folder).
        writer: the search's own driver (its mirror is ``study.db`` in its scratch folder); a
            reader gets a private copy of the run's study.
    """
    if recorded:
        return recorded, None
    if run_dir.local is not None:
        return default_storage(run_dir.local), None
    scratch = scratch_dir(run_dir)
    db = scratch / (STUDY_FILE if writer else f"study-read-{os.getpid()}.db")
    remote = run_dir / STUDY_FILE
    if remote.is_file():
        remote.download(db)
    else:
        db.unlink(missing_ok=True)
    return f"sqlite:///{db}", db


class ResultsStore:
    """Appends finished trials to the parquet file and the Optuna study; idempotent by trial id."""

    def __init__(
        self,
        run_dir: str | Path | Location,
        storage: str | None,
        study_name: str,
        objectives: list[str],
        *,
        mirror: Path | None = None,
        modes: list[str] | None = None,
    ):
        """``mirror``: the local SQLite file ``storage`` names, uploaded to the run folder's
        ``study.db`` after every write (a run on a URI, see :func:`study_storage`). ``modes``:
        ``max``/``min`` per objective (default: by name, :data:`OBJECTIVE_DIRECTIONS`)."""
        import optuna

        self.run_dir = location(run_dir)
        self.objectives = list(objectives)
        if modes is None:
            modes = [
                "max" if OBJECTIVE_DIRECTIONS.get(o, "minimize") == "maximize" else "min"
                for o in self.objectives
            ]
        self.modes = list(modes)
        self.mirror = mirror
        path = trials_path(self.run_dir)
        self.df = (
            pd.read_parquet(io.BytesIO(path.read_bytes()))
            if path.is_file()
            else pd.DataFrame(columns=COLUMNS)
        )
        for col in COLUMNS:  # a run from an older version lacks the newer columns
            if col not in self.df.columns:
                self.df[col] = None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            self.study = optuna.create_study(
                storage=storage or default_storage(self.run_dir.local or scratch_dir(self.run_dir)),
                study_name=study_name,
                directions=["maximize" if m == "max" else "minimize" for m in self.modes],
                load_if_exists=True,
            )
        except Exception as e:  # SQLAlchemy/optuna raise many kinds for a bad URL
            raise ConfigError(
                f"--storage: cannot open Optuna storage {storage!r}: {e}".splitlines()[0]
            ) from None
        self._in_study = {
            t.user_attrs.get("trial_id") for t in self.study.get_trials(deepcopy=False)
        }
        # a crash between the parquet write and the study write leaves the study behind: catch up
        for row in self.df.to_dict("records"):
            if row["trial_id"] not in self._in_study:
                self._add_to_study({c: (None if _missing(v) else v) for c, v in row.items()})
                self._in_study.add(row["trial_id"])
                self._sync_study()

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its callbacks with the experiment state; the study holds a DB engine
        state = dict(self.__dict__)
        state["study"] = None
        return state

    def known(self) -> set[str]:
        return set(self.df["trial_id"]) if len(self.df) else set()

    def record(self, row: dict[str, Any]) -> None:
        """Add one finished trial (no-op if it is already recorded)."""
        extra = [c for c in row if c not in COLUMNS and c.startswith(METRIC_PREFIXES)]
        columns = COLUMNS + [c for c in self.df.columns if c not in COLUMNS]
        columns += [c for c in extra if c not in columns]
        row = {c: row.get(c) for c in columns}
        if row["trial_id"] not in self.known():
            new = pd.DataFrame([row], columns=columns)
            self.df = (
                new
                if self.df.empty
                else pd.concat([self.df.reindex(columns=columns), new], ignore_index=True)
            )
            self._write()
        if row["trial_id"] not in self._in_study:
            self._add_to_study(row)
            self._in_study.add(row["trial_id"])
            self._sync_study()

    def _sync_study(self) -> None:
        """Upload the local mirror of the study to the run folder (a run on a URI)."""
        if self.mirror is not None and self.mirror.is_file():
            (self.run_dir / STUDY_FILE).upload(self.mirror)

    def _write(self) -> None:
        df = self.df.copy()
        for col in ("params", "flops", "epochs", "restarts", "warmup_steps", "cycle_steps"):
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
        for col in (
            "trial_id",
            "parent_id",
            "ops",
            "arch",
            "arch_summary",
            "status",
            "error",
            "curve",
            "device",
            "gpu_ids",
            "precision",
        ):
            df[col] = df[col].astype(object).where(df[col].notna(), None)
        df["warm_start"] = df["warm_start"].astype("boolean")
        metric_cols = [c for c in df.columns if c not in COLUMNS and c.startswith(METRIC_PREFIXES)]
        for col in (
            *metric_cols,
            "val_acc",
            "test_acc",
            "train_seconds",
            "parent_acc",
            "acc_before",
            "acc_start",
            "shrink",
            "preserve_err",
        ):
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        trials_path(self.run_dir).write_bytes(buf.getvalue())  # atomic: rename, or one PUT

    def _add_to_study(self, row: dict[str, Any]) -> None:
        import optuna
        from optuna.distributions import FloatDistribution, IntDistribution
        from optuna.trial import TrialState

        arch = json.loads(row["arch"])
        params: dict[str, Any] = {"depth": sum(len(s["layers"]) for s in arch["stages"])}
        dists: dict[str, Any] = {"depth": IntDistribution(0, 1024)}
        for i, s in enumerate(arch["stages"]):
            params[f"stage{i}_width"] = max((w for _, w in s["layers"]), default=0)
            dists[f"stage{i}_width"] = IntDistribution(0, 1 << 20)
        if row["params"]:
            params["log10_params"] = math.log10(max(1, int(row["params"])))
            dists["log10_params"] = FloatDistribution(0.0, 12.0)
        ok = row["status"] in ("completed", "stopped") and not _missing(row.get(self.objectives[0]))
        values = None
        if ok:
            values = [float(row[o]) for o in self.objectives]
        curve = json.loads(row["curve"] or "[]")
        attrs = {
            "trial_id": row["trial_id"], "parent_id": row["parent_id"], "ops": row["ops"],
            "arch": row["arch_summary"], "status": row["status"], "test_acc": row["test_acc"],
            "flops": row["flops"], "params": row["params"], "error": row["error"],
        }  # fmt: skip
        trial = optuna.trial.create_trial(
            params=params,
            distributions=dists,
            values=values,
            state=TrialState.COMPLETE if ok else TrialState.FAIL,
            intermediate_values={i + 1: float(v) for i, v in enumerate(curve)},
            user_attrs={k: v for k, v in attrs.items() if v is not None},
        )
        self.study.add_trial(trial)
