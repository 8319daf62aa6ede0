"""Trials tables for the viz tests: hand-made (fast) and one real small search (slow, cached)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from growsearch.runner import COLUMNS
from tests.fixtures.spaces import tiny_space

SPACE = tiny_space(trials=6)

_RUNS: dict[Path, Path] = {}


def small_run(base: Path) -> Path:
    """A real 6-trial search on digits under ``base`` (~30 s), made once per test session."""
    if base not in _RUNS:
        from growsearch.runner import run_search
        from growsearch.space import load_space

        space = base / "tiny.yaml"
        base.mkdir(parents=True, exist_ok=True)
        space.write_text(SPACE)
        run_dir = base / "tiny"
        run_search(load_space(space), run_dir, progress=False)
        _RUNS[base] = run_dir
    return _RUNS[base]


def _arch(widths: list[list[int]]) -> str:
    stages = [
        {"layers": [[f"s{i}l{j}", w] for j, w in enumerate(ws)], "width": None}
        for i, ws in enumerate(widths)
    ]
    return json.dumps({"family": "cnn", "stages": stages, "kernel_size": 3})


def row(trial_id: str, parent_id: str | None, ops: list[dict[str, Any]], widths: list[list[int]],
        params: int, val_acc: float | None, *, curve: list[float] | None = None,
        seconds: float = 1.0, status: str = "completed", acc_before: float | None = None,
        ) -> dict[str, Any]:  # fmt: skip
    """One trials.parquet row."""
    curve = curve if curve is not None else ([] if val_acc is None else [val_acc])
    return {
        "trial_id": trial_id, "parent_id": parent_id, "ops": json.dumps(ops),
        "arch": _arch(widths), "arch_summary": "cnn[" + "|".join(",".join(map(str, w)) for w in widths) + "]",
        "params": params, "flops": params * 20, "val_acc": val_acc,
        "test_acc": None if val_acc is None else val_acc - 0.01, "epochs": len(curve),
        "train_seconds": seconds, "status": status,
        "error": "TrainingError: loss is nan" if status == "failed" else None,
        "warm_start": parent_id is not None, "parent_acc": None, "acc_before": acc_before,
        "preserve_err": None, "curve": json.dumps(curve),
    }  # fmt: skip


def hand_made() -> pd.DataFrame:
    """Seven trials in finish order: a seed, two generations of children, one failure."""
    w = {"op": "widen", "target": "s0l0", "width": 48}
    d = {"op": "deepen", "after": "s1l0", "name": "s1l1"}
    rows = [
        row("t0000", None, [], [[8], [16]], 1000, 0.80, curve=[0.5, 0.7, 0.80], seconds=3.0),
        row("t0001", "t0000", [w], [[48], [16]], 4000, 0.90, curve=[0.85, 0.90],
            acc_before=0.80),
        row("t0002", "t0000", [d], [[8], [16, 16]], 1500, 0.85, curve=[0.82, 0.85]),
        row("t0004", "t0001", [w, d], [[48], [16, 16]], 5000, 0.88, curve=[0.87, 0.88]),
        row("t0003", "t0001", [d], [[48], [16, 16]], 4500, None, status="failed", seconds=0.5),
        row("t0005", "t0002", [w], [[48], [16, 16]], 6000, 0.95, curve=[0.9, 0.95]),
        row("t0006", "t0002", [w], [[48], [16, 16]], 6000, 0.83, curve=[0.8, 0.83]),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)
