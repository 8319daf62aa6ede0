"""training.augment: random crop with padding and horizontal flip of training batches only, on
real digits; a run with augmentation resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from growsearch.data import Dataset, load_dataset
from growsearch.exceptions import ConfigError
from growsearch.train import Augment, TrainConfig, TrainState, train


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")  # (1, 8, 8) images


class Recorder(nn.Module):
    """A small CNN that keeps every batch it is given, by mode."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10)
        )
        self.seen: dict[bool, list[torch.Tensor]] = {True: [], False: []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen[self.training].append(x.detach().clone())
        return self.net(x)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.tobytes() for r in x.reshape(len(x), -1).numpy()}


def test_augmentation_changes_training_batches_never_evaluation_batches(digits: Dataset) -> None:
    raw = _rows(digits.train.x)
    for augment in (None, Augment(crop=2, flip=True)):
        model = Recorder()
        cfg = TrainConfig(epochs=2, batch_size=64, augment=augment, amp="off")
        train(model, digits, cfg)
        trained = torch.cat(model.seen[True])
        assert trained.shape[1:] == (1, 8, 8)
        unchanged = sum(r.tobytes() in raw for r in trained.numpy()) / len(trained)
        if augment is None:
            assert unchanged == 1.0
        else:
            assert unchanged < 0.2  # ~1/25 offsets x 1/2 flips leave a sample as it was
        # every evaluation (one per epoch) saw the validation split exactly as it is
        evaluated = torch.cat(model.seen[False])
        assert torch.equal(evaluated, torch.cat([digits.val.x] * 2))


def test_crop_shifts_and_flip_mirrors() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5) + 1
    g = torch.Generator().manual_seed(0)
    flipped = Augment(flip=True)(x, g)
    for a, b in zip(flipped, x):
        assert torch.equal(a, b) or torch.equal(a, b.flip(-1))
    cropped = Augment(crop=2)(x, torch.Generator().manual_seed(1))
    assert cropped.shape == x.shape
    for a, b in zip(cropped, x):  # a shifted copy: the pixels kept are a window of the original
        kept = a[a != 0]
        assert len(kept) > 0 and set(kept.tolist()) <= set(b.flatten().tolist())
        # every channel was shifted the same way
        assert torch.equal((a[0] != 0), (a[1] != 0))
    # the same draws give the same batch; signals (C, L) are shifted along L
    assert torch.equal(cropped, Augment(crop=2)(x, torch.Generator().manual_seed(1)))
    signal = Augment(crop=3, flip=True)(x[:, :, 0, :], g)
    assert signal.shape == (2, 3, 5)


def test_flat_inputs_cannot_be_augmented() -> None:
    flat = load_dataset("digits", flat=True)
    with pytest.raises(ConfigError, match=r"augment: crop and flip need samples of shape"):
        train(nn.Linear(64, 10), flat, TrainConfig(epochs=1, augment=Augment(crop=1)))


def test_a_run_with_augmentation_resumes_exactly(digits: Dataset, tmp_path: Path) -> None:
    cfg = TrainConfig(
        epochs=4, batch_size=64, augment=Augment(crop=1, flip=True), amp="off", seed=3
    )
    straight = Recorder()
    train(straight, digits, cfg)
    states: dict[int, tuple[TrainState, dict, dict]] = {}

    def stop(result, model, optimizer) -> bool:
        states[result.epoch] = (
            result.state,
            {k: v.clone() for k, v in model.state_dict().items()},
            optimizer.state_dict(),
        )
        return result.epoch == 2

    train(Recorder(), digits, cfg, on_epoch=stop)
    state, weights, opt = states[2]
    state = TrainState.from_dict(state.to_dict())  # through JSON, as a checkpoint holds it
    assert state.augment is not None
    resumed = Recorder()
    resumed.load_state_dict(weights)
    train(resumed, digits, cfg, optimizer_state=opt, resume=state)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
