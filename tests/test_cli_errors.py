"""Bad input: each case is answered by one line naming the file/key and the problem, exit status 2,
no traceback, nothing written, existing results untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from growsearch.cli import main

BASE = """
name: base
dataset: {name: digits}
seed_model: {family: cnn, stages: [[8], [16]], kernel_size: 3}
mutations: {widen: {factors: [1.5, 2.0], max_width: 64}, deepen: {max_layers_per_stage: 3}}
controller: {name: evolution, population: 4, sample: 2}
training: {epochs: 2, seed_epochs: 3, batch_size: 64, lr: 0.003}
budget: {trials: 3}
resources: {cpus_per_trial: 1, concurrency: 2}
"""


USER_MODELS = Path(__file__).parent / "fixtures" / "user_models.py"


def _edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new)


# (id, YAML text or None for "no file", extra CLI args, text the one line must contain)
RUN_CASES = [
    ("missing file", None, [], "no such file"),
    ("broken yaml", BASE + "\n  bad: [unclosed\n", [], "line"),
    ("not a mapping", "- just\n- a list\n", [], "mapping"),
    ("unknown top key", BASE + "\nepoch: 3\n", [], "unknown key 'epoch'"),
    (
        "unknown nested key",
        _edit("lr: 0.003", "lr: 0.003, lrr: 1"),
        [],
        "training: unknown key 'lrr'",
    ),
    ("wrong type", _edit("epochs: 2", "epochs: ten"), [], "training.epochs"),
    (
        "factor <= 1",
        _edit("factors: [1.5, 2.0]", "factors: [1.5, 0.5]"),
        [],
        "mutations.widen.factors[1]",
    ),
    ("unknown controller", _edit("name: evolution", "name: evoluton"), [], "evoluton"),
    ("unknown dataset", _edit("name: digits", "name: cifar"), [], "dataset.name"),
    (
        "unknown sampler",
        _edit("name: evolution, population: 4, sample: 2", "name: optuna, sampler: tpee"),
        [],
        "sampler",
    ),
    (
        "unknown amp",
        _edit("lr: 0.003", "lr: 0.003, amp: fp8"),
        [],
        "training.amp: expected one of ['auto', 'off', 'bf16', 'fp16']",
    ),
    (
        "unknown optimizer",
        _edit("lr: 0.003", "lr: 0.003, optimizer: adagrad"),
        [],
        "training.optimizer",
    ),
    ("unknown objective", BASE + "\nobjectives: [val_acc, speed]\n", [], "objectives"),
    ("zero trial budget", _edit("trials: 3", "trials: 0"), [], "budget.trials"),
    ("negative lr", _edit("lr: 0.003", "lr: -1"), [], "training.lr"),
    ("--trials 0", BASE, ["--trials", "0"], "budget.trials"),
    ("negative --time-budget", BASE, ["--time-budget", "-5"], "budget.time_minutes"),
    ("--concurrency 0", BASE, ["--concurrency", "0"], "resources.concurrency"),
    ("--retries -1", BASE, ["--retries", "-1"], "--retries"),
    ("max_width below seed", _edit("max_width: 64", "max_width: 4"), [], "max_width"),
    (
        "max_params below seed",
        _edit(
            "deepen: {max_layers_per_stage: 3}}",
            "deepen: {max_layers_per_stage: 3}, max_params: 10}",
        ),
        [],
        "max_params",
    ),
    ("even kernel", _edit("kernel_size: 3", "kernel_size: 4"), [], "kernel_size"),
    ("resnet without stage widths", _edit("family: cnn", "family: resnet"), [], "stage_widths"),
    (
        "fractional gpus > 1",
        _edit("concurrency: 2", "concurrency: 2, gpus_per_trial: 1.5"),
        [],
        "gpus_per_trial",
    ),
    (
        "bad ops_per_child",
        _edit("max_layers_per_stage: 3}}", "max_layers_per_stage: 3}, ops_per_child: [3, 1]}"),
        [],
        "ops_per_child",
    ),
    (
        "asha grace > epochs",
        BASE + "\nscheduler: {name: asha, grace_period: 9}\n",
        [],
        "grace_period",
    ),
    (
        "missing weights file",
        _edit(
            "seed_model: {family: cnn, stages: [[8], [16]], kernel_size: 3}",
            "seed_model: {factory: 'mypkg.models:make', weights: nope.safetensors}",
        ),
        [],
        "weights",
    ),
    (
        "bad factory string",
        _edit(
            "seed_model: {family: cnn, stages: [[8], [16]], kernel_size: 3}",
            "seed_model: {factory: 'no-colon'}",
        ),
        [],
        "factory",
    ),
    (
        "bad weights file",
        _edit(
            "seed_model: {family: cnn, stages: [[8], [16]], kernel_size: 3}",
            f"seed_model: {{factory: '{USER_MODELS}:digits_net', weights: w.safetensors}}",
        ),
        [],
        "do not load into the factory's model",
    ),
    (
        "factory cannot be imported",
        _edit(
            "seed_model: {family: cnn, stages: [[8], [16]], kernel_size: 3}",
            "seed_model: {factory: 'no_such_pkg.models:make'}",
        ),
        [],
        "cannot import 'no_such_pkg.models'",
    ),
    (
        "factory output is not the classes",
        _edit(
            "seed_model: {family: cnn, stages: [[8], [16]], kernel_size: 3}",
            f"seed_model: {{factory: '{USER_MODELS}:wrong_outputs'}}",
        ),
        [],
        "expected (10,) class scores",
    ),
    ("unknown task", BASE + "\ntask: regresion\n", [], "task.name: expected one of"),
    (
        "a metric the task does not report",
        BASE + "\nobjective: {metric: val_f1, mode: max}\n",
        [],
        "objective.metric: expected a metric the classification task reports",
    ),
    ("mode not min/max", BASE + "\nobjective: {metric: val_acc, mode: up}\n", [], "objective.mode"),
    (
        "a metric without a known direction",
        _edit("lr: 0.003}", "lr: 0.003, function: 'fit.py:fit'}") + "\nobjective: val_f1\n",
        [],
        "the direction of 'val_f1' is not known",
    ),
    ("task file missing", BASE + "\ntask: {factory: 'nofile.py:make'}\n", [], "task.factory"),
    (
        "fit file missing",
        _edit("lr: 0.003}", "lr: 0.003, function: 'nofit.py:fit'}"),
        [],
        "training.function: expected an existing Python file",
    ),
    (
        "a size objective first",
        BASE + "\nobjectives: [params, val_acc]\n",
        [],
        "objectives[0]: expected the metric to optimise first",
    ),
    (
        "objective and objectives disagree",
        BASE + "\nobjective: val_loss\nobjectives: [val_acc, params]\n",
        [],
        "objective: expected the same metric as objectives[0]",
    ),
    (
        "loss of a classification",
        BASE + "\ntask: {name: classification, loss: huber}\n",
        [],
        "task.loss: expected a loss only with name: regression",
    ),
    ("unreachable --address", BASE, ["--address", "127.0.0.1:1"], "no Ray cluster answers"),
    ("bad --storage url", BASE, ["--storage", "not a url"], "--storage"),
    ("unknown storage driver", BASE, ["--storage", "nosuchdb://u@h/db"], "--storage"),
    (
        "sqlite in a missing folder",
        BASE,
        ["--storage", "sqlite:////nonexistent/dir/x.db"],
        "does not exist",
    ),
]


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _one_line_exit_2(capsys, argv: list[str], needle: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("growsearch: error: "), err
    assert "Traceback" not in err
    assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("text", "args", "needle"), [pytest.param(t, a, n, id=i) for i, t, a, n in RUN_CASES]
)
def test_run_rejects_bad_input(
    tmp_path: Path, capsys, text: str | None, args: list[str], needle: str
) -> None:
    space = tmp_path / "space.yaml"
    if text is not None:
        space.write_text(text)
    (tmp_path / "w.safetensors").write_bytes(b"\x80\x04not safetensors")  # a pickle-ish blob
    (tmp_path / "fit.py").write_text("def fit(model, data, ctx):\n    pass\n")
    results = tmp_path / "results"
    results.mkdir()
    line = _one_line_exit_2(
        capsys, ["run", str(space), "--results-dir", str(results), *args], needle
    )
    if not args or args[0] in ("--trials", "--time-budget", "--concurrency"):
        assert "space.yaml" in line  # names the file
    assert list(results.iterdir()) == []  # nothing written


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    """A folder with the files of a run (contents are checked to stay untouched)."""
    run = tmp_path / "results" / "base"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"name": "base"}')
    (run / "space.json").write_text("{}")
    (run / "trials.parquet").write_bytes(b"PAR1 keep me")
    return run


def test_existing_run_name_is_refused_and_untouched(tmp_path: Path, capsys, fake_run: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(BASE)
    before = _tree(fake_run)
    _one_line_exit_2(
        capsys, ["run", str(space), "--results-dir", str(fake_run.parent)], "already exists"
    )
    assert _tree(fake_run) == before


OTHER_CASES = [
    ("resume missing dir", ["resume", "{tmp}/nope"], "no such run directory"),
    ("resume not a run", ["resume", "{tmp}"], "not a growsearch run"),
    ("resume corrupt space.json", ["resume", "{run}"], "space.json"),
    ("show missing dir", ["show", "{tmp}/nope"], "no such run directory"),
    ("show not a run", ["show", "{tmp}"], "not a growsearch run"),
    ("show corrupt parquet", ["show", "{run}"], "trials.parquet: unreadable"),
    ("dashboard missing dir", ["dashboard", "{tmp}/nope", "--port", "0"], "no such run directory"),
    ("dashboard not a run", ["dashboard", "{tmp}", "--port", "0"], "not a growsearch run"),
    ("report missing dir", ["report", "{tmp}/nope"], "no such run directory"),
    ("report not a run", ["report", "{tmp}"], "not a growsearch run"),
]


@pytest.mark.parametrize(("argv", "needle"), [pytest.param(a, n, id=i) for i, a, n in OTHER_CASES])
def test_other_commands_reject_bad_run_dirs(
    tmp_path: Path, capsys, fake_run: Path, argv: list[str], needle: str
) -> None:
    (fake_run / "space.json").write_text("{not json")
    before = _tree(tmp_path)
    argv = [a.format(tmp=tmp_path, run=fake_run) for a in argv]
    _one_line_exit_2(capsys, argv, needle)
    after = _tree(tmp_path)
    assert {k: v for k, v in after.items() if not k.endswith(".lock")} == before
