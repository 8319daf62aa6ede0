"""Datasets with fixed train/val/test splits, held in memory as tensors or streamed from a
map-style torch ``Dataset`` too large for memory; nothing is downloaded.

>>> data = load_dataset("digits")
>>> data.input_shape, data.num_classes, len(data.train)
((1, 8, 8), 10, 1079)
"""

from growsearch.data._base import AnySplit, Dataset, Split, StreamedSplit
from growsearch.data._datasets import DATASETS, flatten, load_dataset
from growsearch.data._images import load_imagefolder
from growsearch.data._table import load_table
from growsearch.data._user import check_batch, dataset_from_factory, dataset_from_splits

__all__ = [
    "DATASETS",
    "AnySplit",
    "Dataset",
    "Split",
    "StreamedSplit",
    "check_batch",
    "dataset_from_factory",
    "dataset_from_splits",
    "flatten",
    "load_dataset",
    "load_imagefolder",
    "load_table",
]
