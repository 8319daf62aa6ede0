"""Searching users' own tasks end to end, on real Ray and real training: the worked examples
under search_spaces/ (a regression table, a segmentation task and model of the user's, a
plain-PyTorch loop, a Lightning module), through the CLI and the Python API, every controller,
ASHA, kill -9 and resume of a user's loop, and a loop that breaks its reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

import growsearch
from growsearch.controllers import make_controller
from growsearch.data import load_dataset

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SPACES = ROOT / "search_spaces"
FIT = ROOT / "tests" / "fixtures" / "user_loops.py"
CLI = [sys.executable, "-m", "growsearch.cli"]


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def _warm(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["parent_id"].notna() & (df["status"] != "failed")]


def test_regression_table_through_the_cli(tmp_path: Path) -> None:
    """diabetes: lowest val_mse wins everywhere; the metrics are in the target's units; every
    warm child starts at its parent's val_mse (the recipe keeps output values for regression)."""
    done = _cli("run", str(SPACES / "diabetes" / "space.yaml"), "--trials", "5",
                "--results-dir", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    console = done.stdout + done.stderr  # growsearch's own lines only: Ray's go to a log file
    assert "Token authentication" not in console and "ray" not in console.lower().replace(
        "/ray", ""
    ), console[:2000]
    assert f"report: growsearch report {tmp_path / 'diabetes'}" in console
    run = tmp_path / "diabetes"
    assert "Token authentication" in (run / "ray_driver.log").read_text()
    df = pd.read_parquet(run / "trials.parquet")
    assert len(df) == 5 and (df["status"] == "completed").all(), df[["trial_id", "error"]]
    for col in ("val_mse", "val_mae", "val_r2", "val_loss", "test_mse", "test_mae", "test_r2"):
        assert df[col].notna().all(), col
    assert df["val_acc"].isna().all()
    best = json.loads((run / "best" / "trial.json").read_text())
    assert best["trial_id"] == df.loc[df["val_mse"].idxmin(), "trial_id"]
    study = optuna.load_study(study_name="diabetes", storage=f"sqlite:///{run / 'study.db'}")
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE]
    values = {t.user_attrs["trial_id"]: t.values[0] for t in study.get_trials()}
    assert values == pytest.approx(dict(zip(df["trial_id"], df["val_mse"])))
    warm = _warm(df)
    assert len(warm) >= 2 and warm["warm_start"].all()
    assert warm["acc_start"].to_numpy() == pytest.approx(warm["parent_acc"].to_numpy(), rel=1e-4)

    # test_mse is the best model's mean squared error in the score's own units
    data = load_dataset("table", path=str(SPACES / "diabetes" / "diabetes.csv"),
                        target="progression", regression=True)  # fmt: skip
    mean, std = (v[0] for v in data.target_stats)
    model = growsearch.load_model(run / "best")
    with torch.no_grad():
        pred = model(data.test.x).squeeze(1) * std + mean
    raw = data.test.y * std + mean
    assert ((pred - raw) ** 2).mean().item() == pytest.approx(best["test_mse"], rel=1e-4)
    assert 1000 < best["test_mse"] < 10_000  # a progression score's squared units, not z-scores

    shown = _cli("show", str(run))
    assert shown.returncode == 0 and "val_mse" in shown.stdout, shown.stdout + shown.stderr


def test_regression_with_the_optuna_controller_minimises(tmp_path: Path) -> None:
    space = growsearch.load_space(SPACES / "diabetes" / "space.yaml", {"training.epochs": 4})
    controller = make_controller("optuna", space, seed=0)
    run = growsearch.run(space, controller=controller, trials=5, results_dir=tmp_path,
                         name="diabetes-optuna", progress=False)  # fmt: skip
    df = run.trials
    assert (df["status"] == "completed").all(), df[["trial_id", "error"]]
    assert controller._study.directions == [optuna.study.StudyDirection.MINIMIZE]
    assert controller.best().trial_id == df.loc[df["val_mse"].idxmin(), "trial_id"]
    assert run.best["trial_id"] == df.loc[df["val_mse"].idxmin(), "trial_id"]
    assert run.objective == ("val_mse", "min")


def test_segmentation_with_a_user_task_and_model(tmp_path: Path) -> None:
    """shapes: the user's task (per-pixel loss, IoU over each split) and U-Net, evolution with
    ASHA from the Python API; the highest val_iou wins; test_iou is the IoU of the whole split."""
    run = growsearch.run(SPACES / "shapes_segmentation" / "space.yaml", trials=6,
                         results_dir=tmp_path, progress=False)  # fmt: skip
    df = run.trials
    assert (df["status"] != "failed").all(), df[["trial_id", "error"]]
    assert df["val_iou"].notna().all() and df["test_iou"].notna().all()
    assert run.best["trial_id"] == df.loc[df["val_iou"].idxmax(), "trial_id"]
    warm = _warm(df)
    assert len(warm) >= 2
    assert warm["acc_start"].to_numpy() == pytest.approx(warm["parent_acc"].to_numpy(), abs=2e-3)

    sys.path.insert(0, str(SPACES / "shapes_segmentation"))
    try:
        from data import load  # the example's own data
    finally:
        sys.path.remove(str(SPACES / "shapes_segmentation"))
    x, masks = load()["test"]
    model = run.best_model()
    with torch.no_grad():
        iou = MulticlassJaccardIndex(3)(model(x).argmax(1), masks).item()
    assert iou == pytest.approx(run.best["test_iou"], abs=1e-5)
    assert iou > 0.6


