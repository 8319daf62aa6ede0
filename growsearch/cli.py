"""The ``growsearch`` command line: run, show.

Errors caused by user input (any GrowsearchError) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from growsearch.exceptions import GrowsearchError

EXIT_USER_ERROR = 2


def _id(v: Any) -> str:
    """A trial id for display ("-" for none)."""
    return v if isinstance(v, str) and v else "-"


def _leaderboard(
    df: Any, n: int = 10, title: str = "leaderboard", metric: str = "val_acc", mode: str = "max"
) -> Any:
    """The trials as a table: the ``n`` best by the objective's ``metric`` and ``mode`` (columns
    named after the metric and its test split), then every failed one with its error."""
    from rich.table import Table

    from growsearch.results import ranked
    from growsearch.viz import format_value, metric_label, metric_test_column

    test = metric_test_column(metric)
    val_col, test_col = metric_label(metric), metric_label(test)
    table = Table(title=title)
    for col in ("rank", "trial", "parent", "arch", "params", val_col, test_col, "epochs", "status"):
        numeric = col in ("rank", "params", val_col, test_col, "epochs")
        table.add_column(col, justify="right" if numeric else "left", no_wrap=col != "status")
    ok = ranked(df, metric, mode).head(n)
    for rank, (_, r) in enumerate(ok.iterrows(), 1):
        table.add_row(
            str(rank), str(r["trial_id"]), _id(r["parent_id"]), str(r["arch_summary"]),
            f"{int(r['params']):,}", format_value(r[metric], metric),
            format_value(r.get(test), test) or "-", str(r["epochs"]), str(r["status"]),
        )  # fmt: skip
    failed = df[df["status"] == "failed"]
    for _, r in failed.iterrows():
        table.add_row(
            "-",
            str(r["trial_id"]),
            _id(r["parent_id"]),
            str(r["arch_summary"]),
            "",
            "",
            "",
            "",
            f"failed: {r['error']}",
        )
    return table


def _objective(run_dir: Any) -> tuple[str, str]:
    """The run's ``(metric, mode)`` (``("val_acc", "max")`` if its ``space.json`` cannot be
    read: the leaderboard of an interrupted search is still printed)."""
    from growsearch.api import Run

    try:
        return Run(run_dir).objective
    except GrowsearchError:
        return "val_acc", "max"


def _cmd_run(args: argparse.Namespace) -> int:
    from growsearch.api import run

    console = _console()
    return _finish(console, lambda: run(
        args.space, name=args.name, results_dir=args.results_dir, trials=args.trials,
        time_budget=args.time_budget, concurrency=args.concurrency, address=args.address,
        storage=args.storage, seed=args.seed, warm_start=False if args.no_warm_start else None,
        retries=args.retries, console=console,
    ))  # fmt: skip


def _cmd_resume(args: argparse.Namespace) -> int:
    from growsearch.api import resume

    console = _console()
    return _finish(console, lambda: resume(args.run_dir, address=args.address, console=console))


def _console() -> Any:
    from rich.console import Console

    return Console(width=max(120, Console().width))


def _finish(console: Any, search: Any) -> int:
    """Run ``search`` (returning a Run) and print its leaderboard; 130 if it was interrupted."""
    from growsearch.runner import SearchInterrupted

    try:
        run = search()
    except SearchInterrupted as e:
        if not e.df.empty:
            metric, mode = _objective(e.run_dir)
            title = f"{e.run_dir.name}: leaderboard so far"
            console.print(_leaderboard(e.df, title=title, metric=metric, mode=mode))
        print(f"growsearch: {e}", file=sys.stderr)
        return 130
    df = run.trials
    if df.empty:
        console.print("no trial finished")
        return 1
    metric, mode = run.objective
    console.print(_leaderboard(df, title=f"{run.dir.name}: leaderboard", metric=metric, mode=mode))
    _print_front(console, run)
    console.print(f"best model: {run.dir / 'best'}  (growsearch.load_model)", soft_wrap=True)
    console.print(
        f"report: growsearch report {run.dir}   dashboard: growsearch dashboard {run.dir}",
        soft_wrap=True,
    )
    return 0


def _print_front(console: Any, run: Any) -> None:
    """The run's Pareto front (its objective's metric against its first size objective),
    smallest first; nothing for a search without a size objective."""
    from rich.table import Table

    from growsearch.api import SIZE_COSTS
    from growsearch.viz import format_value, metric_label, metric_test_column

    cost = next((o for o in run.objectives if o in SIZE_COSTS), None)
    if cost is None:
        return
    metric, _ = run.objective
    test = metric_test_column(metric)
    val_col, test_col = metric_label(metric), metric_label(test)
    front = run.front(cost)
    table = Table(title=f"{run.dir.name}: Pareto front ({val_col} against {cost})")
    for col in ("trial", "arch", cost, val_col, test_col):
        numeric = col in (cost, val_col, test_col)
        table.add_column(col, justify="right" if numeric else "left")
    for _, r in front.iterrows():
        table.add_row(
            str(r["trial_id"]), str(r["arch_summary"]), f"{int(r[cost]):,}",
            format_value(r[metric], metric), format_value(r.get(test), test) or "-",
        )  # fmt: skip
    console.print(table)


def _cmd_show(args: argparse.Namespace) -> int:
    from growsearch.api import Run
    from growsearch.results import check_run_dir
    from growsearch.runner import load_results

    run_dir = check_run_dir(args.run_dir)
    df = load_results(run_dir)
    run = Run(run_dir)
    metric, mode = run.objective
    console = _console()
    title = f"{run_dir.name}: leaderboard"
    console.print(_leaderboard(df, n=args.top, title=title, metric=metric, mode=mode))
    _print_front(console, run)
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from growsearch.dashboard import serve_dashboard

    serve_dashboard(args.run_dir, host=args.host, port=args.port)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from growsearch.report import write_report

    path = write_report(args.run_dir)
    print(f"growsearch: wrote {path} (figures as PNG in {path.parent / 'figures'})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="growsearch",
        description="Grow neural networks by Net2Net morphs, searched on Ray Tune.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a search")
    r.add_argument("space", help="search space YAML (see search_spaces/)")
    r.add_argument("--name", help="run name (default: the space's name)")
    r.add_argument("--results-dir", default="results/runs", help="parent folder of run folders")
    r.add_argument("--trials", type=int, help="budget: number of trials")
    r.add_argument("--time-budget", type=float, help="budget: wall-clock minutes")
    r.add_argument("--concurrency", type=int, help="trials running at once")
    r.add_argument("--address", help="an existing Ray cluster (default: a local Ray on 127.0.0.1)")
    r.add_argument("--storage", help="Optuna storage URL (default: sqlite in the run folder)")
    r.add_argument("--seed", type=int)
    r.add_argument("--no-warm-start", action="store_true", help="train every child from scratch")
    r.add_argument("--retries", type=int, default=1, help="retries of a failed trial (default 1)")
    r.set_defaults(fn=_cmd_run)
    re_ = sub.add_parser("resume", help="continue a stopped or crashed search")
    re_.add_argument("run_dir")
    re_.add_argument(
        "--address", help="an existing Ray cluster (default: a local Ray on 127.0.0.1)"
    )
    re_.set_defaults(fn=_cmd_resume)
    s = sub.add_parser("show", help="print a run's leaderboard")
    s.add_argument("run_dir")
    s.add_argument("--top", type=int, default=20)
    s.set_defaults(fn=_cmd_show)
    d = sub.add_parser("dashboard", help="serve a live dashboard of a run (optuna-dashboard)")
    d.add_argument("run_dir")
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    d.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free one)")
    d.set_defaults(fn=_cmd_dashboard)
    rp = sub.add_parser("report", help="write RUN_DIR/report.html and RUN_DIR/figures/*.png")
    rp.add_argument("run_dir")
    rp.set_defaults(fn=_cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except GrowsearchError as e:
        print(f"growsearch: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("growsearch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
