"""Real searches (a few trials on a local, loopback Ray) on a user's own data: a dataset factory
(a streamed Dataset, with augmentation) and a CSV table; and the factory's code is shipped."""

from __future__ import annotations

from pathlib import Path

import pytest

import growsearch
from growsearch.runner._usercode import prepare_user_code
from growsearch.space import load_space
from tests.data.test_table import cancer_table

DATA_PY = """
from sibling_digits import digits_dataset  # a sibling module, imported as `python data.py` would

def load():
    import os
    return digits_dataset(os.path.dirname(os.path.abspath(__file__)))
"""
SEARCH = """
dataset: {dataset}
seed_model: {seed_model}
mutations: {{widen: {{factors: [2.0], max_width: 64}}, deepen: {{max_layers_per_stage: 2}}}}
controller: {{name: evolution, population: 2, sample: 2}}
training: {training}
budget: {{trials: 3}}
resources: {{cpus_per_trial: 1, concurrency: 2}}
"""


def _project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "data.py").write_text(DATA_PY)
    src = Path(__file__).parent / "_factories.py"
    (folder / "sibling_digits.py").write_text(src.read_text())
    return folder


def test_a_dataset_factorys_code_is_shipped_to_the_workers(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    space = folder / "space.yaml"
    space.write_text(SEARCH.format(
        dataset="{factory: 'data.py:load'}", seed_model="{family: cnn, stages: [[8]]}",
        training="{epochs: 1, seed_epochs: 1}",
    ))  # fmt: skip
    env = prepare_user_code(load_space(space), tmp_path / "run", None)
    assert env is not None and env["py_modules"] == [str(folder)]


@pytest.mark.slow
def test_a_search_on_a_streamed_dataset_factory_with_augmentation(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    space = folder / "space.yaml"
    space.write_text(SEARCH.format(
        dataset="{factory: 'data.py:load', in_memory: false, workers: 1}",
        seed_model="{family: cnn, stages: [[8], [16]]}",
        training="{epochs: 1, seed_epochs: 2, batch_size: 64, augment: {crop: 1, flip: true}}",
    ))  # fmt: skip
    run = growsearch.run(space, results_dir=tmp_path / "runs", progress=False)
    df = run.trials
    assert len(df) == 3 and (df["status"] == "completed").all(), df[["trial_id", "status", "error"]]
    assert (df["val_acc"] > 0.3).all() and df["test_acc"].notna().all()
    assert df["parent_id"].notna().sum() == 2  # children grown from the seed's checkpoint


@pytest.mark.slow
def test_a_search_on_a_csv_table(tmp_path: Path) -> None:
    cancer_table().to_csv(tmp_path / "cancer.csv", index=False)
    space = tmp_path / "space.yaml"
    space.write_text(SEARCH.format(
        dataset="{name: table, path: cancer.csv, target: diagnosis}",
        seed_model="{family: mlp, stages: [[16]]}",
        training="{epochs: 2, seed_epochs: 5, batch_size: 32}",
    ))  # fmt: skip
    run = growsearch.run(space, results_dir=tmp_path / "runs", progress=False)
    df = run.trials
    assert len(df) == 3 and (df["status"] == "completed").all(), df[["trial_id", "status", "error"]]
    assert df["val_acc"].max() > 0.9  # breast cancer: a linear model reaches ~95%
    model = run.best_model()
    assert model is not None
