"""A user's own data: what a dataset factory returns, checked once and made a :class:`Dataset`.

A factory (``dataset: {factory: my_data.py:load}``) returns ``{"train": ..., "val": ...,
"test": ...}`` (``val`` optional; an optional ``"num_classes": int`` too). Each split is an
``(x, y)`` pair of tensors or a map-style ``torch.utils.data.Dataset`` whose items are ``(x, y)``.

* x must be floating point (cast to float32) or integer token ids (int64); every sample has the
  training split's shape.
* For classification (``labels=True``) y holds integer class labels ``0 .. num_classes - 1``;
  ``num_classes`` is the factory's, else the largest training label + 1. For any other task
  (``labels=False``) y is any target with one entry per sample, ``(N,)``, ``(N, k)``,
  ``(N, H, W)``...: floating point (cast to float32, finite) or integer (int64).
* Without ``val``, a fixed, stratified 10% of the training split is held out.
* A ``Dataset`` is read into memory when it fits (:func:`memory_budget`), else streamed
  through a ``DataLoader`` with worker processes (:class:`StreamedSplit`); ``in_memory``
  forces either. A streamed split is checked on its first sample and its labels (a
  ``targets`` or ``labels`` attribute, else one pass over the split); every batch's shape and
  labels are checked again as it is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from growsearch.data._base import (
    AnySplit,
    Dataset,
    Split,
    StreamedSplit,
    stratified_split,
)
from growsearch.exceptions import DataError

SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.1  # held out of the training split when the factory gives no val
MEMORY_FRACTION = (
    0.25  # a Dataset is read into memory when it needs at most this much of the free RAM
)


def memory_budget() -> int:
    """Bytes a dataset may occupy in memory: a quarter of the memory available now."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        free = 8 * 2**30  # no sysconf (not Linux): assume a small machine
    return int(free * MEMORY_FRACTION)


def dataset_from_factory(
    factory: Callable[[], Any],
    *,
    name: str = "factory",
    in_memory: bool | str = "auto",
    workers: int = 2,
    labels: bool = True,
) -> Dataset:
    """Call a dataset factory and check what it returns, once.

    Args:
        factory: The user's function (no arguments).
        name: The dataset's name (for messages and :attr:`Dataset.name`).
        in_memory: ``"auto"`` (a ``Dataset`` that fits in :func:`memory_budget` is read into
            memory, a larger one is streamed), ``True`` (always read) or ``False`` (stream every
            ``Dataset``; tensors are in memory already).
        workers: ``DataLoader`` worker processes for reading a ``Dataset``.

    Returns:
        The dataset: float32 inputs, int64 labels, ``input_shape`` and ``num_classes`` derived.

    Raises:
        DataError: One line naming the split and the problem.
    """
    try:
        out = factory()
    except DataError:
        raise
    except Exception as e:  # the user's code: whatever it raises is a problem with the data
        raise DataError(f"{name}: the factory raised {type(e).__name__}: {e}") from e
    return dataset_from_splits(out, name=name, in_memory=in_memory, workers=workers, labels=labels)


def dataset_from_splits(
    out: Any,
    *,
    name: str = "factory",
    in_memory: bool | str = "auto",
    workers: int = 2,
    labels: bool = True,
) -> Dataset:
    """The checks of :func:`dataset_from_factory` on a factory's return value."""
    if not isinstance(out, Mapping):
        raise DataError(
            f"{name}: expected the factory to return a dict with train, val (optional) and "
            f"test, got {type(out).__name__}"
        )
    unknown = sorted(set(out) - {*SPLITS, "num_classes"})
    missing = [k for k in ("train", "test") if k not in out]
    if unknown or missing:
        problem = f"unknown keys {unknown}" if unknown else f"no {' or '.join(missing)}"
        raise DataError(
            f"{name}: expected keys train, val (optional), test, num_classes (optional); "
            f"got {problem}"
        )
    declared = out.get("num_classes")
    if declared is not None and (
        isinstance(declared, bool) or not isinstance(declared, int) or declared < 2
    ):
        raise DataError(f"{name}: num_classes: expected an integer >= 2, got {declared!r}")

    parts = {k: _part(name, k, out[k], workers, labels) for k in SPLITS if out.get(k) is not None}
    shape, target = parts["train"].shape, parts["train"].target_shape
    for k, part in parts.items():
        if part.shape != shape:
            raise DataError(
                f"{name}: {k}: samples have shape {part.shape}, the training split's {shape}"
            )
        if part.target_shape != target:
            raise DataError(
                f"{name}: {k}: targets have shape {part.target_shape}, the training split's "
                f"{target}"
            )
    if labels:
        found = {k: part.labels for k, part in parts.items() if part.labels is not None}
        num_classes = int(declared) if declared is not None else int(found["train"].max()) + 1
        for k, part_labels in found.items():
            lo, hi = int(part_labels.min()), int(part_labels.max())
            if lo < 0 or hi >= num_classes:
                where = (
                    "num_classes"
                    if declared is not None
                    else "the training split's largest label + 1"
                )
                raise DataError(
                    f"{name}: {k}: labels must be in 0..{num_classes - 1} ({where} is "
                    f"{num_classes}), got {lo if lo < 0 else hi}"
                )
        if num_classes < 2:
            raise DataError(f"{name}: train: expected at least 2 classes, got only label 0")
    else:  # the output width a built-in family builds: the numbers a target holds
        num_classes = int(declared) if declared is not None else int(np.prod(target or (1,)))

    train = parts["train"]
    if "val" in parts:
        val = parts["val"]
    else:
        n = len(train)
        n_val = max(1, round(VAL_FRACTION * n))
        if n - n_val < 1:
            raise DataError(f"{name}: train: {n} samples, too few to hold out val")
        # stratified by class for labels; any other target: a fixed random draw
        keys = train.labels if train.labels is not None else np.zeros(n, dtype=np.int64)
        val_idx, train_idx = stratified_split(keys, (n_val, -1))
        train, val = train.subset(train_idx), train.subset(val_idx)

    budget = memory_budget()
    need = sum(p.nbytes for p in (train, val, parts["test"]))
    stream = in_memory is False or (in_memory == "auto" and need > budget)
    train_s, val_s, test_s = (p.split(stream, workers) for p in (train, val, parts["test"]))
    return Dataset(
        name, train_s, val_s, test_s, input_shape=shape, num_classes=num_classes, labels=labels
    )


