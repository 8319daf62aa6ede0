"""growsearch.train: real training of tiny models on scikit-learn's digits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from growsearch.data import Dataset, Split, load_dataset
from growsearch.exceptions import ConfigError, DataError, TrainingError
from growsearch.train import (
    EpochResult,
    TrainConfig,
    evaluate,
    lr_at,
    make_optimizer,
    pick_device,
    scale_steps,
    set_seed,
    train,
)

# digits: 1,079 training samples -> 16 steps per epoch at batch size 64.
STEPS_PER_EPOCH = 16


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", flat=True)


def mlp(seed: int = 0, hidden: int = 32) -> nn.Module:
    set_seed(seed)
    return nn.Sequential(
        nn.Linear(64, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 10)
    )


def cfg(**overrides: object) -> TrainConfig:
    defaults: dict = {"epochs": 2, "batch_size": 64, "lr": 1e-2, "device": "cpu"}
    return TrainConfig(**{**defaults, **overrides})


def test_learns_digits(digits: Dataset) -> None:
    model = mlp()
    results = train(model, digits, cfg(epochs=3))
    assert [r.epoch for r in results] == [1, 2, 3]
    assert [r.step for r in results] == [16, 32, 48]
    assert results[-1].val_acc > 0.85  # chance is 0.1
    assert results[-1].train_loss < results[0].train_loss
    assert results[-1].lr < 1e-3 < results[0].lr  # cosine decay towards 0
    assert all(r.seconds > 0 for r in results)
    assert evaluate(model, digits.test)[1] > 0.85


def test_same_seed_same_weights(digits: Dataset) -> None:
    def run(seed: int) -> dict[str, torch.Tensor]:
        model = mlp(seed=0)
        model.insert(3, nn.Dropout(0.2))  # in-model randomness is seeded too
        train(model, digits, cfg(seed=seed, epochs=1))
        return model.state_dict()

    first, second, other = run(0), run(0), run(1)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize(("max_steps", "epochs_run"), [(5, 1), (20, 2), (32, 2), (1000, 2)])
def test_max_steps_counts_across_epochs(digits: Dataset, max_steps: int, epochs_run: int) -> None:
    steps: list[int] = []
    results = train(
        mlp(),
        digits,
        cfg(max_steps=max_steps),
        eval_every_steps=1,
        on_eval=lambda step, loss, acc: steps.append(step),
    )
    taken = min(max_steps, 2 * STEPS_PER_EPOCH)
    assert len(results) == epochs_run
    assert results[-1].step == taken
    assert steps == list(range(taken + 1))  # step 0 is evaluated before any update


def test_learning_curve_against_steps(digits: Dataset) -> None:
    curve: list[tuple[int, float, float]] = []
    model = mlp()
    results = train(
        model,
        digits,
        cfg(),
        eval_every_steps=10,
        on_eval=lambda step, loss, acc: curve.append((step, loss, acc)),
    )
    assert [s for s, _, _ in curve] == [0, 10, 20, 30]
    assert curve[0][2] < 0.3 < 0.8 < curve[-1][2]  # untrained, then trained
    assert model.training  # the mid-epoch evaluations leave the model in train mode
    assert results[-1].val_acc > 0.8


def test_on_epoch_can_stop_training_and_sees_the_optimizer(digits: Dataset) -> None:
    seen: list[tuple[EpochResult, int]] = []

    def on_epoch(result: EpochResult, model: nn.Module, opt: torch.optim.Optimizer) -> bool:
        seen.append((result, len(opt.state)))
        return result.epoch == 2

    results = train(mlp(), digits, cfg(epochs=5), on_epoch=on_epoch)
    assert [r.epoch for r in results] == [1, 2]
    assert [r for r, _ in seen] == results
    assert seen[0][1] > 0  # Adam has moments for the parameters


def test_resume_loads_the_optimizer_state(digits: Dataset) -> None:
    model = mlp()
    saved: dict = {}
    train(model, digits, cfg(epochs=1), on_epoch=lambda r, m, opt: saved.update(opt.state_dict()))
    first_param_state = saved["state"][0]
    assert first_param_state["step"].item() == STEPS_PER_EPOCH

    resumed: dict = {}
    train(
        model,
        digits,
        cfg(epochs=1),
        optimizer_state=saved,
        on_epoch=lambda r, m, opt: resumed.update(opt.state_dict()),
    )
    assert resumed["state"][0]["step"].item() == 2 * STEPS_PER_EPOCH


@pytest.mark.parametrize("amp", ["off", "fp16"])
def test_an_interrupted_run_resumed_from_a_checkpoint_ends_with_the_same_weights(
    digits: Dataset, tmp_path, amp: str
) -> None:
    """Stopped after epoch 2 of 5, saved, loaded and resumed: schedule, warm-up, data order,
    dropout and the fp16 scaler continue, and the weights match an uninterrupted run's."""
    import random as pyrandom

    import numpy as np

    from growsearch.arch import ArchSpec, build
    from growsearch.checkpoint import load_checkpoint, save_checkpoint
    from growsearch.train import TrainState

    spec = ArchSpec.create("mlp", (64,), 10, [[32]], dropout=0.3)
    config = cfg(epochs=5, warmup_steps=20, schedule="cosine", amp=amp, seed=7)
    straight = build(spec, seed=0)
    train(straight, digits, config)

    def stop_after_two(result, model, optimizer) -> bool:
        if result.epoch == 2:
            meta = {"train_state": result.state.to_dict()}
            save_checkpoint(
                tmp_path / "ck", spec, model, optimizer_state=optimizer.state_dict(), meta=meta
            )
        return result.epoch == 2

    first = build(spec, seed=0)
    assert [r.epoch for r in train(first, digits, config, on_epoch=stop_after_two)] == [1, 2]
    # another process: its generators are wherever they happen to be
    torch.manual_seed(123), np.random.seed(5), pyrandom.seed(9)
    ck = load_checkpoint(tmp_path / "ck")
    resumed = ck.model().train()
    state = TrainState.from_dict(ck.meta["train_state"])
    rest = train(resumed, digits, config, optimizer_state=ck.optimizer_state, resume=state)
    assert [r.epoch for r in rest] == [3, 4, 5] and rest[-1].step == 5 * STEPS_PER_EPOCH
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    # without the state, the schedule restarts: not the same run
    again = ck.model().train()
    train(
        again,
        digits,
        cfg(epochs=3, warmup_steps=20, amp=amp, seed=7),
        optimizer_state=ck.optimizer_state,
    )
    assert not torch.equal(again.state_dict()["head.weight"], straight.state_dict()["head.weight"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"optimizer": "sgd", "lr": 0.05},
        {"optimizer": "adamw", "weight_decay": 0.01, "label_smoothing": 0.1},
        {"schedule": "constant", "warmup_steps": 10, "grad_clip": 1.0},
    ],
)
def test_optimizers_and_options_learn(digits: Dataset, overrides: dict) -> None:
    results = train(mlp(), digits, cfg(epochs=3, **overrides))
    assert results[-1].val_acc > 0.8


