"""Dataset factories on real data (scikit-learn's bundled digits), for the tests of
``dataset: {factory: ...}``; each is ``tests/data/_factories.py:<name>`` in a search space."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    bunch = load_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32)[:, None]  # (N, 1, 8, 8)
    return x, torch.tensor(bunch.target)


def digits_tensors() -> dict:
    """Tensors, no val: growsearch holds one out."""
    x, y = _digits()
    return {"train": (x[:1400], y[:1400]), "test": (x[1400:], y[1400:])}


class DigitsOnDisk(torch.utils.data.Dataset):
    """Samples read one by one from a memory-mapped file, as data too large for memory would be."""

    def __init__(self, path: str, rows: np.ndarray, labels: np.ndarray):
        self.path, self.rows, self.targets = path, rows, labels.tolist()
        self._x: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self._x is None:  # opened lazily: in each DataLoader worker
            self._x = np.load(self.path, mmap_mode="r")
        return torch.from_numpy(np.array(self._x[self.rows[i]])), int(self.targets[i])


def digits_dataset(folder: str) -> dict:
    """Map-style Datasets over a .npy file written to ``folder``, with a val split."""
    x, y = _digits()
    path = f"{folder}/digits.npy"
    np.save(path, x.numpy())
    idx, labels = np.arange(len(y)), y.numpy()
    parts = {"train": idx[:1200], "val": idx[1200:1500], "test": idx[1500:]}
    return {k: DigitsOnDisk(path, i, labels[i]) for k, i in parts.items()}
