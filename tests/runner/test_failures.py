"""A search never dies on a proposal: a trial that fails is recorded with its error and the
search goes on; a proposal whose child cannot be built in the driver is not issued."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from ray.tune.search import Searcher

import growsearch
from growsearch.arch import ArchSpec, Widen
from growsearch.controllers import CONTROLLERS, Controller, Evolution, Proposal, TrialResult
from growsearch.exceptions import MorphError
from growsearch.runner._searcher import MAX_REJECTED, STATE_FILE, ControllerSearcher
from growsearch.space import load_space
from tests.fixtures.spaces import tiny_space

SPACE = """
name: {name}
seed: 0
dataset: {{name: digits}}
seed_model: {{family: cnn, stages: [[8], [16]], kernel_size: 3}}
mutations: {{widen: {{factors: [1.5, 2.0], max_width: 64}}, deepen: {{max_layers_per_stage: 3}}}}
controller: {{name: evolution, population: 4, sample: 2}}
training: {{epochs: 2, seed_epochs: 2, batch_size: 64, optimizer: sgd, lr: 0.05, lr_factor: {factor},
           warmup_fraction: 0}}
budget: {{trials: {trials}}}
resources: {{cpus_per_trial: 1, concurrency: 2}}
"""
# No warm-up: a child's first step takes the full ``lr * factor``, so 1e40 overflows float32
# inside the optimizer at once (a warm-up would start lower and fail later, on a NaN loss).
CLI = [sys.executable, "-m", "growsearch.cli"]


FACTORY = """
from torch import nn


def make():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(512, 10))
"""


def unbuildable_spec(folder: Path) -> ArchSpec:
    """A user's model (digits-shaped) whose factory file has gone: building it raises a
    SpecError, as a proposal whose child the engine cannot grow raises a MorphError (the error
    a user saw end a whole search once the driver built such a proposal)."""
    factory = folder / "user_model.py"
    factory.write_text(FACTORY)
    spec = ArchSpec.from_user_model(f"{factory}:make", None, (1, 8, 8), 10)
    assert spec.custom is not None
    gone = f"{folder / 'gone' / 'user_model.py'}:make"
    return dataclasses.replace(spec, custom=dataclasses.replace(spec.custom, factory=gone))


# ---- the searcher, without Ray: a proposal that cannot be built is never issued --------------
class Scripted(Controller):
    """Proposes the specs of ``script`` in order (an exception in it is raised instead)."""

    name = "scripted"

    def __init__(self, script: list[Any]):
        self.script = list(script)
        self.asked = 0
        self.rejected: list[tuple[str, str]] = []
        self.observed: list[TrialResult] = []

    def propose(self, trial_id: str) -> Proposal | None:
        self.asked += 1
        if not self.script:
            return None
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return Proposal(trial_id, item)

    def observe(self, result: TrialResult) -> None:
        self.observed.append(result)

    def reject(self, trial_id: str, reason: str) -> None:
        self.rejected.append((trial_id, reason))


@pytest.fixture
def seed_arch(tmp_path: Path) -> ArchSpec:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_space(trials=3))
    arch = load_space(path).seed_arch
    assert arch is not None
    return arch


def _searcher(controller: Controller, state_dir: Path | None = None) -> ControllerSearcher:
    settings = {"training": {"epochs": 2, "seed_epochs": 2}}
    return ControllerSearcher(
        controller, settings, max_trials=10, max_epochs=None, state_dir=state_dir
    )


def test_an_unbuildable_proposal_is_rejected_and_the_controller_asked_again(
    tmp_path: Path, seed_arch: ArchSpec
) -> None:
    bad = unbuildable_spec(tmp_path)
    controller = Scripted([bad, MorphError("widen s0l0: cannot"), seed_arch])
    searcher = _searcher(controller, tmp_path)
    config = searcher.suggest("ray-1")
    assert isinstance(config, dict) and config["proposal"]["trial_id"] == "t0000"
    assert ArchSpec.from_dict(config["proposal"]["arch"]) == seed_arch
    assert config["cost"]["params"] > 0 and config["index"] == 0
    assert controller.asked == 3  # the unbuildable one, the error, then the seed
    assert len(controller.rejected) == 1  # only the one it proposed; the error proposed nothing
    trial_id, reason = controller.rejected[0]
    assert trial_id == "t0000" and reason.startswith("SpecError: factory")
    assert "cannot import" in reason
    assert "\n" not in reason
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert list(state["issued"]) == ["t0000"]  # nothing recorded for the rejected proposal


def test_nothing_buildable_with_nothing_running_ends_the_session(
    tmp_path: Path, seed_arch: ArchSpec
) -> None:
    controller = Scripted([unbuildable_spec(tmp_path)] * (MAX_REJECTED + 5))
    searcher = _searcher(controller)
    assert searcher.suggest("ray-1") == Searcher.FINISHED  # never a crash, never a busy loop
    assert controller.asked == MAX_REJECTED and len(controller.rejected) == MAX_REJECTED
    assert searcher.issued == {} and searcher.complete()
    assert "stuck" not in searcher.get_state()  # a resume asks again


def test_nothing_buildable_while_trials_run_waits_for_one_to_end(
    tmp_path: Path, seed_arch: ArchSpec
) -> None:
    bad = unbuildable_spec(tmp_path)
    controller = Scripted([seed_arch] + [bad] * MAX_REJECTED + [seed_arch])
    searcher = _searcher(controller)
    assert isinstance(searcher.suggest("ray-1"), dict)
    assert searcher.suggest("ray-2") is None  # t0000 runs: wait, don't end
    assert controller.asked == 1 + MAX_REJECTED
    assert searcher.suggest("ray-2") is None and controller.asked == 1 + MAX_REJECTED
    searcher.on_trial_complete("ray-1", {"val_acc": 0.5, "epoch": 2, "epochs_planned": 2})
    assert [r.status for r in controller.observed] == ["completed"]
    config = searcher.suggest("ray-2")  # a trial ended: the controller is asked again
    assert isinstance(config, dict) and config["proposal"]["trial_id"] == "t0001"


def test_an_issued_trial_that_cannot_be_built_goes_to_its_worker_to_fail(
    tmp_path: Path, seed_arch: ArchSpec
) -> None:
    # the state a driver that built such a proposal after issuing it left behind when it died
    bad = Proposal("t0001", unbuildable_spec(tmp_path)).to_dict()
    searcher = _searcher(Scripted([]))
    searcher.set_state(
        {"controller": {}, "issued": {"t0000": Proposal("t0000", seed_arch).to_dict(), "t0001": bad},
         "finished": ["t0000"]}
    )  # fmt: skip
    config = searcher.suggest("ray-1")  # re-issued without its cost: it fails in its worker
    assert isinstance(config, dict) and config["proposal"] == bad and config["cost"] == {}
    searcher.on_trial_complete("ray-1", None, error=True)
    assert searcher.finished == {"t0000", "t0001"}


def test_a_controller_that_cannot_learn_from_a_trial_does_not_end_the_search(
    seed_arch: ArchSpec,
) -> None:
    class Fussy(Scripted):
        def observe(self, result: TrialResult) -> None:
            raise MorphError("cannot count this one")

    controller = Fussy([seed_arch, seed_arch])
    searcher = _searcher(controller)
    searcher.suggest("ray-1")
    searcher.on_trial_complete("ray-1", {"val_acc": 0.5, "epoch": 2, "epochs_planned": 2})
    assert searcher.finished == {"t0000"}
    assert isinstance(searcher.suggest("ray-2"), dict)


# ---- real searches on Ray --------------------------------------------------------------------
def _run(
    tmp_path: Path, name: str, factor: float, trials: int, *extra: str
) -> subprocess.CompletedProcess:
    space = tmp_path / f"{name}.yaml"
    space.write_text(SPACE.format(name=name, factor=factor, trials=trials))
    return subprocess.run(
        [*CLI, "run", str(space), "--results-dir", str(tmp_path / "runs"), *extra],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
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


@pytest.mark.slow
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
    again = subprocess.run([*CLI, "resume", str(run)], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr  # a finished run: nothing to redo, no error
    assert len(growsearch.load_results(run)) == 3


class Faulty(Evolution):
    """Evolution, except that its first proposal for t0001 cannot be built (rejected in the
    driver) and t0002 widens the seed's first layer to the width it has (MorphError when the
    trial grows it from the seed's checkpoint)."""

    name = "faulty"
    unbuildable: ArchSpec | None = None

    def _propose(self, trial_id: str) -> Proposal | None:
        if trial_id == "t0001" and not self.rejected:
            return Proposal(trial_id, self.unbuildable, "t0000")  # type: ignore[arg-type]
        if trial_id == "t0002":
            seed = self.results["t0000"].arch
            return Proposal(
                trial_id, seed, "t0000", (Widen(seed.layers[0].name, seed.layers[0].width),)
            )
        return super()._propose(trial_id)