def test_nan_loss_raises_training_error(digits: Dataset) -> None:
    class NaNAfter(nn.Module):
        """Healthy for the first epoch, NaN from the given forward call on."""

        def __init__(self, healthy_calls: int) -> None:
            super().__init__()
            self.net, self.calls, self.healthy = mlp(), 0, healthy_calls

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += self.training
            out = self.net(x)
            return out * math.nan if self.training and self.calls > self.healthy else out

    with pytest.raises(TrainingError, match="epoch 2, step 19"):
        train(NaNAfter(healthy_calls=18), digits, cfg())


def test_divergence_raises_training_error(digits: Dataset) -> None:
    with pytest.raises(TrainingError, match=r"training loss is (nan|inf) at epoch \d+, step \d+"):
        train(mlp(), digits, cfg(optimizer="sgd", lr=1e12, schedule="constant", epochs=5))


def test_small_split_with_batchnorm_uses_one_full_batch(digits: Dataset) -> None:
    tiny = Dataset(
        "tiny",
        Split(digits.train.x[:10], digits.train.y[:10]),
        digits.val,
        digits.test,
        digits.input_shape,
        10,
    )
    results = train(mlp(), tiny, cfg(epochs=3))
    assert [r.step for r in results] == [1, 2, 3]


def test_evaluate_matches_a_manual_computation_and_restores_modes(digits: Dataset) -> None:
    model = mlp()
    model.train()
    model[1].eval()  # e.g. a frozen BatchNorm: its own mode must survive evaluate()
    loss, acc = evaluate(model, digits.val, batch_size=100)
    assert model.training and not model[1].training and model[3].training

    model.eval()
    with torch.no_grad():
        logits = model(digits.val.x)
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, digits.val.y).item(), 1e-5)
    assert acc == pytest.approx((logits.argmax(1) == digits.val.y).float().mean().item())
    evaluate(model, digits.val)
    assert not model.training

    empty = Split(digits.val.x[:0], digits.val.y[:0])
    with pytest.raises(DataError, match="empty"):
        evaluate(model, empty)


