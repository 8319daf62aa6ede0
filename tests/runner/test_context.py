"""The trial context a training loop is given: what ``ctx.report`` accepts and refuses, what
``ctx.restore`` puts back, and the recipe's warm-up and step scale as a loop sees them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from growsearch.arch import ArchSpec, build
from growsearch.checkpoint import load_checkpoint, save_checkpoint
from growsearch.exceptions import ReportError
from growsearch.runner._context import TrialContext
from growsearch.tasks import Classification

SPEC = ArchSpec.create("mlp", (4,), 3, [[5]])


def _ctx(
    saved: list, *, checkpoint=None, epochs: int = 3, step_scale=None, model=None
) -> TrialContext:
    def save(values, model, opt, extra) -> None:
        saved.append((values, opt, extra))

    return TrialContext(
        trial_id="t0001", device=torch.device("cpu"), epochs=epochs, lr=0.1, hparams={"options": {}},
        task=Classification(3), objective="val_acc", seed=0, warmup_steps=4, total_steps=40,
        step_scale=step_scale, checkpoint=checkpoint, save=save, model=model,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"val_loss": 0.3}, "reported ['val_loss'] but not the objective's metric 'val_acc'"),
        ({"val_acc": float("nan")}, "reported val_acc = nan, expected a finite number"),
        ({"val_acc": float("inf")}, "reported val_acc = inf"),
        ({"val_acc": "0.9"}, "reported val_acc = '0.9', expected a number"),
        ({"val_acc": 0.9, "note": None}, "reported note = None, expected a number"),
    ],
)
def test_a_report_that_breaks_the_contract_is_refused(metrics: dict, message: str) -> None:
    saved: list = []
    with pytest.raises(ReportError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _ctx(saved).report(metrics, model=nn.Linear(2, 2))
    assert saved == []  # nothing checkpointed


def test_reports_count_epochs_and_say_when_to_stop() -> None:
    saved: list = []
    ctx = _ctx(saved, epochs=2)
    model = nn.Linear(2, 2)
    assert ctx.report({"val_acc": torch.tensor(0.5)}, model=model) is False  # a 0-d tensor: ok
    assert ctx.report({"val_acc": 0.7}, model=model, state={"k": [1, 2]}) is True
    assert [v["val_acc"] for v, _, _ in saved] == [0.5, 0.7] and ctx.epoch == 2
    assert saved[1][2]["user_state"] == {"k": [1, 2]}
    with pytest.raises(ReportError, match="state holds values JSON cannot store"):
        ctx.report({"val_acc": 0.7}, model=model, state={"t": torch.ones(1)})


def test_a_scheduler_stop_inside_report_returns_true_then_ends_the_loop() -> None:
    """Ray stops a trial by ending its thread inside its report (SystemExit): report says
    True so the loop can return, and a loop that reports again anyway is ended then."""

    def stopped(*_: object) -> None:
        raise SystemExit(0)

    ctx = _ctx([], epochs=10)
    ctx._save = stopped
    assert ctx.report({"val_acc": 0.5}, model=nn.Linear(2, 2)) is True and ctx.stopped
    with pytest.raises(SystemExit):
        ctx.report({"val_acc": 0.6}, model=nn.Linear(2, 2))


def test_restore_puts_back_what_the_last_report_saved(tmp_path) -> None:
    model = build(SPEC, seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    model(torch.randn(8, 4)).sum().backward()
    opt.step()
    sched.step()
    meta = {"epoch": 2, "scheduler": sched.state_dict(), "user_state": {"trained": [0, 1]}}
    save_checkpoint(tmp_path / "ck", SPEC, model, optimizer_state=opt.state_dict(), meta=meta)

    ck = load_checkpoint(tmp_path / "ck")
    fresh = build(SPEC, seed=2)
    fresh_opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    fresh_sched = torch.optim.lr_scheduler.StepLR(fresh_opt, step_size=1, gamma=0.5)
    ctx = _ctx([], checkpoint=ck)
    assert ctx.restore(fresh, fresh_opt, fresh_sched) == 2
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert fresh_opt.param_groups[0]["lr"] == pytest.approx(0.05)
    momentum = [s["momentum_buffer"] for s in fresh_opt.state.values()]
    assert momentum and all(m is not None for m in momentum)
    assert fresh_sched.last_epoch == 1 and ctx.state == {"trained": [0, 1]}
    assert _ctx([]).restore(fresh, fresh_opt) == 0  # a new trial starts at epoch 0


def test_warmup_climbs_linearly_and_scale_steps_moves_new_entries_further() -> None:
    model = nn.Linear(2, 2, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    warmup = _ctx([]).warmup(opt)
    rates = []
    for _ in range(6):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        warmup.step()
    assert rates == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])

    scale = {"weight": torch.tensor([[1.0, 1.0], [3.0, 3.0]])}  # row 1: a new unit, steps × 3
    ctx = _ctx([], step_scale=scale, model=model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    with ctx.scale_steps(opt):
        model.weight.grad = torch.ones(2, 2)
        opt.step()
    step = before - model.weight.detach()
    assert step[0].tolist() == pytest.approx([0.1, 0.1]) and step[1].tolist() == pytest.approx(
        [0.3, 0.3]
    )
    model.weight.grad = torch.ones(2, 2)
    before = model.weight.detach().clone()
    opt.step()  # outside the block: one rate again
    assert (before - model.weight.detach()).flatten().tolist() == pytest.approx([0.1] * 4)
