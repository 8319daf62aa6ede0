"""`make run` as a newcomer sees it, several times: what the default search delivers per run.

Each run is `make run`'s search (`search_spaces/mnist1d_cnn.yaml` as shipped, the CLI, a fresh
run folder), one after the other on a quiet machine. Arms:

- ``default``: as shipped;
- ``aging population``: the tournament draws from the aging population alone and a child is one
  random mutation (``keep_front: false``, ``fill_gaps: false``: the shipped evolution before
  run 20261208);
- ``keep front``: the Pareto front of all trials stays in the tournament's pool, children random
  (``keep_front: true``, ``fill_gaps: false``);
- ``gap fill + keep front``: that, and a child of a front member lands in the front's gap above
  it (``keep_front: true``, ``fill_gaps: true``: the shipped evolution since run 20261208);
- ``uniform start``: the spread-out start drawn uniformly (``initial_by_size: false``).

    .venv/bin/python benchmarks/default_runs.py --runs 3 --arms default --out <folder>

Appends one row per run to ``default_runs.csv``: wall-clock, trials finished, the best
validation/test accuracy, the most accurate trial's parameters, and the front's smallest model
within 0.5 points of the best validation accuracy (its parameters as a fraction of the most
accurate one's): ``met`` is item 2 of issue 36 (≤ 0.1× within 0.5 points).
"""

from __future__ import annotations

import argparse
import csv
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "mnist1d_cnn.yaml"
sys.path.insert(0, str(ROOT))

from benchmarks._machine import wait_idle  # noqa: E402

ARMS = {
    "default": {},
    "aging population": {"controller": {"keep_front": False, "fill_gaps": False}},
    "keep front": {"controller": {"keep_front": True, "fill_gaps": False}},
    "gap fill + keep front": {"controller": {"keep_front": True, "fill_gaps": True}},
    "uniform start": {"controller": {"initial_by_size": False}},
}
FIELDS = [
    "run", "arm", "index", "wall_s", "trials", "best_val", "best_test", "best_params",
    "small_arch", "small_params", "small_val", "small_test", "small_ratio", "met", "command",
]  # fmt: skip
WITHIN = 0.005  # 0.5 points of validation accuracy
RATIO = 0.1


def space_for(arm: str, folder: Path) -> Path:
    """The shipped space with the arm's settings (a copy in ``folder``)."""
    import yaml

    data = yaml.safe_load(SPACE.read_text())
    for section, values in ARMS[arm].items():
        data[section] = {**data[section], **values}
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def summarise(df: pd.DataFrame) -> dict[str, object]:
    """The run's best and the front's smallest model within 0.5 points of the best."""
    ok = df[df["status"] != "failed"].copy()
    best = ok.sort_values(["val_acc", "params"], ascending=[False, True]).iloc[0]
    near = ok[ok["val_acc"] >= best["val_acc"] - WITHIN].sort_values("params").iloc[0]
    ratio = float(near["params"]) / float(best["params"])
    return {
        "trials": len(df), "best_val": best["val_acc"], "best_test": best["test_acc"],
        "best_params": int(best["params"]), "small_arch": near["arch_summary"],
        "small_params": int(near["params"]), "small_val": near["val_acc"],
        "small_test": near["test_acc"], "small_ratio": round(ratio, 4), "met": ratio <= RATIO,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--arms", nargs="+", default=["default"], choices=list(ARMS))
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    ap.add_argument("--run", default=time.strftime("%Y%m%d-%H%M"), help="label of this invocation")
    ap.add_argument("--keep", type=Path, help="copy each run's trials table into this folder")
    args = ap.parse_args()
    out = args.out / "default_runs.csv"
    argv = [shlex.quote(a) for a in sys.argv[1:]]
    for i, a in enumerate(argv[:-1]):  # machine paths stay out of the committed CSV
        if a in ("--out", "--keep"):
            argv[i + 1] = "<folder>" if a == "--out" else "<folder>/tables"
    command = "python benchmarks/default_runs.py " + " ".join(argv)
    new = not out.exists()
    for index in range(args.runs):
        for arm in args.arms:
            wait_idle(f"{arm} {index}", max_wait_s=1800)
            with tempfile.TemporaryDirectory(prefix="growsearch-default-") as tmp:
                space = space_for(arm, Path(tmp))
                start = time.monotonic()
                done = subprocess.run(
                    [sys.executable, "-m", "growsearch.cli", "run", str(space),
                     "--results-dir", str(Path(tmp) / "runs"), "--name", "run"],
                    capture_output=True, text=True, cwd=ROOT,
                )  # fmt: skip
                wall = time.monotonic() - start
                if done.returncode != 0:
                    raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
                table = Path(tmp) / "runs" / "run" / "trials.parquet"
                df = pd.read_parquet(table)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    slug = arm.replace(" ", "_")
                    shutil.copy(table, args.keep / f"{args.run}-{slug}-{index}.parquet")
            row = {"run": args.run, "arm": arm, "index": index, "wall_s": round(wall, 1),
                   **summarise(df), "command": command}  # fmt: skip
            print({k: row[k] for k in FIELDS[:-1]}, flush=True)
            with out.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=FIELDS)
                if new:
                    writer.writeheader()
                    new = False
                writer.writerow(row)


if __name__ == "__main__":
    main()