@pytest.mark.slow
def test_a_search_skips_unbuildable_proposals_and_spends_its_budget_despite_failed_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from growsearch.runner import run_search

    monkeypatch.setitem(CONTROLLERS, "faulty", Faulty)
    monkeypatch.setattr(Faulty, "unbuildable", unbuildable_spec(tmp_path))
    path = tmp_path / "faulty.yaml"
    path.write_text(tiny_space(trials=5, name="faulty").replace("name: evolution", "name: faulty"))
    run = tmp_path / "runs" / "faulty"
    df = run_search(load_space(path), run, progress=False, max_failures=0)

    assert sorted(df["trial_id"]) == [f"t{i:04d}" for i in range(5)]  # the whole budget
    failed = df[df["status"] == "failed"]
    assert list(failed["trial_id"]) == ["t0002"], df[["trial_id", "status", "error"]]
    error = failed["error"].iloc[0]
    assert "MorphError" in error and "must exceed" in error and "\n" not in error
    assert failed["val_acc"].isna().all()
    assert (df[df["status"] != "failed"]["status"] == "completed").all()
    # the unbuildable proposal was never issued: no trial, no row, remembered by the controller
    assert not df["arch"].str.contains("user_model").any()
    state = json.loads((run / STATE_FILE).read_text())
    assert len(state["issued"]) == 5 and sorted(state["finished"]) == sorted(df["trial_id"])
    assert not any(p["arch"]["family"] == "custom" for p in state["issued"].values())
    assert Faulty.unbuildable.digest() in state["controller"]["rejected"]  # type: ignore[union-attr]
    # the controller observed the failure
    results = {r["proposal"]["trial_id"]: r["status"] for r in state["controller"]["results"]}
    assert results["t0002"] == "failed"
    study = optuna.load_study(study_name="faulty", storage=f"sqlite:///{run / 'study.db'}")
    assert sorted(t.state.name for t in study.get_trials()) == ["COMPLETE"] * 4 + ["FAIL"]
