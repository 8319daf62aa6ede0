"""``growsearch dashboard``: optuna-dashboard over a run's study, with growsearch's own figures.

optuna-dashboard shows the run's Optuna study (trial table, objective history, each trial's
learning curve as intermediate values, parameter views). growsearch adds its figures (lineage
tree, the objective's metric vs cost with the Pareto front, best-so-far vs compute, learning
curves along the lineage) and a note (summary + leaderboard) to the same study, with
``save_plotly_graph_object(study, fig, graph_object_id=...)`` and ``save_note``: they appear on
the study's page. A background thread re-reads ``trials.parquet`` every few seconds and saves
them again when it changed, so the page follows a running search.

A run on a URI (``s3://...``) with the default study: the dashboard serves a local copy of the
run's ``study.db`` taken when it starts (restart it for newer trials in optuna-dashboard's own
views); growsearch's figures and note still follow ``trials.parquet``.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pandas as pd

from growsearch.exceptions import ConfigError
from growsearch.results import load_results, run_objective, study_storage, trials_path
from growsearch.storage import Location
from growsearch.viz import (
    all_figures,
    format_value,
    leaderboard,
    metric_label,
    metric_test_column,
)

REFRESH_SECONDS = 3.0
FIGURE_ID_PREFIX = "growsearch-"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _import_dashboard() -> Any:
    try:
        import optuna_dashboard
    except ImportError:
        raise ConfigError(
            "the dashboard needs optuna-dashboard: pip install 'growsearch[dashboard]'"
        ) from None
    return optuna_dashboard


def run_storage(run_dir: Location) -> str:
    """The Optuna storage URL of a run's study (``run.json``'s ``storage``; for the default
    study of a run on a URI, a local copy of it)."""
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{run_dir / 'run.json'}: cannot read ({e})") from None
    return study_storage(run_dir, info.get("storage"), writer=False)[0]


def summary_note(
    run_name: str, df: pd.DataFrame, top: int = 10, metric: str = "val_acc", mode: str = "max"
) -> str:
    """The study note: the run in one line and the leaderboard (best first by ``metric`` and
    ``mode``, with the metric's validation and test columns), in Markdown."""
    board = leaderboard(df, metric, mode)
    test = metric_test_column(metric)
    val_name, test_name = metric_label(metric), metric_label(test)
    subject = "accuracy" if metric == "val_acc" else metric
    done = board[board["rank"] != "-"]
    lines = [f"## growsearch run `{run_name}`", ""]
    head = f"{len(df)} trials finished ({len(done)} succeeded, {len(df) - len(done)} failed)"
    if len(done):
        b = done.iloc[0]
        head += (
            f" · best **{b['trial_id']}** {b['arch_summary']}: "
            f"{val_name} {format_value(b[metric], metric)}, "
            f"{test_name} {format_value(b[test], test) or '-'}, {int(b['params']):,} params"
        )
    lines += [head + f" · updated {time.strftime('%H:%M:%S')}", ""]
    lines += [
        f"growsearch's figures (lineage, {subject} vs cost, best so far vs compute, learning "
        "curves along the lineage) are on the study's first page, redrawn when `trials.parquet` "
        "changes; each trial's learning curve is its intermediate values; every trial: "
        "*Trials (List)*.",
        "",
        f"| rank | trial | parent | ops | arch | params | {val_name} | {test_name} | status |",
        "|---:|---|---|---|---|---:|---:|---:|---|",
    ]
    for _, r in board.head(top).iterrows():
        r = r.map(lambda v: v.replace("|", "\\|") if isinstance(v, str) else v)  # cnn[8|16]
        ok = r["rank"] != "-"
        lines.append(
            f"| {r['rank']} | {r['trial_id']} | {r['parent_id']} | {r['ops'] or '-'} "
            f"| {r['arch_summary']} | {int(r['params']):,} "
            f"| {format_value(r[metric], metric)} | {format_value(r[test], test)} | {r['status']} |"
            if ok
            else f"| - | {r['trial_id']} | {r['parent_id']} | {r['ops'] or '-'} "
            f"| {r['arch_summary']} | | | | {r['status']} |"
        )
    return "\n".join(lines)


class FigurePublisher:
    """Saves growsearch's figures and note into a run's study when ``trials.parquet`` changes."""

    def __init__(self, run_dir: Location, storage: str, log: Callable[[str], None] | None = None):
        self.run_dir = run_dir
        self.storage = storage
        self.log = log or (lambda msg: print(f"growsearch dashboard: {msg}", file=sys.stderr))
        self.study: Any = None
        self.metric, self.mode = "val_acc", "max"  # the run's objective, read with the study
        self._seen: tuple[int, int] | None = None
        self._published: dict[str, str] = {}
        self._last_error = ""

    def _load_study(self) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.load_study(study_name=self.run_dir.name, storage=self.storage)
        except KeyError:  # the search has not created its study yet
            return None
        path = self.run_dir / "space.json"
        space = json.loads(path.read_text()) if path.is_file() else {}
        self.metric, self.mode = run_objective(space)
        objectives = space.get("objectives")  # e.g. ["val_mse", "params"]: the study's values
        if objectives and len(objectives) == len(study.directions):
            with warnings.catch_warnings():  # "experimental" since optuna 3.2
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(objectives))
        return study

    def poll(self) -> bool:
        """Publish if the results changed since the last call; True if it published."""
        try:
            seen = trials_path(self.run_dir).signature()
        except OSError:
            return False  # unreachable for now: try again next time
        if seen is None:
            return False  # no trial has finished yet
        if seen == self._seen:
            return False
        try:
            if self.study is None:
                self.study = self._load_study()
                if self.study is None:
                    return False
            self.publish(load_results(self.run_dir))
        except Exception as e:  # a locked SQLite, a half-written file: try again next time
            msg = f"cannot update the figures yet ({type(e).__name__}: {e}); retrying"
            if msg != self._last_error:
                self.log(msg.splitlines()[0])
            self._last_error = msg
            return False
        self._seen = seen
        self._last_error = ""
        return True

    def publish(self, df: pd.DataFrame) -> None:
        """Save every figure of the run's objective (each under a fixed id, so it is replaced)
        and the note."""
        from optuna_dashboard import save_note, save_plotly_graph_object

        figures = all_figures(df, compact=True, metric=self.metric, mode=self.mode)
        for name, fig in figures.items():
            graph_id = FIGURE_ID_PREFIX + name
            as_json = fig.to_json()
            if self._published.get(graph_id) != as_json:  # unchanged figures: no writes
                save_plotly_graph_object(self.study, fig, graph_object_id=graph_id)
                self._published[graph_id] = as_json
        save_note(
            self.study, summary_note(self.run_dir.name, df, metric=self.metric, mode=self.mode)
        )

    def run(self, stop: threading.Event, every: float = REFRESH_SECONDS) -> None:
        """Poll until ``stop`` is set."""
        while not stop.is_set():
            self.poll()
            stop.wait(every)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # the dashboard's page fires many requests at once


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per request: too much
        pass


