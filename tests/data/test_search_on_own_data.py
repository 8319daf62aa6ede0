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
import os

import torch

import growsearch.train
from sibling_digits import digits_dataset  # a sibling module, imported as `python data.py` would

MARKS = {marks!r}  # where the trials' processes leave evidence of what they did


def _mark(name):
    open(os.path.join(MARKS, f"{{name}}-{{os.getpid()}}"), "w").close()


class Watched(torch.utils.data.Dataset):
    \"\"\"The training split, marking a read out of order in a DataLoader worker: a streamed,
    shuffled epoch (reading into memory goes in order).\"\"\"

    def __init__(self, inner):
        self.inner, self.targets, self.last = inner, inner.targets, -1

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        if torch.utils.data.get_worker_info() is not None:
            if i < self.last:
                _mark("streamed")
            self.last = i
        return self.inner[i]


_augment = growsearch.train.Augment.__call__


def _watched_augment(self, x, generator):  # marks a batch that augmentation changed
    out = _augment(self, x, generator)
    if not torch.equal(out, x):
        _mark("augmented")
    return out


def load():
    growsearch.train.Augment.__call__ = _watched_augment  # in the trial's process
    splits = digits_dataset(os.path.dirname(os.path.abspath(__file__)))
    return {{**splits, "train": Watched(splits["train"])}}
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
    (tmp_path / "marks").mkdir()
    (folder / "data.py").write_text(DATA_PY.format(marks=str(tmp_path / "marks")))
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
def test_a_search_on_a_streamed_dataset_factory_with_augmentation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The factory's folder is deleted once Ray is up: the workers load the data from the
    shipped code; they stream the training split (shuffled reads in DataLoader workers) and
    augment its batches."""
    import shutil

    import ray

    folder = _project(tmp_path)
    space = tmp_path / "space.yaml"  # outside the folder that goes away
    space.write_text(SEARCH.format(
        dataset=f"{{factory: '{folder / 'data.py'}:load', in_memory: false, workers: 1}}",
        seed_model="{family: cnn, stages: [[8], [16]]}",
        training="{epochs: 1, seed_epochs: 2, batch_size: 64, augment: {crop: 1, flip: true}}",
    ))  # fmt: skip
    real_init = ray.init
    shipped = []

    def init_then_remove_the_users_folder(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = real_init(*args, **kwargs)  # Ray is up, the runtime_env uploaded
        shutil.rmtree(folder)
        shipped.append(kwargs.get("runtime_env"))
        return out

    monkeypatch.setattr(ray, "init", init_then_remove_the_users_folder)
    run = growsearch.run(space, results_dir=tmp_path / "runs", progress=False)
    assert shipped and shipped[0] is not None and not folder.exists()
    df = run.trials
    assert len(df) == 3 and (df["status"] == "completed").all(), df[["trial_id", "status", "error"]]
    assert (df["val_acc"] > 0.3).all() and df["test_acc"].notna().all()
    assert df["parent_id"].notna().sum() == 2  # children grown from the seed's checkpoint
    marks = {p.name.split("-")[0] for p in (tmp_path / "marks").iterdir()}
    assert marks == {"streamed", "augmented"}, marks


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
