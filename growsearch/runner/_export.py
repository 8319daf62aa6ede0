"""The best model's export: ``<run>/best``, a loadable checkpoint of the best trial so far.

Refreshed at the end of every session with the leaderboard's ranking, and swapped in whole
(built beside it, then renamed), so a reader never finds a half-copied ``best/``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from growsearch.runner._results import ranked


def export_best(run_dir: str | Path, df: pd.DataFrame) -> Path | None:
    """Copy the best trial's weights and spec to ``run_dir/best`` (a loadable checkpoint), with
    its row of ``df`` as ``trial.json``; None when no trial succeeded."""
    ok = ranked(df) if not df.empty else df
    if ok.empty:
        return None
    best = ok.iloc[0]
    src = Path(run_dir) / "models" / str(best["trial_id"])
    dst = Path(run_dir) / "best"
    tmp = Path(run_dir) / ".best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    (tmp / "trial.json").write_text(json.dumps({k: _plain(v) for k, v in best.items()}, indent=2))
    old = Path(run_dir) / ".best.old"
    if dst.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)
    return dst


def _plain(v: Any) -> Any:
    """A DataFrame cell as a JSON value (numpy scalars unwrapped, NA as None)."""
    if v is None or isinstance(v, str | bool | int | float):
        return v
    try:
        return None if pd.isna(v) else v.item()
    except (AttributeError, ValueError, TypeError):
        return str(v)
