"""Data augmentation of a training batch on the trial's device: random crop and horizontal flip.

The batch is augmented where it already is (the GPU for a trial that trains on one), as the
fastest CIFAR trainers do, instead of per sample in a data loader. The random draws (an offset
and a coin per sample) come from a CPU generator that :class:`~growsearch.train.TrainState`
captures, so a resumed run augments exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from growsearch.exceptions import ConfigError


@dataclass(frozen=True)
class Augment:
    """What to do to each training sample; evaluation batches are never augmented.

    Attributes:
        crop: Pad each spatial side by this many zeros (the mean of standardised data) and crop
            back to the original size at a random offset: a shift of up to ``crop`` pixels.
            0 turns it off.
        flip: Mirror half of the samples along the last axis (horizontal flip of an image).

    Samples are ``(C, H, W)`` images or ``(C, L)`` signals (crop and flip act on ``L``).
    """

    crop: int = 0
    flip: bool = False

    def __post_init__(self) -> None:
        if self.crop < 0:
            raise ConfigError(f"augment.crop: expected an integer >= 0, got {self.crop}")

    @property
    def enabled(self) -> bool:
        return self.crop > 0 or self.flip

    def check_shape(self, input_shape: tuple[int, ...]) -> None:
        """Raise ConfigError unless samples of ``input_shape`` can be augmented."""
        if self.enabled and len(input_shape) not in (2, 3):
            raise ConfigError(
                f"augment: crop and flip need samples of shape (C, H, W) or (C, L), got "
                f"{input_shape} (flat inputs, as the mlp family and tables have, cannot be)"
            )

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch ``(B, C, H, W)`` or ``(B, C, L)``; the draws come from ``generator``."""
        b, dims = x.shape[0], x.ndim - 2  # spatial dims: 2 for images, 1 for signals
        if self.crop > 0:
            p = self.crop
            offsets = torch.randint(0, 2 * p + 1, (b, dims), generator=generator).to(x.device)
            padded = F.pad(x, (p, p) * dims)  # (B, C, H + 2p, W + 2p)
            batch = torch.arange(b, device=x.device)
            chans = torch.arange(x.shape[1], device=x.device)
            if dims == 2:
                h, w = x.shape[2], x.shape[3]
                rows = offsets[:, 0:1] + torch.arange(h, device=x.device)  # (B, H)
                cols = offsets[:, 1:2] + torch.arange(w, device=x.device)  # (B, W)
                x = padded[
                    batch[:, None, None, None],
                    chans[None, :, None, None],
                    rows[:, None, :, None],
                    cols[:, None, None, :],
                ]  # (B, C, H, W)
            else:
                cols = offsets[:, 0:1] + torch.arange(x.shape[2], device=x.device)  # (B, L)
                x = padded[batch[:, None, None], chans[None, :, None], cols[:, None, :]]
        if self.flip:
            flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
            x = torch.where(flip.view(b, *([1] * (x.ndim - 1))), x.flip(-1), x)
        return x
