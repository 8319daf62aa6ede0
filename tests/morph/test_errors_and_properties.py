"""Unsupported graphs give a MorphError naming the module; random widths/positions stay exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from growsearch.arch import ArchSpec, Deepen, Widen, build, module_name
from growsearch.grow import apply_op
from growsearch.morph import MorphError, deepen, widen
from tests.morph._models import randomise_bn


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:  # control flow on data: not traceable
            return self.fc(x)
        return x


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.b(F.relu(self.a(F.relu(self.a(x))))))


class AddInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.a(x) + x)


class CatThenAdd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 3)
        self.c = nn.Linear(4, 6)
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        return self.out(torch.cat([self.a(x), self.b(x)], dim=1) + self.c(x))


class Grouped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(4, 8, 3, padding=1)
        self.g = nn.Conv1d(8, 8, 3, padding=1, groups=2)
        self.out = nn.Conv1d(8, 2, 1)

    def forward(self, x):
        return self.out(self.g(F.relu(self.a(x))))


class LinearOnMap(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(1, 4, 3, padding=1)
        self.fc = nn.Linear(10, 2)

    def forward(self, x):
        return self.fc(self.a(x))  # a Linear over the length axis, not the channels


class Mean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.out = nn.Linear(1, 2)

    def forward(self, x):
        return self.out(self.a(x).mean(1, keepdim=True))


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(4, 4)
        self.att = nn.MultiheadAttention(4, 2, batch_first=True)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        # att returns (output, weights); its width is tied to its inputs', here the model's own
        return self.out(self.emb(x) + self.att(x, x, x)[0])


class Split(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 8)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.a(x) + self.b(x).chunk(2, dim=-1)[0])


MLP = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))

ERRORS = [
    ("untraceable", lambda: widen(DataDependent(), "fc", 8), "cannot trace"),
    ("unknown layer", lambda: widen(MLP, "7", 16), "no layer '7'"),
    ("not a linear/conv", lambda: widen(MLP, "1", 16), "BatchNorm1d"),
    ("output layer", lambda: widen(MLP, "3", 4), "model's output"),
    ("not wider", lambda: widen(MLP, "0", 8), "must be an integer > 8"),
    ("shared module", lambda: widen(Shared(), "a", 8), "module 'a' is called 2 times"),
    ("add with input", lambda: widen(AddInput(), "a", 8), "model's input"),
    ("cat then add", lambda: widen(CatThenAdd(), "a", 5), "module 'c'"),
    ("grouped conv", lambda: widen(Grouped(), "a", 12), "grouped convolution 'g'"),
    ("linear on a map", lambda: widen(LinearOnMap(), "a", 8), "model's output"),
    ("unsupported op", lambda: widen(Mean(), "a", 8), "mean"),
    (
        "an attention that reads the model's input",
        lambda: widen(Attention(), "emb", 8, example_input=(2, 5, 4)),
        "combined with the model's input 'x'",
    ),
    ("a split", lambda: widen(Split(), "a", 8, example_input=(2, 4)), "a part of a split"),
    ("unknown init", lambda: widen(MLP, "0", 16, init="fancy"), "must be one of"),
    ("deepen unknown", lambda: deepen(MLP, "9"), "no module '9'"),
    ("deepen needs calibration", lambda: deepen(MLP, "2"), "calibration"),
    (
        "deepen non-relu layer",
        lambda: deepen(MLP, "1", block="layer", calibration=torch.randn(8, 4)),
        "not ReLU-like",
    ),
    ("deepen bad block", lambda: deepen(MLP, "2", block="triple"), "block must be one of"),
    (
        "deepen name taken",
        lambda: deepen(MLP, "2", new_name="0", calibration=torch.randn(8, 4)),
        "already exists",
    ),
]


@pytest.mark.parametrize(("fn", "needle"), [pytest.param(f, n, id=i) for i, f, n in ERRORS])
def test_clear_errors(fn, needle: str) -> None:
    with pytest.raises(MorphError, match=None) as info:
        fn()
    assert needle in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_spec_op_errors_are_morph_errors() -> None:
    spec = ArchSpec.create("cnn", (1, 40), 10, [[8], [8]])
    model = build(spec)
    with pytest.raises(MorphError, match="must exceed"):
        apply_op(model, spec, Widen("s0l0", 4))
    with pytest.raises(MorphError, match="no layer named"):
        apply_op(model, spec, Deepen("nope", "x"))


def _exact(parent: nn.Module, child: nn.Module, x: torch.Tensor) -> float:
    parent.eval()
    child.eval()
    with torch.no_grad():
        a, b = parent(x), child(x)
    return float((a - b).abs().max() / a.abs().max())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    family=st.sampled_from(["mlp", "cnn", "resnet"]),
    widths=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    data=st.data(),
)
def test_random_widen_and_deepen_sequences_stay_exact(family, widths, data) -> None:
    stage_widths = [max(widths)] * len(widths) if family == "resnet" else None
    spec = ArchSpec.create(family, (1, 16), 5, [[w] for w in widths], stage_widths)
    model = randomise_bn(build(spec, seed=0), seed=data.draw(st.integers(0, 99)))
    x = torch.randn(8, 1, 16)
    child, child_spec = model, spec
    for i in range(data.draw(st.integers(1, 3))):
        if data.draw(st.booleans()):
            target = data.draw(st.sampled_from(child_spec.widen_targets()))
            op = Widen(target, child_spec.width_of(target) + data.draw(st.integers(1, 9)))
        else:
            after = data.draw(st.sampled_from([layer.name for layer in child_spec.layers]))
            op = Deepen(after, child_spec.new_layer_name(after))
        child, child_spec = apply_op(child, child_spec, op, calibration=x, seed=i)
    # the child is exactly build(child_spec) with the morphed weights
    assert isinstance(child, type(build(child_spec)))
    assert _exact(model, child, x) <= 1e-5


def test_spec_morph_agrees_with_building_the_child_spec() -> None:
    spec = ArchSpec.create("cnn", (1, 40), 10, [[8, 8], [12]], kernel_size=5)
    model = randomise_bn(build(spec, seed=0))
    op = Widen("s0l1", 20)
    raw = widen(model, module_name(spec, "s0l1"), 20)
    rebuilt = build(spec.apply(op))
    rebuilt.load_state_dict(raw.state_dict(), strict=True)
    x = torch.randn(8, 1, 40)
    assert _exact(raw, rebuilt, x) == 0.0
