"""The function-preservation contract, run over every operation × init × model family × mode."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from growsearch.exceptions import MorphError
from growsearch.morph import EXACT_INITS, INITS, deepen, widen
from tests.morph._models import family_cases
from tests.morph._models import rel_err as _rel_err

CASES = family_cases()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _ops(case):  # (kind, module name) pairs
    _, _, _, widen_names, deepen_names = case
    return [("widen", n) for n in widen_names] + [("deepen", n) for n in deepen_names]


def _apply(kind: str, model: nn.Module, name: str, init: str, x: torch.Tensor) -> nn.Module:
    if kind == "widen":
        out = model.get_submodule(name)
        width = (out.out_features if isinstance(out, nn.Linear) else out.out_channels) * 2 + 1
        return widen(model, name, width, init=init, seed=3)
    return deepen(model, name, init=init, calibration=x, seed=3)


PARAMS = [
    pytest.param(case, kind, name, init, id=f"{case[0]}-{kind}-{name}-{init}")
    for case in CASES
    for kind, name in _ops(case)
    for init in INITS
]


@pytest.mark.parametrize(("case", "kind", "name", "init"), PARAMS)
def test_morph_contract(case, kind: str, name: str, init: str) -> None:
    _, model, shape, _, _ = case
    torch.manual_seed(0)
    x = torch.randn(16, *shape)
    before = _state(model)
    child = _apply(kind, model, name, init, x)

    # the input model and its tensors are untouched
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)

    # existing layers keep their names
    old_names = {n for n, _ in model.named_modules() if n}
    assert old_names <= {n for n, _ in child.named_modules()}

    if init in EXACT_INITS:
        for train in (False, True):
            assert _rel_err(model, child, x, train) <= 1e-5, f"not exact (train={train})"
    else:
        child.eval()
        with torch.no_grad():
            assert child(x).shape == model.eval()(x).shape

    # the child trains (finite gradients everywhere), saves and reloads
    child.train()
    loss = child(x).square().mean()
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in child.parameters())
    buf = io.BytesIO()
    torch.save(child.state_dict(), buf)
    buf.seek(0)
    clone = copy.deepcopy(child)
    clone.load_state_dict(torch.load(buf, weights_only=True))
    child.eval()
    clone.eval()
    with torch.no_grad():
        assert torch.equal(child(x), clone(x))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_chained_morphs_stay_exact(case) -> None:
    _, model, shape, widen_names, deepen_names = case
    x = torch.randn(16, *shape)
    child = model
    for name in widen_names[:2]:
        child = _apply("widen", child, name, "net2net", x)
    child = _apply("deepen", child, deepen_names[0], "net2net", x)
    for name in widen_names[:1]:  # widen again after a deepen: the GraphModule is morphable too
        child = _apply("widen", child, name, "net2net", x)
    assert _rel_err(model, child, x, False) <= 1e-5


def test_random_split_breaks_symmetry_but_equal_split_does_not() -> None:
    _, model, shape, _, _ = CASES[0]  # spec mlp
    name = "layers.s0l0.linear"
    equal = widen(model, name, 48, split_std=0.0, seed=0)
    split = widen(model, name, 48, split_std=0.5, seed=0)
    w_eq = equal.get_submodule("layers.s0l1.linear").weight
    w_sp = split.get_submodule("layers.s0l1.linear").weight
    # a source unit and its replica: equal split gives identical columns, random split does not
    src = next(
        j
        for j in range(24)
        if any(
            torch.equal(equal.get_submodule(name).weight[j], equal.get_submodule(name).weight[k])
            for k in range(24, 48)
        )
    )
    rep = next(
        k
        for k in range(24, 48)
        if torch.equal(equal.get_submodule(name).weight[src], equal.get_submodule(name).weight[k])
    )
    assert torch.allclose(w_eq[:, src], w_eq[:, rep])
    assert not torch.allclose(w_sp[:, src], w_sp[:, rep])


def test_scratch_is_fresh() -> None:
    _, model, shape, widen_names, _ = CASES[1]
    x = torch.randn(16, *shape)
    child = widen(model, widen_names[0], 20, init="scratch", seed=0)
    assert _rel_err(model, child, x, False) > 1e-2


class TokenCNN(nn.Module):
    """Token ids (int64) into an embedding, then a 1-d conv over the sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 12)
        self.conv = nn.Conv1d(12, 16, 3, padding=1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        h = torch.relu(self.conv(self.emb(x).permute(0, 2, 1)))
        return self.fc(h.amax(-1))


def test_a_model_fed_integers_widens_on_an_integer_example_batch() -> None:
    model = TokenCNN().eval()
    x = torch.randint(0, 50, (8, 9))
    child = widen(model, "conv", 32, example_input=x, seed=3).eval()  # ran on floats before
    assert child.get_submodule("conv").out_channels == 32
    with torch.no_grad():
        assert _rel_err(model, child, x, False) <= 1e-5


class TokenEncoder(nn.Module):
    """Token ids into an embedding with a padding id, a learned position table and a
    LayerNorm over the embedding dimension, then a Linear per token."""

    def __init__(self, max_norm: float | None = None) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 8, padding_idx=0, max_norm=max_norm)
        self.pos = nn.Parameter(torch.randn(1, 9, 8))
        self.ln = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.ln(self.emb(x) + self.pos).mean(1))


@pytest.mark.parametrize("init", INITS)
def test_an_embedding_dimension_widens(init: str) -> None:
    """The embedding's weight is (ids, dim): its dim axis grows, the padding row stays zero,
    and the layers that read it (through the position table and the LayerNorm) follow."""
    torch.manual_seed(0)
    x = torch.randint(0, 50, (8, 9))
    x[:, -2:] = 0  # padding
    for model, width in ((TokenEncoder().eval(), 16), (TokenCNN().eval(), 20)):
        child = widen(model, "emb", width, init=init, example_input=x, seed=3).eval()
        emb = child.get_submodule("emb")
        assert emb.weight.shape == (50, width) and emb.embedding_dim == width
        if model.emb.padding_idx is not None:
            assert not emb.weight[0].any()
        if init in EXACT_INITS:
            assert _rel_err(model, child, x, False) <= 1e-5, (type(model).__name__, init)


def test_an_embedding_with_max_norm_is_refused() -> None:
    x = torch.randint(0, 50, (2, 9))
    with pytest.raises(MorphError, match=r"widen emb: embedding 'emb' renormalises its rows"):
        widen(TokenEncoder(max_norm=1.0), "emb", 16, example_input=x)