def test_a_plain_pytorch_loop_through_the_cli(tmp_path: Path) -> None:
    """own_loop: the user's fit (SGD, a cosine schedule, the recipe's warm-up in its state)
    trains every trial, hillclimb picks the parents; the scheduler's state is checkpointed."""
    done = _cli("run", str(SPACES / "own_loop" / "space.yaml"), "--trials", "3",
                "--results-dir", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    df = pd.read_parquet(tmp_path / "own_loop" / "trials.parquet")
    assert len(df) == 3 and (df["status"] == "completed").all(), df[["trial_id", "error"]]
    assert (df["val_acc"] > 0.9).all() and df["test_acc"].notna().all()
    for t, epochs in zip(df["trial_id"], df["epochs"], strict=True):
        meta = json.loads((tmp_path / "own_loop" / "models" / t / "meta.json").read_text())
        assert meta["scheduler"]["last_epoch"] == epochs  # the cosine stepped once per epoch
        assert "warmup" in meta["user_state"]
    warm = _warm(df)
    assert warm["acc_start"].to_numpy() == pytest.approx(warm["parent_acc"].to_numpy(), abs=0.01)


def test_lightning_module_from_the_python_api(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # Lightning must write nothing where the user stands
    run = growsearch.run(SPACES / "lightning" / "space.yaml", trials=4, results_dir="runs",
                         progress=False)  # fmt: skip
    df = run.trials
    assert len(df) == 4 and (df["status"] == "completed").all(), df[["trial_id", "error"]]
    assert (df["val_acc"] > 0.8).all() and df["test_acc"].notna().all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    seed = df.set_index("trial_id").loc["t0000"]
    assert seed["epochs"] == 6 and json.loads(seed["curve"])[-1] == pytest.approx(seed["val_acc"])
    warm = _warm(df)
    assert len(warm) >= 1
    assert warm["acc_start"].to_numpy() == pytest.approx(warm["parent_acc"].to_numpy(), abs=0.01)


def _loop_space(tmp_path: Path, function: str, *, pause: float = 0.0, trials: int = 4) -> Path:
    space = tmp_path / "loop.yaml"
    space.write_text(f"""
name: loop
dataset: {{name: digits}}
seed_model: {{family: cnn, stages: [[8], [16]], kernel_size: 3}}
mutations: {{widen: {{factors: [1.5, 2.0], max_width: 64}}, deepen: {{max_layers_per_stage: 3}}}}
controller: {{name: hillclimb, neighbours: 2, initial: 0}}
training:
  function: '{FIT}:{function}'
  options: {{pause: {pause}}}
  epochs: 3
  seed_epochs: 6
  batch_size: 64
  lr: 0.003
budget: {{trials: {trials}}}
resources: {{cpus_per_trial: 1, concurrency: 2}}
""")
    return space


def test_kill_9_of_a_user_loop_search_then_resume(tmp_path: Path) -> None:
    """The driver dies mid-way through the seed's user loop; the resume continues that trial
    from its last report (each epoch trained once), runs the rest, loses and repeats nothing."""
    space = _loop_space(tmp_path, "fit", pause=0.6)
    run = tmp_path / "runs" / "loop"
    log = tmp_path / "run.log"
    proc = subprocess.Popen([*CLI, "run", str(space), "--results-dir", str(tmp_path / "runs")],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    meta = run / "models" / "t0000" / "meta.json"
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the seed never reported two epochs"
        try:
            if json.loads(meta.read_text())["epoch"] >= 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    at_kill = json.loads(meta.read_text())["epoch"]
    assert 2 <= at_kill < 6

    done = _cli("resume", str(run))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    df = pd.read_parquet(run / "trials.parquet")
    assert sorted(df["trial_id"]) == [f"t{i:04d}" for i in range(4)]
    assert (df["status"] == "completed").all(), df[["trial_id", "error"]]
    seed = json.loads(meta.read_text())
    assert seed["epoch"] == 6 and seed["user_state"]["trained"] == list(range(6))
    row = df.set_index("trial_id").loc["t0000"]
    assert row["restarts"] >= 1 and len(json.loads(row["curve"])) == 6
    for t in df["trial_id"]:  # every trial trained each of its epochs exactly once
        m = json.loads((run / "models" / t / "meta.json").read_text())
        assert m["user_state"]["trained"] == list(range(m["epoch"])), t


def test_a_loop_that_breaks_its_reports_stops_the_search(tmp_path: Path) -> None:
    """The first trial never reports the objective: the search stops with that line (a NaN
    or a non-number fails the same way: tests/runner/test_context.py)."""
    needle = "reported ['val_loss'] but not the objective's metric 'val_acc'"
    space = _loop_space(tmp_path, "fit_without_objective", trials=6)
    done = _cli("run", str(space), "--results-dir", str(tmp_path / "runs"))
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"growsearch: error: {space}: training: the first trial failed")
    assert needle in lines[-1], lines[-1]
    df = pd.read_parquet(tmp_path / "runs" / "loop" / "trials.parquet")
    assert len(df) == 1 and df["status"].tolist() == ["failed"]  # not the whole budget
