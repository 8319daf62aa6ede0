"""Datasets held in memory as tensors, with fixed train/val/test splits; nothing is downloaded.

>>> data = load_dataset("digits")
>>> data.input_shape, data.num_classes, len(data.train)
((1, 8, 8), 10, 1079)
"""

from growsearch.data._base import Dataset, Split
from growsearch.data._datasets import DATASETS, load_dataset
from growsearch.data._images import load_imagefolder

__all__ = ["DATASETS", "Dataset", "Split", "load_dataset", "load_imagefolder"]
