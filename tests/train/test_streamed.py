"""Data too large for memory: a map-style Dataset streamed through a DataLoader with workers
reads every sample once per epoch, in the order the in-memory path would, and resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from growsearch.data import Dataset, StreamedSplit, dataset_from_factory
from growsearch.exceptions import DataError
from growsearch.train import TrainConfig, TrainState, evaluate, train
from tests.data._factories import DigitsOnDisk, digits_dataset

N_TRAIN = 37 * 32  # whole batches: an epoch reads every training sample


class Numbered(torch.utils.data.Dataset):
    """A digits Dataset whose corner pixel (always 0 in digits) holds the sample's number / 1000."""

    def __init__(self, source: DigitsOnDisk, n: int):
        self.source, self.n = source, n
        self.targets = source.targets[:n]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.source[i]
        x = x.clone()
        x[0, 0, 0] = i / 1000  # small: the model still learns
        return x, y


def _factory(folder: Path) -> dict:
    d = digits_dataset(str(folder))
    return {
        "train": Numbered(d["train"], N_TRAIN),
        "val": Numbered(d["val"], 300),
        "test": d["test"],
    }


class Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.seen: dict[bool, list[torch.Tensor]] = {True: [], False: []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen[self.training].append((x[:, 0, 0, 0] * 1000).round().long())
        return self.net(x)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    folder = tmp_path_factory.mktemp("digits")
    data = dataset_from_factory(lambda: _factory(folder), in_memory=False, workers=2)
    assert isinstance(data.train, StreamedSplit) and data.train.workers == 2
    return data


def test_every_epoch_of_a_streamed_dataset_sees_every_sample_once(streamed: Dataset) -> None:
    model = Recorder()
    cfg = TrainConfig(epochs=3, batch_size=32, amp="off")
    results = train(model, streamed, cfg)
    assert [r.step for r in results] == [37, 74, 111]
    seen = torch.cat(model.seen[True]).reshape(3, N_TRAIN)
    for epoch in seen:
        assert sorted(epoch.tolist()) == list(range(N_TRAIN))
    assert not torch.equal(seen[0], seen[1])  # a fresh order each epoch
    # evaluation reads the validation split once per epoch, in order
    evaluated = torch.cat(model.seen[False]).reshape(3, 300)
    assert all(e.tolist() == list(range(300)) for e in evaluated)
    assert results[-1].val_acc > 0.5


def test_streamed_and_in_memory_training_end_with_the_same_weights(
    streamed: Dataset, tmp_path: Path
) -> None:
    in_memory = dataset_from_factory(lambda: _factory(tmp_path), in_memory=True, workers=0)
    cfg = TrainConfig(epochs=2, batch_size=32, amp="off", seed=4)
    a, b = Recorder(), Recorder()
    ra, rb = train(a, streamed, cfg), train(b, in_memory, cfg)
    assert torch.equal(torch.cat(a.seen[True]), torch.cat(b.seen[True]))
    assert ra[-1].val_loss == pytest.approx(rb[-1].val_loss, abs=1e-6)
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(wa, wb, atol=1e-6), name
    assert evaluate(a, streamed.test) == pytest.approx(evaluate(a, in_memory.test))


def test_a_streamed_run_resumes_exactly(streamed: Dataset) -> None:
    cfg = TrainConfig(epochs=3, batch_size=32, amp="off", seed=5)
    straight = Recorder()
    train(straight, streamed, cfg)
    saved = {}

    def stop(result, model, optimizer) -> bool:
        saved.update(state=result.state.to_dict(), weights=model.state_dict(),
                     opt=optimizer.state_dict())  # fmt: skip
        return True

    train(Recorder(), streamed, cfg, on_epoch=stop)
    resumed = Recorder()
    resumed.load_state_dict(saved["weights"])
    train(resumed, streamed, cfg, optimizer_state=saved["opt"],
          resume=TrainState.from_dict(saved["state"]))  # fmt: skip
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_streamed_batch_with_a_bad_label_is_a_data_error(tmp_path: Path) -> None:
    class Drifting(Numbered):
        targets = None  # no labels up front: growsearch reads them, and the data then changes

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            x, y = super().__getitem__(i)
            return x, 42 if self.broken else y

    d = digits_dataset(str(tmp_path))
    train_set = Drifting(d["train"], 64)
    train_set.broken = False
    data = dataset_from_factory(lambda: {"train": train_set, "test": d["test"]}, in_memory=False,
                                workers=0)  # fmt: skip
    train_set.broken = True
    with pytest.raises(DataError, match="a streamed batch has label 42, expected 0..9"):
        train(Recorder(), data, TrainConfig(epochs=1, batch_size=16, amp="off"))