def test_lr_schedule() -> None:
    c = TrainConfig(lr=1.0, warmup_steps=4)
    assert [lr_at(s, 104, c) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, 104, c) == 1.0
    assert lr_at(54, 104, c) == pytest.approx(0.5)
    assert 0 < lr_at(103, 104, c) < 1e-3
    assert lr_at(50, 104, TrainConfig(lr=0.1, schedule="constant")) == 0.1


def test_lr_schedule_with_a_warm_restart() -> None:
    """``cycle_steps``: warm-up, a first cosine cycle that reaches 0 at ``cycle_steps``, then a
    restart at the peak that decays to 0 at the end of the run."""
    c = TrainConfig(lr=1.0, warmup_steps=4, cycle_steps=24)
    lrs = [lr_at(s, 104, c) for s in range(104)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[14] == pytest.approx(0.5) and lrs[23] < 0.03  # first cycle: steps 4..24
    assert lrs[3:24] == sorted(lrs[3:24], reverse=True)
    assert lrs[24] == 1.0 and lrs[64] == pytest.approx(0.5) and lrs[103] < 1e-3
    assert lrs[24:] == sorted(lrs[24:], reverse=True)
    assert [lr_at(s, 20, c) for s in range(20)] == [
        lr_at(s, 20, TrainConfig(lr=1.0, warmup_steps=4)) for s in range(20)
    ]
    with pytest.raises(ConfigError, match="cycle_steps"):
        TrainConfig(warmup_steps=10, cycle_steps=10)


def test_make_optimizer_follows_the_config() -> None:
    model = mlp()
    sgd = make_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert group["lr"] == 0.1 and group["weight_decay"] == 1e-4
    assert group["momentum"] == 0.9 and group["nesterov"]
    assert isinstance(make_optimizer(model, TrainConfig(optimizer="adamw")), torch.optim.AdamW)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("lr", 0.0),
        ("optimizer", "adagrad"),
        ("schedule", "step"),
        ("warmup_steps", -1),
        ("max_steps", 0),
        ("label_smoothing", 1.0),
        ("grad_clip", 0.0),
    ],
)
def test_config_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"TrainConfig.{field}: expected"):
        TrainConfig(**{field: value})


