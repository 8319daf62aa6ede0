"""The dataset containers, the loader registry and helpers shared by the loaders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from growsearch.exceptions import DataError

# Splits never depend on the caller's seed: changing the seed of a search must not change
# which samples it is evaluated on.
SPLIT_SEED = 2016


@dataclass(frozen=True)
class Split:
    """One split of a dataset, held in memory.

    Attributes:
        x: Inputs, shape ``(N, *input_shape)``: float32, or int64 (token ids for an
            ``nn.Embedding``).
        y: Targets, shape ``(N, ...)``: int64 (class labels ``(N,)``, masks ``(N, H, W)``...)
            or float32 (regression targets, multi-label indicators...).
    """

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dtype not in (torch.float32, torch.int64) or self.y.dtype not in (
            torch.float32,
            torch.int64,
        ):
            raise DataError(
                f"Split: expected x and y float32 or int64, got {self.x.dtype} and {self.y.dtype}"
            )
        if self.y.ndim < 1 or len(self.x) != len(self.y):
            raise DataError(
                f"Split: x has {len(self.x)} samples but y has shape {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        # The default repr would print every tensor element.
        return f"Split(x={tuple(self.x.shape)} {self.x.dtype}, y={tuple(self.y.shape)})"

    @property
    def nbytes(self) -> int:
        """Bytes the split's tensors hold."""
        return self.x.nbytes + self.y.nbytes

    def head(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` samples as ``(x, y)`` (e.g. a probe or calibration batch)."""
        return self.x[:n], self.y[:n]

    def to(self, device: torch.device | str) -> Split:
        """The split with its tensors on ``device`` (itself when they are there already)."""
        device = torch.device(device)
        if self.x.device == device and self.y.device == device:
            return self
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class StreamedSplit:
    """One split of a dataset too large to hold in memory: a map-style torch ``Dataset``
    yielding ``(x, y)``, read in batches through a ``DataLoader`` with worker processes.

    Attributes:
        source: The samples (``source[i]`` is ``(x, y)``, x of the dataset's ``input_shape``,
            y a class label or, for a task other than classification, any target).
        workers: ``DataLoader`` worker processes (0: read in the training process).
    """

    source: torch.utils.data.Dataset
    workers: int = 2

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"StreamedSplit({type(self.source).__name__}, {len(self)} samples)"

    def loader(
        self,
        batch_size: int,
        order: list[int] | None = None,
        *,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.utils.data.DataLoader:
        """Batches in ``order`` (default: sample order). ``generator`` seeds the workers (the
        loader draws one number from it per epoch), so a resumed run reads the same batches."""
        return torch.utils.data.DataLoader(
            self.source,
            batch_size=batch_size,
            sampler=order if order is not None else range(len(self)),
            drop_last=drop_last,
            num_workers=self.workers,
            generator=generator,
            pin_memory=torch.cuda.is_available(),
        )

    def head(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` samples as ``(x, y)``."""
        x, y = zip(*(self.source[i] for i in range(min(n, len(self)))))
        return torch.stack([torch.as_tensor(v) for v in x]), torch.stack(
            [torch.as_tensor(v) for v in y]
        )


AnySplit = Split | StreamedSplit
"""A split held in memory or streamed from a map-style torch ``Dataset``."""


@dataclass(frozen=True)
class Dataset:
    """A dataset with fixed train/val/test splits.

    Attributes:
        name: The registry name (``"mnist1d"``, ``"digits"``...).
        train: Training split (in memory, or a :class:`StreamedSplit`).
        val: Validation split (for model selection; never trained on).
        test: Held-out test split.
        input_shape: Shape of one sample, e.g. ``(1, 40)``, ``(1, 28, 28)`` or ``(784,)``.
        num_classes: The width of a model's output that the built-in model families build:
            the number of classes (labels ``0 .. num_classes - 1``) when ``labels``, else the
            number of numbers a target holds (1 for targets of shape ``(N,)``).
        labels: The targets are class labels (``(N,)`` int64): what classification needs.
        target_stats: For targets standardised with the training split's statistics (a
            table's regression target): ``(mean, std)`` per target column, to report metrics
            in the target's own units; else None.
    """

    name: str
    train: AnySplit
    val: AnySplit
    test: AnySplit
    input_shape: tuple[int, ...]
    num_classes: int
    labels: bool = True
    target_stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None


Loader = Callable[[str | None], Dataset]
"""``loader(root) -> Dataset``; ``root`` is the user's local folder, or None."""

LOADERS: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Register a loader under ``name`` (a decorator)."""

    def decorator(fn: Loader) -> Loader:
        LOADERS[name] = fn
        return fn

    return decorator


def stratified_split(
    y: np.ndarray, sizes: tuple[int, ...], seed: int = SPLIT_SEED
) -> list[np.ndarray]:
    """Partition ``range(len(y))`` into parts of the given sizes, each with ~the class mix of y.

    The last size may be -1 for "the rest". Deterministic for a given ``y`` and ``seed``.
    """
    sizes = (*sizes[:-1], len(y) - sum(sizes[:-1])) if sizes[-1] == -1 else sizes
    if sum(sizes) != len(y) or min(sizes) < 0:
        raise DataError(f"cannot split {len(y)} samples into parts of sizes {sizes}")
    # Key each sample by its (shuffled) rank within its class divided by the class size;
    # sorting by the key interleaves the classes, so every part gets the class mix of y.
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    key = np.empty(len(y))
    for c in np.unique(y):
        members = perm[y[perm] == c]
        key[members] = (np.arange(len(members)) + 0.5) / len(members)
    order = perm[np.argsort(key[perm], kind="stable")]
    bounds = np.cumsum((0, *sizes))
    return [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def standardise(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Standardise per channel (axis 1) with the training split's statistics; float32 out."""
    axes = (0, *range(2, train.ndim))
    mean = train.mean(axis=axes, keepdims=True)
    std = train.std(axis=axes, keepdims=True) + 1e-8
    return tuple(((a - mean) / std).astype(np.float32) for a in (train, *others))


def to_dataset(
    name: str,
    x: tuple[np.ndarray, ...],
    y: tuple[np.ndarray, ...],
    num_classes: int,
) -> Dataset:
    """Build a :class:`Dataset` from (train, val, test) numpy arrays, copying them to tensors
    (integer inputs stay integers: token ids)."""
    splits = [
        Split(
            torch.tensor(xs, dtype=torch.int64 if xs.dtype.kind in "iu" else torch.float32),
            torch.tensor(ys, dtype=torch.int64),
        )
        for xs, ys in zip(x, y)
    ]
    train, val, test = splits
    return Dataset(name, train, val, test, tuple(x[0].shape[1:]), num_classes)
