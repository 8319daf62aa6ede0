"""The results store: idempotent records, and the study catching up with the parquet after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd

from growsearch.runner import COLUMNS, ResultsStore, load_results

ARCH = {
    "family": "cnn",
    "input_shape": [1, 8, 8],
    "num_classes": 10,
    "stages": [{"width": None, "layers": [["s0l0", 8]]}],
}


def _row(tid: str, acc: float, status: str = "completed") -> dict:
    return {
        "trial_id": tid, "parent_id": None, "ops": "[]", "arch": json.dumps(ARCH), "arch_summary": "cnn[8]",
        "params": 10, "flops": 20, "val_acc": acc if status != "failed" else None, "test_acc": acc,
        "epochs": 2, "train_seconds": 1.0, "status": status, "error": "boom" if status == "failed" else None,
        "warm_start": False, "parent_acc": None, "acc_before": None, "preserve_err": None, "curve": json.dumps([acc / 2, acc]),
    }  # fmt: skip


def test_record_is_idempotent_and_mirrored(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, None, "s", ["val_acc", "params"])
    store.record(_row("t0000", 0.5))
    store.record(_row("t0000", 0.5))
    store.record(_row("t0001", 0.0, "failed"))
    df = load_results(tmp_path)
    assert list(df.columns) == COLUMNS and list(df["trial_id"]) == ["t0000", "t0001"]
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    states = {t.user_attrs["trial_id"]: t.state for t in study.get_trials()}
    assert states == {
        "t0000": optuna.trial.TrialState.COMPLETE,
        "t0001": optuna.trial.TrialState.FAIL,
    }
    t0 = next(t for t in study.get_trials() if t.user_attrs["trial_id"] == "t0000")
    assert t0.values == [0.5, 10] and t0.intermediate_values == {1: 0.25, 2: 0.5}


def test_study_catches_up_with_parquet(tmp_path: Path) -> None:
    # a crash after the parquet write but before the study write
    pd.DataFrame([_row("t0000", 0.5)], columns=COLUMNS).to_parquet(
        tmp_path / "trials.parquet", index=False
    )
    ResultsStore(tmp_path, None, "s", ["val_acc"])
    ResultsStore(tmp_path, None, "s", ["val_acc"])  # and only once
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.user_attrs["trial_id"] for t in study.get_trials()] == ["t0000"]
