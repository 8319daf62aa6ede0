"""Trial failures are recorded with their error and the search goes on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

import growsearch

pytestmark = pytest.mark.slow

SPACE = """
name: {name}
seed: 0
dataset: {{name: digits}}
seed_model: {{family: cnn, stages: [[8], [16]], kernel_size: 3}}
mutations: {{widen: {{factors: [1.5, 2.0], max_width: 64}}, deepen: {{max_layers_per_stage: 3}}}}
controller: {{name: evolution, population: 4, sample: 2}}
training: {{epochs: 2, seed_epochs: 2, batch_size: 64, optimizer: sgd, lr: 0.05, student_lr_factor: {factor},
           student_warmup_fraction: 0}}
budget: {{trials: {trials}}}
resources: {{cpus_per_trial: 1, concurrency: 2}}
"""
# No warm-up: a child's first step takes the full ``lr * factor``, so 1e40 overflows float32
# inside the optimizer at once (a warm-up would start lower and fail later, on a NaN loss).
CLI = [sys.executable, "-m", "growsearch.cli"]


def _run(
    tmp_path: Path, name: str, factor: float, trials: int, *extra: str
) -> subprocess.CompletedProcess:
    space = tmp_path / f"{name}.yaml"
    space.write_text(SPACE.format(name=name, factor=factor, trials=trials))
    return subprocess.run(
        [*CLI, "run", str(space), "--results-dir", str(tmp_path / "runs"), *extra],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("factor", "error"),
    [
        (1e36, "TrainingError: training loss is (?:nan|inf)"),  # NaN/inf loss
        (1e40, "RuntimeError: value cannot be converted"),  # an exception inside the optimizer
    ],
)
def test_failing_children_are_recorded_with_their_error_and_the_search_goes_on(
    tmp_path: Path, factor: float, error: str
) -> None:
    # the seed trains normally; every warm-started child gets a learning rate that breaks it
    done = _run(tmp_path, "diverge", factor, 4, "--retries", "0")
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "diverge"
    df = growsearch.load_results(run)
    assert len(df) == 4
    seed = df[df["parent_id"].isna()].iloc[0]
    assert seed["status"] == "completed"
    children = df[df["parent_id"].notna()]
    assert len(children) == 3 and (children["status"] == "failed").all()
    assert children["error"].str.contains(error, regex=True).all(), children["error"].tolist()
    assert children["val_acc"].isna().all()
    study = optuna.load_study(study_name="diverge", storage=f"sqlite:///{run / 'study.db'}")
    states = sorted(t.state.name for t in study.get_trials())
    assert states == ["COMPLETE", "FAIL", "FAIL", "FAIL"]
    assert done.stdout.count("failed: ") == 3  # the leaderboard shows them


def test_a_tampered_parent_checkpoint_fails_its_children(tmp_path: Path) -> None:
    done = _run(tmp_path, "tamper", 1.0, 1)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "tamper"
    weights = run / "models" / "t0000" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4] ^= 0xFF
    weights.write_bytes(bytes(data))
    # raise the budget and resume: the children of t0000 must refuse its tampered weights
    space = json.loads((run / "space.json").read_text())
    space["budget"]["trials"] = 3
    (run / "space.json").write_text(json.dumps(space))
    resumed = subprocess.run(
        [*CLI, "resume", str(run)], capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    df = growsearch.load_results(run)
    children = df[df["parent_id"] == "t0000"]
    assert len(children) == 2 and (children["status"] == "failed").all()
    assert children["error"].str.contains("CheckpointError").all()
    assert children["error"].str.contains("hash mismatch").all()