def test_devices_and_callback_arguments(digits: Dataset) -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device"):
        pick_device("tpu9")
    with pytest.raises(ConfigError, match="together"):
        train(mlp(), digits, cfg(), eval_every_steps=5)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_step_scale_multiplies_each_entrys_update(digits: Dataset, optimizer: str) -> None:
    # one step from the same weights on the same batch, with and without a per-entry scale:
    # the scaled entries moved exactly that many times as far, the others exactly as far
    one = cfg(optimizer=optimizer, max_steps=1, epochs=1)
    start = mlp()
    plain = mlp()
    train(plain, digits, one)
    scaled = mlp()
    w = dict(scaled.named_parameters())["0.weight"]
    scale = torch.ones_like(w)
    scale[:8] = 3.0  # the first 8 units' incoming weights: 3x the step
    train(scaled, digits, one, step_scale={"0.weight": scale, "3.bias": torch.ones(10)})
    w0, w1 = dict(start.named_parameters())["0.weight"], dict(plain.named_parameters())["0.weight"]
    w3 = dict(scaled.named_parameters())["0.weight"]
    step, step3 = (w1 - w0).detach(), (w3 - w0).detach()
    assert step.abs().max() > 0
    torch.testing.assert_close(step3[:8], 3 * step[:8], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(step3[8:], step[8:], rtol=1e-5, atol=1e-8)
    for name, p in plain.named_parameters():  # every other parameter: the same update
        if name != "0.weight":
            torch.testing.assert_close(dict(scaled.named_parameters())[name], p)


@pytest.mark.parametrize(
    ("step_scale", "needle"),
    [
        ({"9.weight": torch.ones(1)}, "'9.weight', which is not a parameter"),
        ({"0.weight": torch.ones(3)}, "has shape (3,), the parameter (32, 64)"),
    ],
)
def test_a_bad_step_scale_is_one_line(digits: Dataset, step_scale: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        train(mlp(), digits, cfg(max_steps=1), step_scale=step_scale)
    assert needle in str(info.value) and "\n" not in str(info.value)
    model = mlp()
    with pytest.raises(ConfigError) as info:
        scale_steps(torch.optim.Adam(model.parameters()), model, step_scale)
    assert str(info.value).startswith("scale_steps: ") and needle in str(info.value)


def _own_loop(model: nn.Module, digits: Dataset, steps: int, hook: bool, scale: dict) -> None:
    """A user's own Adam loop on the first batches; with ``hook`` the step scale comes from
    scale_steps, without it the loop applies the update rule itself."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    params = dict(model.named_parameters())
    handle = scale_steps(opt, model, scale) if hook else None
    x, y = digits.train.x[: 64 * steps], digits.train.y[: 64 * steps]
    for i in range(steps):
        before = {n: params[n].detach().clone() for n in scale}
        opt.zero_grad()
        F.cross_entropy(model(x[64 * i : 64 * (i + 1)]), y[64 * i : 64 * (i + 1)]).backward()
        opt.step()
        if not hook:
            with torch.no_grad():
                for n, s in scale.items():
                    params[n].copy_(before[n] + s * (params[n] - before[n]))
    if handle is not None:
        handle.remove()


def test_scale_steps_gives_a_users_own_loop_the_scaled_steps(digits: Dataset) -> None:
    w = dict(mlp().named_parameters())["0.weight"]
    scale = {"0.weight": torch.where(torch.arange(w.shape[0])[:, None] < 8, 3.0, 1.0).expand_as(w)}
    hooked, by_hand, plain = mlp(), mlp(), mlp()
    _own_loop(hooked, digits, 4, hook=True, scale=scale)
    _own_loop(by_hand, digits, 4, hook=False, scale=scale)
    _own_loop(plain, digits, 4, hook=True, scale={})
    for (name, a), b in zip(hooked.named_parameters(), by_hand.parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    # ...and moved the scaled rows further than the plain loop did
    start, end = (dict(m.named_parameters())["0.weight"].detach() for m in (mlp(), hooked))
    moved_plain = (dict(plain.named_parameters())["0.weight"].detach() - start).abs()
    assert (end - start).abs()[:8].sum() > 1.5 * moved_plain[:8].sum()
    # after remove() the optimizer steps as it did before: one more step of each is the same
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with scale_steps(opt, model, scale):
        pass
    twin = mlp()
    for m, o in ((model, opt), (twin, torch.optim.SGD(twin.parameters(), lr=0.1))):
        F.cross_entropy(m(digits.train.x[:64]), digits.train.y[:64]).backward()
        o.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b)
