"""Bad data through the CLI: one line naming the problem, exit status 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from growsearch.cli import main
from tests.data.test_table import cancer_table

ROOT = Path(__file__).resolve().parents[2]
FACTORIES = """
import torch
from sklearn.datasets import load_digits

def _digits():
    b = load_digits()
    return torch.tensor(b.images / 16.0, dtype=torch.float32)[:, None], torch.tensor(b.target)

def wrong_dtype():
    x, y = _digits()
    return {"train": ((x * 16).to(torch.uint8), y), "test": (x, y)}

def mismatched_lengths():
    x, y = _digits()
    return {"train": (x[:1000], y[:999]), "test": (x, y)}

def labels_out_of_range():
    x, y = _digits()
    return {"train": (x, y), "test": (x, y), "num_classes": 9}

def empty_split():
    x, y = _digits()
    return {"train": (x, y), "val": (x[:0], y[:0]), "test": (x, y)}
"""
REST = (
    "seed_model: {family: cnn, stages: [[8]]}\n"
    "training: {epochs: 1, seed_epochs: 1}\nbudget: {trials: 2}\n"
)
CASES = [
    ("wrong dtype", "factory: 'data.py:wrong_dtype'", "dataset.factory", "train: x: expected floating-point inputs, got torch.uint8"),
    ("mismatched lengths", "factory: 'data.py:mismatched_lengths'", "dataset.factory", "train: x has 1000 samples but y has 999"),
    ("labels out of range", "factory: 'data.py:labels_out_of_range'", "dataset.factory", "train: labels must be in 0..8"),
    ("empty split", "factory: 'data.py:empty_split'", "dataset.factory", "val: the split is empty"),
    ("missing target column", "name: table, path: cancer.csv, target: label", "dataset.path", "no target column 'label'"),
    ("table without target", "name: table, path: cancer.csv", "dataset.target", "expected the table's label column"),
    ("missing table", "name: table, path: nope.csv, target: diagnosis", "dataset.path", "expected an existing file"),
    ("missing factory file", "factory: 'nope.py:load'", "dataset.factory", "expected an existing Python file"),
    ("name and factory", "name: digits, factory: 'data.py:empty_split'", "dataset.name", "no name alongside a factory"),
    ("augment of flat data", "name: table, path: cancer.csv, target: diagnosis", "training.augment", "crop or flip"),
]  # fmt: skip


def _folder(tmp_path: Path, dataset: str, case: str) -> tuple[Path, Path]:
    (tmp_path / "data.py").write_text(FACTORIES)
    cancer_table().to_csv(tmp_path / "cancer.csv", index=False)
    rest = REST
    if case == "augment of flat data":
        rest = rest.replace("cnn", "mlp").replace(
            "seed_epochs: 1}", "seed_epochs: 1, augment: {flip: true}}"
        )
    space = tmp_path / "space.yaml"
    space.write_text(f"dataset: {{{dataset}}}\n{rest}")
    results = tmp_path / "results"
    results.mkdir()
    return space, results


@pytest.mark.parametrize(
    ("dataset", "key", "needle"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_bad_data_is_one_line_exit_2_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dataset: str, key: str, needle: str
) -> None:
    case = next(c[0] for c in CASES if c[1:] == (dataset, key, needle))
    space, results = _folder(tmp_path, dataset, case)
    assert main(["run", str(space), "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"growsearch: error: {space}: {key}: "), err
    assert needle in err[0] and "Traceback" not in err[0], err[0]
    assert not any(results.iterdir())  # nothing written


def test_the_cli_process_exits_2(tmp_path: Path) -> None:
    space, results = _folder(tmp_path, "factory: 'data.py:labels_out_of_range'", "")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "growsearch.cli", "run", str(space), "--results-dir", str(results)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "labels must be in 0..8" in lines[0], proc.stderr
    assert not any(results.iterdir())