class Dashboard:
    """optuna-dashboard over ``run_dir``'s study plus growsearch's figures, kept up to date.

    Binds on construction (``port=0`` picks a free port); ``serve_forever()`` blocks,
    ``start()`` serves from a background thread, ``close()`` stops both the server and the
    figure updates.
    """

    def __init__(
        self,
        run_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 8080,
        refresh_seconds: float = REFRESH_SECONDS,
    ):
        from growsearch.results import check_run_dir

        self.run_dir = check_run_dir(run_dir)
        optuna_dashboard = _import_dashboard()
        self.storage = run_storage(self.run_dir)
        self.refresh_seconds = refresh_seconds
        self.publisher = FigurePublisher(self.run_dir, self.storage)
        try:
            app = optuna_dashboard.wsgi(self.storage)
        except Exception as e:
            raise ConfigError(f"cannot open the run's study {self.storage!r}: {e}") from None
        server_class = _Server6 if ":" in host else _Server
        try:
            self.server = make_server(host, port, app, server_class, _QuietHandler)
        except OSError as e:
            raise ConfigError(
                f"--host/--port: cannot listen on {host}:{port} ({e.strerror or e})"
            ) from None
        self.host, self.port = host, int(self.server.server_address[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """The dashboard's address (the run's study page once the study exists)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"http://{host}:{self.port}/dashboard"
        study = self.publisher.study
        if study is None:
            try:
                import optuna

                study_id = optuna.storages.get_storage(self.storage).get_study_id_from_name(
                    self.run_dir.name
                )
            except KeyError:
                return base
        else:
            study_id = study._study_id
        return f"{base}/studies/{study_id}"

    def _start_updates(self) -> None:
        self.publisher.poll()  # the figures are there before the first page load
        t = threading.Thread(
            target=self.publisher.run,
            args=(self._stop, self.refresh_seconds),
            name="growsearch-dashboard-figures",
            daemon=True,
        )
        t.start()
        self._threads.append(t)

    def start(self) -> Dashboard:
        """Serve from background threads; returns self."""
        self._start_updates()
        t = threading.Thread(
            target=self.server.serve_forever, name="growsearch-dashboard", daemon=True
        )
        t.start()
        self._threads.append(t)
        return self

    def serve_forever(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        self._start_updates()
        try:
            self.server.serve_forever()
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if any(t.name == "growsearch-dashboard" for t in self._threads):
            self.server.shutdown()
        self.server.server_close()
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_dashboard(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the dashboard of ``run_dir`` until Ctrl-C; prints its URL.

    Raises:
        ConfigError: ``run_dir`` is not a run, or ``host:port`` cannot be listened on.
    """
    dash = Dashboard(run_dir, host=host, port=port)
    if host not in LOOPBACK:
        print(
            f"growsearch dashboard: listening on {host}, not loopback: anyone who can reach "
            "this machine can see (and edit notes of) the study; there is no login",
            file=sys.stderr,
        )
    dash.publisher.poll()
    print(f"growsearch dashboard: {dash.run_dir.name} at {dash.url}  (Ctrl-C to stop)", flush=True)
    try:
        dash.serve_forever()
    except KeyboardInterrupt:  # the way to stop it
        print("growsearch dashboard: stopped", file=sys.stderr)
