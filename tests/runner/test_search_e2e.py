"""End-to-end: a real search on a real (local, loopback) Ray with real training on digits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

import growsearch
from growsearch.data import load_dataset
from growsearch.exceptions import ConfigError
from growsearch.runner import COLUMNS
from growsearch.space import load_space
from growsearch.train import evaluate
from tests.fixtures.spaces import tiny_space

pytestmark = pytest.mark.slow

SPACE = tiny_space(trials=5)


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(SPACE)
    return path


@pytest.fixture(scope="module")
def warm_run(space_file, tmp_path_factory) -> Path:
    from growsearch.runner import run_search

    run_dir = tmp_path_factory.mktemp("runs") / "warm"
    run_search(load_space(space_file), run_dir, progress=False)
    return run_dir


def test_trials_table(warm_run: Path) -> None:
    df = growsearch.load_results(warm_run)
    # the fixed columns, then one per metric the trials reported (classification: the losses)
    assert list(df.columns) == [*COLUMNS, "val_loss", "test_loss"]
    assert df["val_loss"].notna().all() and (df["val_loss"] > 0).all()
    assert len(df) == 5 and df["trial_id"].is_unique
    assert (df["status"] == "completed").all(), df[["status", "error"]]
    seed = df[df["parent_id"].isna()]
    assert len(seed) == 1 and seed["epochs"].iloc[0] == 3
    children = df[df["parent_id"].notna()]
    assert (children["epochs"] == 2).all()
    assert set(children["parent_id"]) <= set(df["trial_id"])
    for _, row in df.iterrows():
        arch = growsearch.arch.ArchSpec.from_dict(json.loads(row["arch"]))
        assert row["params"] == growsearch.arch.count_params(arch)
        assert 0.0 < row["val_acc"] <= 1.0 and 0.0 < row["test_acc"] <= 1.0
        assert len(json.loads(row["curve"])) == row["epochs"]


def test_warm_start_is_real(warm_run: Path) -> None:
    """A child's accuracy before its first step equals its parent's final accuracy."""
    from growsearch.data import load_dataset
    from growsearch.grow import auto_shrink

    train = load_dataset("digits").train
    df = growsearch.load_results(warm_run).set_index("trial_id")
    children = df[df["parent_id"].notna()]
    assert len(children) == 4 and children["warm_start"].all()
    seed_row = df[df["parent_id"].isna()]
    assert seed_row["shrink"].isna().all()  # the seed is not shrunk
    assert seed_row["warmup_steps"].isna().all()  # and trains like any fresh network
    assert seed_row["cycle_steps"].isna().all()
    for _, child in children.iterrows():
        parent = df.loc[child["parent_id"]]
        assert child["preserve_err"] <= 1e-5
        assert child["parent_acc"] == pytest.approx(parent["val_acc"], abs=1e-9)
        assert child["acc_before"] == pytest.approx(parent["val_acc"], abs=1e-9)
        # the default recipe's shrink (shrink_scope auto) keeps every prediction
        assert child["shrink_scope"] == "homogeneous-norms"
        assert child["acc_start"] == pytest.approx(parent["val_acc"], abs=1e-9)
        # shrink "auto" (the default) was resolved for the child's length: 2 epochs of batch 64
        steps = 2 * (len(train) // 64)
        assert child["shrink"] == pytest.approx(auto_shrink(steps))
        # and it warmed its learning rate up over the recipe's first 10% of those steps
        assert child["warmup_steps"] == round(0.1 * steps) > 0
        # and its first cosine cycle ended at 20% of them, then restarted (a warm restart)
        assert child["cycle_steps"] == round(0.2 * steps) > child["warmup_steps"]
        # and each child's spec really is its parent's spec with the ops applied
        spec = growsearch.arch.ArchSpec.from_dict(json.loads(parent["arch"]))
        for op in json.loads(child["ops"]):
            spec = spec.apply(growsearch.arch.op_from_dict(op))
        assert spec.to_dict() == json.loads(child["arch"])


def test_optuna_study_mirrors_trials(warm_run: Path) -> None:
    df = growsearch.load_results(warm_run).set_index("trial_id")
    study = optuna.load_study(study_name="warm", storage=f"sqlite:///{warm_run / 'study.db'}")
    trials = study.get_trials()
    assert len(trials) == len(df)
    for t in trials:
        row = df.loc[t.user_attrs["trial_id"]]
        assert t.value == pytest.approx(row["val_acc"])
        assert t.user_attrs.get("parent_id") == (
            row["parent_id"] if isinstance(row["parent_id"], str) else None
        )
        assert list(t.intermediate_values.values()) == pytest.approx(json.loads(row["curve"]))
    assert study.best_value == pytest.approx(df["val_acc"].max())


def test_best_model_exported_and_loads(warm_run: Path) -> None:
    df = growsearch.load_results(warm_run)
    # the highest validation accuracy; a tie goes to the smaller model (the leaderboard's order)
    top = df[df["val_acc"] == df["val_acc"].max()]
    best = top.sort_values(["params", "trial_id"]).iloc[0]
    assert (
        json.loads((warm_run / "best" / "trial.json").read_text())["trial_id"] == best["trial_id"]
    )
    model = growsearch.load_model(warm_run / "best")
    assert isinstance(model, torch.nn.Module) and not model.training
    data = load_dataset("digits")
    _, test_acc = evaluate(model, data.test)
    assert test_acc == pytest.approx(best["test_acc"], abs=1e-9)


def test_existing_run_is_refused(warm_run: Path, space_file: Path) -> None:
    from growsearch.runner import run_search

    before = (warm_run / "trials.parquet").read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        run_search(load_space(space_file), warm_run, progress=False)
    assert (warm_run / "trials.parquet").read_bytes() == before


def test_cli_show_and_refusal(warm_run: Path, space_file: Path) -> None:
    cli = [sys.executable, "-m", "growsearch.cli"]
    shown = subprocess.run(
        [*cli, "show", str(warm_run)], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert "leaderboard" in shown.stdout and "cnn[" in shown.stdout
    again = subprocess.run(
        [*cli, "run", str(space_file), "--results-dir", str(warm_run.parent), "--name", warm_run.name],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "already exists" in again.stderr


def test_no_warm_start_trains_the_same_proposals_from_scratch(
    space_file: Path, tmp_path: Path
) -> None:
    # the API's override: None would keep the space's warm_start (true), False turns it off
    assert load_space(space_file).warm_start is True
    df = growsearch.run(
        space_file, warm_start=False, trials=3, results_dir=tmp_path, name="cold", progress=False
    ).trials
    assert len(df) == 3 and (df["status"] == "completed").all()
    children = df[df["parent_id"].notna()]
    assert len(children) == 2
    assert not children["warm_start"].any() and children["acc_before"].isna().all()


def test_asha_stops_weak_trials_early(space_file: Path, tmp_path: Path) -> None:
    from growsearch.runner import run_search

    space = load_space(
        space_file,
        {
            "warm_start": False,  # fresh children start weak: ASHA has something to stop
            "budget.trials": 8,
            "controller.name": "random",
            "training.epochs": 6,
            "training.seed_epochs": 6,
            "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 3},
        },
    )
    df = run_search(space, tmp_path / "asha", progress=False)
    assert len(df) == 8 and not (df["status"] == "failed").any()
    stopped = df[df["status"] == "stopped"]
    assert len(stopped) >= 1
    assert (stopped["epochs"] < 6).all() and (df[df["status"] == "completed"]["epochs"] == 6).all()
    # a stopped trial's curve is as long as it trained
    assert all(len(json.loads(c)) == e for c, e in zip(stopped["curve"], stopped["epochs"]))


def test_a_search_that_cannot_grow_further_ends_instead_of_waiting(
    space_file: Path, tmp_path: Path
) -> None:
    from growsearch.runner import run_search

    # only s0l0 8 -> 16 is allowed: after that, hillclimb's current best cannot grow at all
    space = load_space(
        space_file,
        {
            "budget.trials": 10,
            "controller": {"name": "hillclimb", "neighbours": 2},
            "mutations.widen.factors": [2.0],
            "mutations.widen.max_width": 16,
            "mutations.deepen.enabled": False,
        },
    )
    df = run_search(space, tmp_path / "converged", progress=False)  # returns: no hang, no interrupt
    assert 2 <= len(df) < 10 and (df["status"] == "completed").all()
    state = json.loads((tmp_path / "converged" / "search_state.json").read_text())
    assert state["converged"] is True


def test_the_same_space_and_seed_give_the_same_trials_at_concurrency_1(tmp_path: Path) -> None:
    """On one machine a search is reproducible: the same space and seed, one trial at a time,
    give the same trials table, architectures, lineage and accuracies alike."""
    space = tmp_path / "det.yaml"
    space.write_text(
        tiny_space(trials=5, name="det", seed=3, resources="{cpus_per_trial: 1, concurrency: 1}")
    )
    cols = ["trial_id", "parent_id", "ops", "arch_summary", "params", "val_acc", "test_acc"]
    tables = [
        growsearch.run(space, results_dir=tmp_path / f"r{i}", progress=False).trials[cols]
        for i in range(2)
    ]
    assert len(tables[0]) == 5 and tables[0]["parent_id"].notna().sum() == 4
    assert tables[0].equals(tables[1]), (tables[0], tables[1])
