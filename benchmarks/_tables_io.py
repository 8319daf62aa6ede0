"""Benchmark CSVs: rows appended under one header, and the command line that made them."""

from __future__ import annotations

import csv
import os
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def command_line(script: str, argv: list[str] | None) -> str:
    """How ``script`` was run, relative to the repository (``sys.argv`` unless ``argv``)."""
    args = sys.argv[1:] if argv is None else argv
    return ".venv/bin/python " + " ".join(
        shlex.quote(a) for a in [os.path.relpath(script, ROOT), *args]
    )


def append_csv(rows: list[dict[str, Any]], path: Path, fields: list[str], fmt: str = ".5g") -> None:
    """Append ``rows`` to ``path`` (its header written once; an existing file must have the
    same columns); floats written with ``fmt``."""
    exists = path.exists() and path.stat().st_size > 0
    if exists:
        with path.open(newline="") as f:
            header = next(csv.reader(f))
        if header != fields:
            raise SystemExit(f"{path}: its columns {header} differ from this script's {fields}")
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if not exists:
            w.writeheader()
        for r in rows:
            w.writerow({k: (format(v, fmt) if isinstance(v, float) else v) for k, v in r.items()})


def add_output_args(p: Any) -> None:
    """``--no-wait``, ``--run`` and ``--out``: the options every appending benchmark shares."""
    p.add_argument(
        "--no-wait", action="store_true", help="start at once (default: wait for a quiet machine)"
    )
    p.add_argument("--run", default=None, help="the run column (default: a UTC timestamp)")
    p.add_argument(
        "--out", type=Path, default=ROOT / "results", help="output folder (default results/)"
    )
