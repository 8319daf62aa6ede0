"""Driver-side Tune callbacks: record finished trials, and show live progress."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from growsearch.results import ResultsStore, ranked, trial_row, trial_status


def _error_line(trial: Any) -> str:
    """The last line of a failed trial's traceback (the exception itself)."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        lines = [
            line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()
        ]
        for line in reversed(lines):
            if "Error" in line or "Exception" in line:
                return line.strip()[:500]
        if lines:
            return lines[-1].strip()[:500]
    return "trial failed"


class RecordCallback(Callback):
    """Keeps each trial's learning curve and writes every finished trial to the results store."""

    def __init__(
        self,
        store: ResultsStore,
        progress: Progress,
        searcher: Any = None,
    ):
        self.store = store
        self.progress = progress
        self.metric = store.objectives[0]  # the search's objective
        self.searcher = searcher  # told (``fatal``) when the first trials break their reports
        self.curves: dict[str, list[float]] = {}
        self.running: set[str] = set()
        self.warned_no_cuda = False

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(_ours(trial))
        self._update()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        curve = self.curves.setdefault(_ours(trial), [])
        if isinstance(result.get("history"), list):  # every epoch's value, across restarts
            curve[:] = [float(v) for v in result["history"]]
        else:
            epoch = int(result.get("epoch", len(curve) + 1))
            del curve[epoch - 1 :]  # a restarted trial re-reports epochs
            value = result.get(self.metric)
            curve.append(float("nan") if value is None else float(value))
        if result.get("gpu_ids") and result.get("device") == "cpu" and not self.warned_no_cuda:
            self.warned_no_cuda = True  # once per session: every such trial records it anyway
            self._warn(
                f"warning: Ray gave trial {_ours(trial)} GPU {result['gpu_ids']} but CUDA is not "
                "available in its worker; such trials train on the CPU (column 'device')"
            )
        self._update()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, None)
        self._update()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._record(trial, _error_line(trial))
        self._update()

    def _record(self, trial: Any, error: str | None) -> None:
        self.running.discard(_ours(trial))
        r = trial.last_result or {}
        status = "failed" if error else trial_status(r, self.metric)
        fatal = error is not None and "ReportError" in error
        # no trial has reported the objective yet: every later one would fail the same way
        if fatal and self.searcher is not None and not (self.store.df["status"] != "failed").any():
            assert error is not None
            self.searcher.fatal = error.split("ReportError:", 1)[-1].strip()
        curve = self.curves.get(_ours(trial), [])
        self.store.record(trial_row(trial.config["proposal"], r, status, error, curve))

    def _warn(self, message: str) -> None:
        console = self.progress.console  # None in a copy unpickled from Tune's state
        if console is not None:
            console.print(f"growsearch: {message}", style="yellow", markup=False)
        else:
            import logging

            logging.getLogger("growsearch").warning(message)

    def _update(self) -> None:
        self.progress.update(self.store, len(self.running))


def _ours(trial: Any) -> str:
    """growsearch's trial id (``t0003``), not Ray's."""
    return str(trial.config["proposal"]["trial_id"])


class Progress:
    """A one-line live status: done / running / failed, best so far, elapsed, remaining budget."""

    def __init__(
        self, console: Any, *, trials: int | None, time_s: float | None, enabled: bool = True
    ):
        self.console = console
        self.trials = trials
        self.time_s = time_s
        self.start = time.monotonic()
        self.enabled = enabled
        self.live: Any = None
        self._last_count = 0

    def __getstate__(self) -> dict[str, Any]:
        # pickled with Tune's experiment state: the console and live display stay behind
        return {**self.__dict__, "console": None, "live": None}

    def __enter__(self) -> Progress:
        self._last_count = 0
        if self.enabled and self.console is not None and self.console.is_terminal:
            from rich.live import Live

            self.live = Live(
                self._render(0, 0, 0, None),
                console=self.console,
                refresh_per_second=2,
                transient=False,
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, store: ResultsStore, running: int) -> None:
        df = store.df
        done = int((df["status"] != "failed").sum()) if len(df) else 0
        failed = int((df["status"] == "failed").sum()) if len(df) else 0
        best = None
        metric, mode = store.objectives[0], store.modes[0]
        ok = ranked(df, metric, mode) if done else df.iloc[0:0]
        if len(ok):
            top = ok.iloc[0]
            test = top.get("test_" + metric.removeprefix("val_"))
            best = (metric, top[metric], test, top["arch_summary"])
        line = self._render(done, running, failed, best)
        if self.live is not None:
            self.live.update(line)
        elif self.enabled and self.console is not None and (done + failed) != self._last_count:
            # not a terminal (a log file, CI): one unwrapped line per finished trial
            self.console.print(line, soft_wrap=True)
        self._last_count = done + failed

    def _render(self, done: int, running: int, failed: int, best: Any) -> str:
        elapsed = time.monotonic() - self.start
        parts = [f"[bold]trials[/] done {done}  running {running}  failed {failed}"]
        if self.trials:
            parts[0] += f"  (of {self.trials})"
        if best is not None:
            metric, val, test, arch = best
            test_text = "" if test is None or test != test else f" test {test:.4g}"
            parts.append(f"best {metric} {val:.4g}{test_text} {arch}")
        parts.append(f"elapsed {_fmt(elapsed)}")
        if self.time_s:
            parts.append(f"remaining {_fmt(max(0.0, self.time_s - elapsed))}")
        return " │ ".join(parts)


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"
