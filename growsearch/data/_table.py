"""A table on local disk (CSV or parquet) as a classification or regression dataset, through pandas.

* Classification: the ``target`` column holds the classes (any values: class ``i`` is the
  ``i``-th of their sorted distinct values). Regression: the ``target`` column holds numbers,
  standardised with the training split's mean and standard deviation (kept as
  :attr:`~growsearch.data.Dataset.target_stats`, so metrics are reported in the target's units).
  Rows whose target is missing are dropped.
* A fixed 70/15/15 split gives train/val/test (stratified by class for classification, as a
  single image folder is split).
* Numeric (and boolean) columns are standardised with the training split's mean and standard
  deviation. A missing number becomes the training mean (0 after standardisation), and a
  column with any missing value gets a 0/1 ``<column>_missing`` indicator beside it.
* Text and categorical columns are one-hot encoded over the categories seen in training (the
  :data:`MAX_CATEGORIES` most frequent; rarer ones share an ``other`` column). A missing
  value is a category of its own; a value training never saw sets no column.
* Any other column type (dates, durations...) is refused: convert or drop it first.

Every sample is a flat float32 vector, ``input_shape`` ``(D,)``: searched by the ``mlp`` family.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from growsearch.data._base import Dataset, Split, stratified_split, to_dataset
from growsearch.exceptions import DataError

SUFFIXES = (".csv", ".parquet", ".pq")
MAX_CATEGORIES = 64


def load_table(path: str | Path, target: str, regression: bool = False) -> Dataset:
    """Read a CSV or parquet table as a dataset (see the module's docstring).

    Args:
        path: A ``.csv``, ``.parquet`` or ``.pq`` file.
        target: The column of class labels (or of numbers, with ``regression``).
        regression: The target is a number to predict, not a class.

    Returns:
        The dataset, named ``"table"``, with ``input_shape`` ``(D,)``.

    Raises:
        DataError: The file cannot be read, the target column is missing or has fewer than two
            classes, or a column has a type that cannot be encoded.
    """
    import pandas as pd

    path = Path(path)
    where = f"table '{path.name}'"
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"{where}: expected a {', '.join(SUFFIXES)} file")
    try:
        df = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as e:
        raise DataError(f"{where}: cannot read it ({type(e).__name__}: {e})") from e
    if target not in df.columns:
        cols = ", ".join(map(str, df.columns[:20])) + (" ..." if len(df.columns) > 20 else "")
        raise DataError(f"{where}: no target column {target!r} (columns: {cols})")
    df = df[df[target].notna()]
    if len(df) == 0:
        raise DataError(f"{where}: no rows with a target value")
    if regression:
        return _regression(df, target, where)
    classes, y = np.unique(df[target].to_numpy(), return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{where}: the target {target!r} has one class ({classes[0]!r})")
    x, (train, val, test) = _features_and_split(df, target, y, where)
    return to_dataset(
        "table", (x[train], x[val], x[test]), (y[train], y[val], y[test]), len(classes)
    )


def encode(features: object, train: np.ndarray, where: str = "table") -> np.ndarray:
    """The feature columns as a float32 matrix, every statistic taken from the ``train`` rows."""
    import pandas as pd

    assert isinstance(features, pd.DataFrame)
    blocks: list[np.ndarray] = []
    for name in features.columns:
        col = features[name]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            values = col.astype("float64").to_numpy()
            missing = np.isnan(values)
            fit = values[train][~missing[train]]
            mean = float(fit.mean()) if len(fit) else 0.0
            std = float(fit.std()) if len(fit) else 1.0
            values = (np.where(missing, mean, values) - mean) / (std if std > 1e-12 else 1.0)
            blocks.append(values[:, None])
            if missing.any():
                blocks.append(missing[:, None].astype(np.float64))
        elif (
            pd.api.types.is_object_dtype(col)
            or pd.api.types.is_string_dtype(col)
            or isinstance(col.dtype, pd.CategoricalDtype)
        ):
            values = col.astype("object").where(col.notna(), "\0missing").astype(str).to_numpy()
            seen, counts = np.unique(values[train], return_counts=True)
            keep = seen[np.argsort(-counts, kind="stable")[:MAX_CATEGORIES]]
            keep.sort()
            onehot = (values[:, None] == keep[None, :]).astype(np.float64)
            blocks.append(onehot)
            if len(seen) > len(keep):  # the rarer training categories share one column
                blocks.append((np.isin(values, seen) & ~np.isin(values, keep))[:, None] * 1.0)
        else:
            raise DataError(
                f"{where}: column {name!r} has type {col.dtype}, which growsearch cannot "
                "encode (numbers, booleans, text and categories can be); convert or drop it"
            )
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _features_and_split(
    df: object, target: str, keys: np.ndarray, where: str
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The encoded features and the fixed 70/15/15 (train, val, test) rows, stratified by
    ``keys``; every statistic of the encoding from the training rows."""
    import pandas as pd

    assert isinstance(df, pd.DataFrame)
    features = df.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"{where}: no feature columns besides the target {target!r}")
    n_held = round(0.15 * len(keys))
    if n_held < 1:
        raise DataError(f"{where}: {len(keys)} rows, too few to split into train/val/test")
    test, val, train = stratified_split(keys, (n_held, n_held, -1))
    return encode(features, train, where), (train, val, test)


def _regression(df: object, target: str, where: str) -> Dataset:
    """The table with a numeric target, standardised with the training rows' statistics."""
    import pandas as pd

    assert isinstance(df, pd.DataFrame)
    col = df[target]
    if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
        raise DataError(
            f"{where}: the regression target {target!r} has type {col.dtype}, expected numbers"
        )
    values = col.astype("float64").to_numpy()
    keys = np.zeros(len(values), dtype=np.int64)  # one stratum: a fixed random split
    x, (train, val, test) = _features_and_split(df, target, keys, where)
    mean, std = float(values[train].mean()), float(values[train].std())
    std = std if std > 1e-12 else 1.0
    y = ((values - mean) / std).astype(np.float32)
    splits = [
        Split(torch.tensor(x[i], dtype=torch.float32), torch.tensor(y[i], dtype=torch.float32))
        for i in (train, val, test)
    ]
    train_s, val_s, test_s = splits
    return Dataset(
        "table", train_s, val_s, test_s, input_shape=(x.shape[1],), num_classes=1,
        labels=False, target_stats=((mean,), (std,)),
    )  # fmt: skip
