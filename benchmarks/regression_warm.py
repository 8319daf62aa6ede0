"""Regression search, warm start vs from scratch: does growing children from trained parents help
on a table (scikit-learn's diabetes data, ``search_spaces/diabetes/space.yaml``)?

For every seed, two real searches with the same trials budget: ``warm`` (the space as it is:
children grown from their parents by the default warm-start recipe) and ``scratch``
(``growsearch.run(..., warm_start=False)``: the controller's same kind of proposals trained from
fresh weights). Both run on one local Ray started once (2 CPUs), each in a temporary results
folder that is removed at the end (``--keep`` keeps them).

Per search (trials in ``trials.parquet`` order, i.e. completion order; ``epochs`` summed into
cumulative epochs): the best ``val_mse``, the ``test_mse`` of the best trial by validation
(``Run.best``), the trials' summed ``train_seconds`` and ``epochs``, and the best-so-far
``val_mse`` after the trials that end within 1/4, 1/2 and all of the planned budget of
cumulative epochs (``seed_epochs + (trials - 1) * epochs`` of the space; NaN before the first
trial ends).

    .venv/bin/python benchmarks/regression_warm.py                        # 3 seeds x 2 arms, 10 trials
    .venv/bin/python benchmarks/regression_warm.py --quick --out /tmp/rw  # a smoke run

Appends one row per seed × arm to ``<out>/regression_warm.csv`` (``run``: the invocation's name,
``--run``; ``command``: its command line) and prints a table of medians over seeds.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import ForeignCPU, wait_idle  # noqa: E402 (benchmarks/_machine.py)
from _tables_io import add_output_args, append_csv, command_line  # noqa: E402 (benchmarks/_tables_io.py)

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "diabetes" / "space.yaml"
ARMS = {"warm": True, "scratch": False}  # name: warm_start
FRACTIONS = {"quarter": 0.25, "half": 0.5, "full": 1.0}
FIELDS = [
    "run", "dataset", "arm", "seed", "trials", "failed", "warm_trials", "budget_epochs",
    "epochs", "train_seconds", "best_val_mse", "test_mse_of_best_val", "best_arch",
    "best_val_mse_at_quarter", "best_val_mse_at_half", "best_val_mse_at_full", "search_wall_s",
    "foreign_cores", "command",
]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke mode: 1 seed, 4 trials")
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    p.add_argument("--trials", type=int, default=10, help="trials per search (default 10)")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--space", type=Path, default=SPACE, help="the search space (default diabetes)")
    p.add_argument("--keep", action="store_true", help="keep the run folders (default: removed)")
    add_output_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.trials = 1, min(args.trials, 4)
    if args.run is None:
        args.run = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ("-quick" if args.quick else "")
    return args


def planned_epochs(space: Path, trials: int) -> int:
    """The cumulative epochs a search of ``trials`` trials plans: the seed's, then a child's each."""
    import growsearch

    training = growsearch.load_space(space).training
    return int(training.seed_epochs) + (trials - 1) * int(training.epochs)


def run_one(args: argparse.Namespace, arm: str, seed: int, work: Path, budget: int) -> dict:
    """One search; returns its CSV row."""
    import growsearch

    monitor = ForeignCPU()
    t0 = time.perf_counter()
    run = growsearch.run(
        args.space, trials=args.trials, warm_start=ARMS[arm], seed=seed, results_dir=work,
        name=f"{arm}-s{seed}", progress=False,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    foreign = monitor.stop()["foreign_cores"]
    metric, mode = run.objective
    df = run.trials.reset_index(drop=True)
    ok = df["status"] != "failed"
    val = df[metric].astype(float).where(ok)
    cum = df["epochs"].fillna(0).astype(int).cumsum()
    best_so_far = val.cummin() if mode == "min" else val.cummax()
    at = {}
    for key, f in FRACTIONS.items():
        done = best_so_far[cum <= f * budget + 1e-9].dropna()
        at[key] = float(done.iloc[-1]) if len(done) else math.nan
    best = run.best
    return {
        "run": args.run,
        "dataset": args.space.parent.name if args.space.name == "space.yaml" else args.space.stem,
        "arm": arm,
        "seed": seed,
        "trials": len(df),
        "failed": int((~ok).sum()),
        "warm_trials": int(df["warm_start"].fillna(False).astype(bool).sum()),
        "budget_epochs": budget,
        "epochs": int(df["epochs"].fillna(0).sum()),
        "train_seconds": float(df["train_seconds"].fillna(0).sum()),
        "best_val_mse": math.nan if best is None else float(best[metric]),
        "test_mse_of_best_val": math.nan if best is None else float(best["test_mse"]),
        "best_arch": "" if best is None else str(best["arch_summary"]),
        "best_val_mse_at_quarter": at["quarter"],
        "best_val_mse_at_half": at["half"],
        "best_val_mse_at_full": at["full"],
        "search_wall_s": wall,
        "foreign_cores": foreign,
    }


def table(rows: list[dict[str, Any]], arms: list[str]) -> str:
    """Medians over seeds per arm (NaN-free seeds only for a column that has NaNs)."""
    cols = [
        ("best_val_mse", "best val_mse", ".1f"),
        ("test_mse_of_best_val", "test_mse of best-val", ".1f"),
        ("best_val_mse_at_quarter", "best val_mse at 1/4", ".1f"),
        ("best_val_mse_at_half", "best val_mse at 1/2", ".1f"),
        ("best_val_mse_at_full", "best val_mse at full", ".1f"),
        ("epochs", "epochs", ".0f"),
        ("train_seconds", "train s", ".1f"),
        ("search_wall_s", "wall s", ".0f"),
    ]
    lines = [
        "| arm | seeds | " + " | ".join(c[1] for c in cols) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in cols) + " |",
    ]
    for a in arms:
        g = [r for r in rows if r["arm"] == a]
        if not g:
            continue
        cells = []
        for key, _, fmt in cols:
            vals = [float(r[key]) for r in g if not math.isnan(float(r[key]))]
            cells.append(format(statistics.median(vals), fmt) if vals else "nan")
        lines.append(f"| {a} | {len(g)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.space = args.space.resolve()
    command = command_line(__file__, argv)
    budget = planned_epochs(args.space, args.trials)
    if not (args.quick or args.no_wait):
        wait_idle("regression_warm")

    import growsearch  # noqa: F401, I001 (its loopback-only Ray default, before ray)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    work = Path(tempfile.mkdtemp(prefix="gs-regression-warm-"))
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    try:
        for seed in range(args.seeds):
            # alternate the order of the arms, so a drift of the machine's load hits both
            order = args.arms if seed % 2 == 0 else args.arms[::-1]
            for arm in order:
                row = run_one(args, arm, seed, work, budget)
                rows.append({**row, "command": command})
                print(f"[regression_warm] seed {seed} {arm:7s}: best val_mse "
                      f"{row['best_val_mse']:.1f} (test {row['test_mse_of_best_val']:.1f}), "
                      f"{row['epochs']} epochs, {row['train_seconds']:.1f} train s, "
                      f"{row['search_wall_s']:.0f} s wall", flush=True)  # fmt: skip
    finally:
        ray.shutdown()
        if args.keep:
            print(f"[regression_warm] run folders kept under {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    path = args.out / "regression_warm.csv"
    append_csv(rows, path, FIELDS, ".5g")
    print(table(rows, args.arms))
    print(f"appended {len(rows)} rows (run {args.run!r}) to {path} in "
          f"{time.perf_counter() - start:.0f}s; planned budget {budget} epochs")  # fmt: skip
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
