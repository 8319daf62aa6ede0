"""Procedurally generated shapes and their masks: a dense-prediction task made on the spot.

Each 16×16 image holds a square and a disc at random places and sizes on a noisy background;
its mask labels every pixel 0 (background), 1 (square) or 2 (disc). Nothing is downloaded.
"""

import numpy as np
import torch

SIZE = 16


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    x = rng.normal(0.0, 0.3, (n, 1, SIZE, SIZE)).astype(np.float32)
    mask = np.zeros((n, SIZE, SIZE), dtype=np.int64)
    for i in range(n):
        s = rng.integers(3, 7)  # a square
        r0, c0 = rng.integers(0, SIZE - s, 2)
        mask[i, r0 : r0 + s, c0 : c0 + s] = 1
        r = rng.uniform(2.0, 4.0)  # a disc, drawn over the square where they meet
        cy, cx = rng.uniform(r, SIZE - r, 2)
        mask[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 2
        x[i, 0][mask[i] == 1] += 1.0
        x[i, 0][mask[i] == 2] += 1.0  # the same brightness: only the shape tells them apart
    return torch.from_numpy(x), torch.from_numpy(mask)


def load() -> dict:
    """Train/val/test images (N, 1, 16, 16) float32 and masks (N, 16, 16) int64."""
    return {"train": _images(800, 0), "val": _images(200, 1), "test": _images(200, 2)}
