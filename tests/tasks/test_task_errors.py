"""A user's task that cannot work is refused before Ray starts: one line naming the file, the
key and the problem, exit status 2, no run folder written."""

from __future__ import annotations

from pathlib import Path

import pytest

from growsearch.cli import main

SPACE = """
name: bad_task
dataset: {{factory: 'data.py:load'}}
task: {task}
seed_model: {{factory: 'model.py:make'}}
mutations: {{widen: {{factors: [2.0], max_width: 64}}}}
training: {{epochs: 1, seed_epochs: 1, batch_size: 16}}
budget: {{trials: 2}}
"""
DATA = """
import torch

def load():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=g), torch.randn(64, 3, generator=g)  # 3 numbers each
    return {"train": (x, y), "test": (x, y)}
"""
MODEL = """
from torch import nn

def make():
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))  # 2 outputs
"""
NO_METRICS = """
class Task:
    def loss(self, output, target):
        return ((output - target) ** 2).mean()

def make():
    return Task()
"""
CASES = [
    ("regression", None, "task: expected targets that fit the model's output"),
    (
        "{factory: 'task.py:make'}",
        NO_METRICS,
        "task.factory: make() returned Task, which has no metrics",
    ),
    ("{factory: 'task.py:nope'}", NO_METRICS, "task.factory: cannot load"),
    ("{factory: 'task.py:make', options: {x: 1}}", NO_METRICS, "make() raised TypeError"),
    (
        "{name: regression, options: {x: 1}}",
        None,
        "task.options: expected options only with a factory",
    ),
]


@pytest.mark.parametrize(("task", "source", "needle"), CASES)
def test_a_task_that_cannot_work_is_one_line_exit_2(
    tmp_path: Path, capsys, task: str, source: str | None, needle: str
) -> None:
    (tmp_path / "data.py").write_text(DATA)
    (tmp_path / "model.py").write_text(MODEL)
    if source is not None:
        (tmp_path / "task.py").write_text(source)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.format(task=task))
    results = tmp_path / "results"
    assert main(["run", str(space), "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"growsearch: error: {space}: "), err
    assert needle in err[0], err[0]
    assert not results.exists()  # nothing written