class _Part:
    """One split as the factory gave it: tensors or a ``Dataset``, plus every label (for
    classification; None for other targets)."""

    def __init__(
        self,
        shape: tuple[int, ...],
        labels: np.ndarray | None,
        n: int,
        target_shape: tuple[int, ...] = (),
        tensors: tuple[torch.Tensor, torch.Tensor] | None = None,
        source: torch.utils.data.Dataset | None = None,
        sample_bytes: int = 0,
    ):
        self.shape, self.labels, self.tensors, self.source = shape, labels, tensors, source
        self.n, self.target_shape, self.sample_bytes = n, target_shape, sample_bytes

    def __len__(self) -> int:
        return self.n

    @property
    def nbytes(self) -> int:
        if self.tensors is not None:
            return 0  # in memory already, whatever happens
        return self.sample_bytes * self.n

    def subset(self, idx: np.ndarray) -> _Part:
        labels = None if self.labels is None else self.labels[idx]
        if self.tensors is not None:
            i = torch.as_tensor(idx)
            return _Part(
                self.shape, labels, len(idx), self.target_shape,
                (self.tensors[0][i], self.tensors[1][i]),
            )  # fmt: skip
        sub = torch.utils.data.Subset(self.source, idx.tolist())  # type: ignore[arg-type]
        return _Part(
            self.shape, labels, len(idx), self.target_shape, source=sub,
            sample_bytes=self.sample_bytes,
        )  # fmt: skip

    def split(self, stream: bool, workers: int) -> AnySplit:
        if self.tensors is not None:
            return Split(*self.tensors)
        assert self.source is not None
        if stream:
            return StreamedSplit(self.source, workers)
        return _materialise(self.source, workers)


def _part(name: str, key: str, value: Any, workers: int, labels: bool = True) -> _Part:
    """Check one split's type, dtypes, lengths and shapes; read its labels."""
    where = f"{name}: {key}"
    if isinstance(value, tuple | list) and len(value) == 2:
        x, y = value
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise DataError(
                f"{where}: expected an (x, y) pair of tensors, got ({type(x).__name__}, "
                f"{type(y).__name__})"
            )
        _check_dtypes(where, x.dtype, y.dtype, labels)
        if labels and y.ndim != 1:
            raise DataError(
                f"{where}: y: expected one label per sample (N,), got shape {tuple(y.shape)}"
            )
        if y.ndim < 1:
            raise DataError(f"{where}: y: expected one target per sample, got a scalar")
        if x.ndim < 2:
            raise DataError(f"{where}: x: expected (N, *input_shape), got shape {tuple(x.shape)}")
        if len(x) != len(y):
            raise DataError(f"{where}: x has {len(x)} samples but y has {len(y)}")
        if len(y) == 0:
            raise DataError(f"{where}: the split is empty")
        x, y = _cast(x.detach().to("cpu")), _cast(y.detach().to("cpu"))
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise DataError(f"{where}: x holds NaN or infinite values")
        if y.is_floating_point() and not torch.isfinite(y).all():
            raise DataError(f"{where}: y holds NaN or infinite values")
        return _Part(
            tuple(x.shape[1:]), y.numpy() if labels else None, len(y), tuple(y.shape[1:]),
            tensors=(x.contiguous(), y.contiguous()),
        )  # fmt: skip
    if isinstance(value, torch.utils.data.Dataset) and hasattr(value, "__len__"):
        n = len(value)
        if n == 0:
            raise DataError(f"{where}: the split is empty")
        x0, y0 = _item(where, value, 0, labels)
        found = _labels(where, value, n, workers) if labels else None
        return _Part(
            tuple(x0.shape), found, n, tuple(y0.shape), source=value,
            sample_bytes=x0.nbytes + y0.nbytes,
        )  # fmt: skip
    raise DataError(
        f"{where}: expected an (x, y) pair of tensors or a map-style torch Dataset, "
        f"got {type(value).__name__}"
    )


