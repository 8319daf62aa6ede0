"""The Python API: ``growsearch.run`` / ``resume`` / ``Run`` on a real (local, loopback) Ray with
real training on digits, the example controller of docs/api.md, and its one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from ray.tune import Callback

import growsearch
from growsearch.arch import count_params
from growsearch.cli import main
from growsearch.data import load_dataset
from growsearch.results import ranked
from growsearch.train import evaluate
from tests.fixtures.spaces import tiny_space

DOC = Path(__file__).parents[1] / "docs" / "api.md"
TRAINING = "{epochs: 1, seed_epochs: 1, batch_size: 64, lr: 0.003}"
SPACE = yaml.safe_load(tiny_space(trials=3, name="api", training=TRAINING))
SPACE["objectives"] = ["val_acc", "params"]  # the default space's objectives


def example_controller() -> type:
    """The ``GreedyGrowth`` class of docs/api.md, from the code block after its marker."""
    text = DOC.read_text()
    block = re.search(r"<!-- example-controller.*?-->\n```python\n(.*?)```", text, re.S)
    assert block is not None, "docs/api.md lost its example controller"
    module = types.ModuleType("docs_api_example")
    exec(compile(block.group(1), str(DOC), "exec"), module.__dict__)
    return module.GreedyGrowth


# ---- errors (no Ray) -----------------------------------------------------------------------
def _cli_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err.strip().removeprefix("growsearch: error: ")


def test_a_bad_space_is_the_clis_one_line_error(tmp_path: Path, capsys) -> None:
    bad = {**SPACE, "training": {**SPACE["training"], "epochs": "ten"}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    results = tmp_path / "runs"
    for space in (bad, path, str(path)):
        with pytest.raises(growsearch.ConfigError) as e:
            growsearch.run(space, results_dir=results)
        assert "\n" not in str(e.value) and "training.epochs" in str(e.value)
    assert str(e.value) == _cli_line(capsys, ["run", str(path), "--results-dir", str(results)])
    assert not results.exists()  # nothing written
    with pytest.raises(growsearch.ConfigError, match=r"^<dict>: training\.epochs"):
        growsearch.run(bad, results_dir=results)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"trials": 0}, "budget.trials"),
        ({"retries": -1}, "--retries"),
        ({"controller": "evoluton"}, "controller.name: expected one of"),
        ({"controller": 3}, "controller: expected a controller name"),
        ({"address": "127.0.0.1:1"}, "no Ray cluster answers"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path: Path, kwargs: dict, needle: str) -> None:
    with pytest.raises(growsearch.GrowsearchError, match=re.escape(needle)) as e:
        growsearch.run(SPACE, results_dir=tmp_path / "runs", **kwargs)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "runs" / "api").exists()


def test_not_a_space_and_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(growsearch.ConfigError, match="expected a YAML file path, a dict"):
        growsearch.run(42)  # type: ignore[arg-type]
    with pytest.raises(growsearch.ConfigError, match="no such run directory"):
        growsearch.resume(tmp_path / "nope")
    with pytest.raises(growsearch.ConfigError, match="not a growsearch run"):
        growsearch.Run(tmp_path)


def test_an_existing_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "keep").write_text("x")
    with pytest.raises(growsearch.ConfigError, match="a run named 'api' already exists"):
        growsearch.run(SPACE, results_dir=tmp_path)


def test_a_run_of_a_controller_instance_needs_one_to_resume(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "space.json").write_text("{}")
    (run / "run.json").write_text(json.dumps({"controller_class": "mymod.Mine"}))
    with pytest.raises(growsearch.ConfigError, match="instance of mymod.Mine") as e:
        growsearch.resume(run)
    assert str(e.value) == _cli_line(capsys, ["resume", str(run)])
    greedy = example_controller()
    space = growsearch.SearchSpace.from_dict(SPACE)
    with pytest.raises(growsearch.ConfigError, match="got an instance of docs_api_example"):
        growsearch.resume(run, controller=greedy(space))


# ---- real searches -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dict_run(tmp_path_factory: pytest.TempPathFactory) -> growsearch.Run:
    results = tmp_path_factory.mktemp("runs")
    return growsearch.run(SPACE, results_dir=results, concurrency=2, progress=False)


@pytest.mark.slow
def test_run_from_a_dict(dict_run: growsearch.Run) -> None:
    assert dict_run.dir.name == "api" and dict_run.dir.is_absolute()
    df = dict_run.trials
    assert df.equals(growsearch.load_results(dict_run.dir))
    assert len(df) == 3 and (df["status"] == "completed").all(), df[["status", "error"]]
    best = dict_run.best
    assert best is not None and best["trial_id"] == ranked(df).iloc[0]["trial_id"]
    saved = json.loads((dict_run.dir / "best" / "trial.json").read_text())
    assert saved["trial_id"] == best["trial_id"]


@pytest.mark.slow
def test_front_is_the_pareto_front_and_the_cli_prints_it(dict_run: growsearch.Run, capsys) -> None:
    assert dict_run.objectives == ["val_acc", "params"]
    df = dict_run.trials
    front = dict_run.front()
    assert not front.empty and list(front["params"]) == sorted(front["params"])
    for cost in ("params", "flops"):
        on_front = set(dict_run.front(cost)["trial_id"])
        for _, r in df.iterrows():  # on the front exactly when nothing is as small and as good
            beaten = (
                (df[cost] <= r[cost])
                & (df["val_acc"] >= r["val_acc"])
                & ((df[cost] < r[cost]) | (df["val_acc"] > r["val_acc"]))
            ).any()
            assert (r["trial_id"] in on_front) == (not beaten), (cost, r["trial_id"])
    assert set(front["trial_id"]) == set(dict_run.front("params")["trial_id"])
    with pytest.raises(ValueError, match="cost must be 'params' or 'flops'"):
        dict_run.front("val_acc")
    assert main(["show", str(dict_run.dir)]) == 0
    out = capsys.readouterr().out
    assert "Pareto front (val acc against params)" in out
    assert all(t in out for t in front["trial_id"])


@pytest.mark.slow
def test_best_model_predicts(dict_run: growsearch.Run) -> None:
    model = dict_run.best_model()
    assert isinstance(model, torch.nn.Module) and not model.training
    data = load_dataset("digits")
    _, acc = evaluate(model, data.test)
    assert acc == pytest.approx(float(dict_run.best["test_acc"]), abs=1e-6)


@pytest.mark.slow
def test_resume_of_a_finished_run_changes_nothing(dict_run: growsearch.Run) -> None:
    import ray

    before = dict_run.trials
    again = growsearch.resume(dict_run.dir, progress=False)
    assert again.dir == dict_run.dir and again.trials.equals(before)
    assert not ray.is_initialized()  # nothing left to run: Ray was not started
    assert repr(growsearch.Run(str(dict_run.dir))) == f"Run({str(dict_run.dir)!r})"


class _CtrlCAfterFirstTrial(Callback):
    """Ctrl-C (SIGINT to this process) when the first trial ends."""

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if not getattr(self, "sent", False):
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def shared_ray():
    """One local Ray for both sessions of a test (each call would otherwise start its own)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()  # stops exactly the processes this init started


