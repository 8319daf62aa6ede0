"""The best model's export: ``<run>/best``, a loadable checkpoint of the best trial so far.

Refreshed at the end of every session with the leaderboard's ranking. On a local disk it is
swapped in whole (built beside it, then renamed), so a reader never finds a half-copied
``best/``; on an object store its files are uploaded with ``meta.json`` (the hashes of the
others) last, so a reader that checks them (``load_checkpoint``) never loads a torn one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from growsearch.results import ranked
from growsearch.storage import Location, location


def export_best(
    run_dir: str | Path | Location, df: pd.DataFrame, metric: str = "val_acc", mode: str = "max"
) -> Location | None:
    """Copy the best trial's weights and spec to ``run_dir/best`` (a loadable checkpoint), with
    its row of ``df`` as ``trial.json``; None when no trial succeeded. Best: by the objective's
    ``metric`` and ``mode``."""
    ok = ranked(df, metric, mode) if not df.empty else df
    if ok.empty:
        return None
    best = ok.iloc[0]
    run = location(run_dir)
    src = run / "models" / str(best["trial_id"])
    trial = json.dumps({k: _plain(v) for k, v in best.items()}, indent=2)
    if run.local is None:
        with tempfile.TemporaryDirectory(prefix="growsearch-best-") as tmp:
            src.download_dir(tmp, first=("meta.json",))
            (Path(tmp) / "trial.json").write_text(trial)
            (run / "best").upload_dir(tmp, last=("meta.json", "trial.json"))
        return run / "best"
    local = run.local
    dst, tmp_dir, old = local / "best", local / ".best.tmp", local / ".best.old"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    shutil.copytree(src.local or "", tmp_dir)
    (tmp_dir / "trial.json").write_text(trial)
    if dst.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
    os.replace(tmp_dir, dst)
    shutil.rmtree(old, ignore_errors=True)
    return run / "best"


def _plain(v: Any) -> Any:
    """A DataFrame cell as a JSON value (numpy scalars unwrapped, NA as None)."""
    if v is None or isinstance(v, str | bool | int | float):
        return v
    try:
        return None if pd.isna(v) else v.item()
    except (AttributeError, ValueError, TypeError):
        return str(v)
