"""A user's own data (``dataset: {factory: ...}``) on real data: tensors and map-style Datasets,
checked once, with input_shape, num_classes and a stratified val split derived."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from growsearch.data import Split, StreamedSplit, dataset_from_splits, flatten
from growsearch.data._user import dataset_from_factory
from growsearch.exceptions import DataError
from growsearch.space import load_space
from tests.data._factories import _digits, digits_dataset, digits_tensors

FACTORIES = Path(__file__).parent / "_factories.py"


def test_a_factory_returning_tensors() -> None:
    data = dataset_from_factory(digits_tensors, name="digits_tensors")
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert isinstance(data.train, Split) and isinstance(data.val, Split)
    # no val given: a stratified 10% of train is held out, disjoint from what is trained on
    assert len(data.val) == 140 and len(data.train) == 1260 and len(data.test) == 397
    assert torch.bincount(data.val.y, minlength=10).min() >= 12
    train_rows = {r.tobytes() for r in data.train.x.reshape(len(data.train), -1).numpy()}
    assert not any(r.tobytes() in train_rows for r in data.val.x.reshape(len(data.val), -1).numpy())
    # the split is fixed: the same samples every time
    again = dataset_from_factory(digits_tensors)
    assert torch.equal(again.val.x, data.val.x)


def test_a_factory_returning_datasets_that_fit_is_read_into_memory(tmp_path: Path) -> None:
    data = dataset_from_factory(lambda: digits_dataset(str(tmp_path)), workers=0)
    assert isinstance(data.train, Split) and len(data.train) == 1200 and len(data.val) == 300
    x, y = _digits()
    assert torch.equal(data.train.x, x[:1200]) and torch.equal(data.test.y, y[1500:])
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64


def test_a_dataset_can_be_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forced = dataset_from_factory(lambda: digits_dataset(str(tmp_path)), in_memory=False)
    assert isinstance(forced.train, StreamedSplit) and forced.input_shape == (1, 8, 8)
    # auto: too large for the memory budget -> streamed
    monkeypatch.setattr("growsearch.data._user.memory_budget", lambda: 1000)
    auto = dataset_from_factory(lambda: digits_dataset(str(tmp_path)), workers=1)
    assert isinstance(auto.test, StreamedSplit) and auto.test.workers == 1
    x, y = auto.val.head(5)
    assert (
        torch.equal(x, _digits()[0][1200:1205]) and y.tolist() == _digits()[1][1200:1205].tolist()
    )
    flat = flatten(auto)
    assert flat.input_shape == (64,) and flat.train.head(2)[0].shape == (2, 64)


def test_a_streamed_train_without_val_gets_a_stratified_val(tmp_path: Path) -> None:
    def factory() -> dict:
        d = digits_dataset(str(tmp_path))
        return {"train": d["train"], "test": d["test"]}

    data = dataset_from_factory(factory, in_memory=False)
    assert len(data.val) == 120 and len(data.train) == 1080
    labels = torch.tensor([data.val.source[i][1] for i in range(len(data.val))])
    assert torch.bincount(labels, minlength=10).min() >= 10


def test_num_classes_may_be_declared() -> None:
    x, y = _digits()
    data = dataset_from_splits({"train": (x, y), "test": (x, y), "num_classes": 12})
    assert data.num_classes == 12


@pytest.mark.parametrize(
    ("out", "needle"),
    [
        (lambda x, y: [x, y], "expected the factory to return a dict"),
        (lambda x, y: {"train": (x, y)}, "got no test"),
        (lambda x, y: {"train": (x, y), "test": (x, y), "extra": 1}, "unknown keys ['extra']"),
        (
            lambda x, y: {"train": ((x * 16).to(torch.uint8), y), "test": (x, y)},
            "train: x: expected floating-point",
        ),
        (
            lambda x, y: {"train": (x, y.float()), "test": (x, y)},
            "train: y: expected integer class labels",
        ),
        (
            lambda x, y: {"train": (x, y[:-1]), "test": (x, y)},
            "train: x has 1797 samples but y has 1796",
        ),
        (lambda x, y: {"train": (x, y), "test": (x, y + 1)}, "test: labels must be in 0..9"),
        (lambda x, y: {"train": (x, y - 1), "test": (x, y)}, "train: labels must be in 0..8"),
        (
            lambda x, y: {"train": (x, y), "val": (x[:0], y[:0]), "test": (x, y)},
            "val: the split is empty",
        ),
        (
            lambda x, y: {"train": (x, y), "test": (x[:, :, :4], y)},
            "test: samples have shape (1, 4, 8)",
        ),
        (lambda x, y: {"train": (x, y), "test": "data.npy"}, "test: expected an (x, y) pair"),
        (
            lambda x, y: {"train": (x, y), "test": (x, y), "num_classes": 5},
            "labels must be in 0..4",
        ),
    ],
)
def test_bad_factory_output_is_one_line(out, needle: str) -> None:
    x, y = _digits()
    with pytest.raises(DataError) as e:
        dataset_from_factory(lambda: out(x, y), name="load")
    assert "\n" not in str(e.value) and needle in str(e.value), str(e.value)
    assert str(e.value).startswith("load: ")


def test_a_factory_that_raises() -> None:
    def broken() -> dict:
        raise FileNotFoundError("data.csv")

    with pytest.raises(DataError, match="load: the factory raised FileNotFoundError: data.csv"):
        dataset_from_factory(broken, name="load")


def test_a_space_with_a_dataset_factory(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(
        f"dataset: {{factory: '{FACTORIES}:digits_tensors'}}\n"
        "seed_model: {family: cnn, stages: [[8], [16]]}\n"
        "training: {augment: {crop: 1, flip: true}}\n"
    )
    s = load_space(space)
    assert s.seed_arch is not None and s.seed_arch.input_shape == (1, 8, 8)
    assert s.seed_arch.num_classes == 10 and s.dataset.factory == f"{FACTORIES}:digits_tensors"
    # the mlp family flattens the factory's samples
    mlp = load_space(space, {"seed_model.family": "mlp", "training.augment.crop": 0,
                             "training.augment.flip": False})  # fmt: skip
    assert mlp.seed_arch is not None and mlp.seed_arch.input_shape == (64,)
    assert np.prod(s.seed_arch.input_shape) == 64