@pytest.mark.slow
def test_example_controller_interrupted_then_resumed(tmp_path: Path, shared_ray) -> None:
    """The controller of docs/api.md, passed as an instance; a Ctrl-C (from a Ray Tune
    callback), then ``resume`` with a new instance finishes the budget."""
    greedy = example_controller()
    space = growsearch.SearchSpace.from_dict(SPACE)
    with pytest.raises(growsearch.SearchInterrupted) as e:
        growsearch.run(
            space,
            results_dir=tmp_path,
            controller=greedy(space),
            callbacks=[_CtrlCAfterFirstTrial()],
            progress=False,
        )
    run_dir = e.value.run_dir
    assert 1 <= len(e.value.df) < 3
    info = json.loads((run_dir / "run.json").read_text())
    assert info["controller_class"] == "docs_api_example.GreedyGrowth"
    with pytest.raises(growsearch.ConfigError, match="controller=<a new instance>"):
        growsearch.resume(run_dir, progress=False)

    run = growsearch.resume(run_dir, controller=greedy(space), progress=False)
    df = run.trials.set_index("trial_id")
    assert sorted(df.index) == ["t0000", "t0001", "t0002"]
    assert (df["status"] == "completed").all(), df[["status", "error"]]
    assert pd.isna(df.loc["t0000", "parent_id"])
    for child in ("t0001", "t0002"):  # one op on a finished trial
        assert df.loc[child, "parent_id"] in df.index and len(json.loads(df.loc[child, "ops"])) == 1
    state = json.loads((run_dir / "search_state.json").read_text())["controller"]
    assert state["draws"] >= 2 and len(state["results"]) == 3


class _Reports(Callback):
    """Every epoch report of every trial, as the driver receives it."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, dict]] = []

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.reports.append((str(trial.config["proposal"]["trial_id"]), dict(result)))


@pytest.mark.slow
@pytest.mark.parametrize("every", [False, True])
def test_test_every_epoch_reports_test_accuracy_each_epoch(
    tmp_path: Path, shared_ray, every: bool
) -> None:
    """``training.test_every_epoch``: each epoch's report carries the test accuracy, the last
    one the trials table's; without it only the last epoch's does."""
    space = {**SPACE, "training": {**SPACE["training"], "epochs": 2, "seed_epochs": 2,
                                   "test_every_epoch": every}}  # fmt: skip
    space["budget"] = {"trials": 2}
    seen = _Reports()
    run = growsearch.run(space, results_dir=tmp_path, callbacks=[seen], progress=False)
    df = run.trials.set_index("trial_id")
    assert (df["status"] == "completed").all(), df[["status", "error"]]
    # one report per epoch of every trial, in order
    epochs = {t: [r["epoch"] for u, r in seen.reports if u == t] for t in df.index}
    assert epochs == {t: [1, 2] for t in df.index}, epochs
    data = load_dataset("digits")
    for trial_id, r in seen.reports:
        if r["epoch"] == 2:
            assert r["test_acc"] == df.loc[trial_id, "test_acc"]
        elif every:  # a real evaluation of the test set: a multiple of 1 / its size
            assert 0.0 < r["test_acc"] <= 1.0
            n = len(data.test)
            assert abs(r["test_acc"] * n - round(r["test_acc"] * n)) < 1e-6
        else:
            assert "test_acc" not in r


def test_the_grow_example_of_the_docs_grows_and_trains_a_child() -> None:
    """docs/api.md's grow_child example, as written: a larger child, with the recipe's step
    scale, trained past its parent's validation accuracy."""
    text = DOC.read_text()
    block = re.search(r"<!-- example-grow.*?-->\n```python\n(.*?)```", text, re.S)
    assert block is not None, "docs/api.md lost its grow_child example"
    ns: dict[str, Any] = {}
    exec(compile(block.group(1), str(DOC), "exec"), ns)
    child, parent, data = ns["child"], ns["parent"], ns["data"]
    assert child.step_scale is not None and count_params(child.model) > count_params(parent)
    parent_val = evaluate(parent, data.val)[1]
    assert evaluate(child.model, data.val)[1] > parent_val  # trained on from the parent