def _cast(t: torch.Tensor) -> torch.Tensor:
    """float32 for floating point and booleans, int64 for integers."""
    return t.to(torch.float32) if t.is_floating_point() or t.dtype == torch.bool else t.long()


def _check_dtypes(where: str, x: torch.dtype, y: torch.dtype, labels: bool = True) -> None:
    # int32/int64 inputs are token ids (an nn.Embedding reads them); bytes are pixels to convert
    if not (x.is_floating_point or x in (torch.int32, torch.int64)):
        raise DataError(
            f"{where}: x: expected floating-point inputs, got {x} (convert, e.g. x.float() / "
            "255; int32/int64 inputs are taken as token ids)"
        )
    if labels and (y.is_floating_point or y.is_complex or y == torch.bool):
        raise DataError(
            f"{where}: y: expected integer class labels, got {y} (a task other than "
            "classification takes any target: set task in the search space)"
        )
    if y.is_complex:
        raise DataError(f"{where}: y: expected real-valued targets, got {y}")


def _item(where: str, ds: Any, i: int, labels: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``i`` of a Dataset as (x, y), checked (a label is an int64 scalar)."""
    try:
        item = ds[i]
    except Exception as e:  # the user's __getitem__
        raise DataError(f"{where}: reading sample {i} raised {type(e).__name__}: {e}") from e
    if not isinstance(item, tuple | list) or len(item) != 2:
        raise DataError(f"{where}: expected samples (x, y), got {type(item).__name__}")
    x, y = (torch.as_tensor(v) for v in item)
    _check_dtypes(where, x.dtype, y.dtype, labels)
    if labels and y.ndim != 0:
        raise DataError(
            f"{where}: y: expected one integer label per sample, got shape {tuple(y.shape)}"
        )
    if x.ndim == 0:
        raise DataError(f"{where}: x: expected a tensor per sample, got a scalar")
    return _cast(x), _cast(y)


def _labels(where: str, ds: Any, n: int, workers: int) -> np.ndarray:
    """Every label of a Dataset: its ``targets``/``labels`` attribute, else one pass over it
    (in batches, with ``workers`` processes)."""
    for attr in ("targets", "labels"):
        given = getattr(ds, attr, None)
        if given is not None and len(given) == n:
            labels = torch.as_tensor(given)
            _check_dtypes(where, torch.float32, labels.dtype)
            return labels.long().numpy()
    loader = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=workers)
    ys = []
    try:
        for batch in loader:
            if not isinstance(batch, tuple | list) or len(batch) != 2:
                raise DataError(f"{where}: expected samples (x, y), got {type(batch).__name__}")
            y = torch.as_tensor(batch[1])
            _check_dtypes(where, torch.float32, y.dtype)
            if y.ndim != 1:
                raise DataError(f"{where}: y: expected one integer label per sample")
            ys.append(y.long())
    except DataError:
        raise
    except Exception as e:  # the user's __getitem__, or samples of different shapes
        raise DataError(f"{where}: reading the samples failed: {str(e).splitlines()[0]}") from e
    return torch.cat(ys).numpy()


def _materialise(ds: torch.utils.data.Dataset, workers: int) -> Split:
    """Read a Dataset into tensors, in batches."""
    loader = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=workers)
    xs, ys = [], []
    try:
        for x, y in loader:
            xs.append(_cast(torch.as_tensor(x)))
            y = _cast(torch.as_tensor(y))
            ys.append(y.reshape(-1) if y.ndim == 0 else y)
    except (RuntimeError, TypeError) as e:  # default_collate: samples of different shapes
        raise DataError(f"reading a Dataset failed: {str(e).splitlines()[0]}") from e
    return Split(torch.cat(xs), torch.cat(ys))


def check_batch(
    x: torch.Tensor, y: torch.Tensor, input_shape: Sequence[int], num_classes: int | None
) -> None:
    """A streamed batch's check: sample shape and label range (cheap; the data is not held).
    ``num_classes`` None: the targets are not class labels, only the shape is checked."""
    if tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(
            f"a streamed batch has samples of shape {tuple(x.shape[1:])}, expected "
            f"{tuple(input_shape)}"
        )
    if num_classes is not None and len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
        raise DataError(f"a streamed batch has label {bad}, expected 0..{num_classes - 1}")
