"""Widening through torch's sequence layers: nn.RNN/GRU/LSTM, nn.MultiheadAttention and the
transformer layers. The child computes its parent's function (eval and train mode, every exact
init), the attention grows by whole heads or by a larger head dimension, and what cannot be
exact is refused in one line that names the module and the reason."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from growsearch.exceptions import MorphError
from growsearch.morph import EXACT_INITS, analyse_model, insert_block, widen
from tests.morph._models import rel_err as _rel_err

TOL = 1e-5


def _trained_norms(model: nn.Module) -> nn.Module:
    """LayerNorms away from their (1, 0) initial values, as training leaves them."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    return model


class Recurrent(nn.Module):
    """proj -> a recurrent layer -> one of its outputs -> head."""

    def __init__(self, cls: type, read: str, *, batch_first: bool = True, **kw: object) -> None:
        super().__init__()
        self.read, self.batch_first = read, batch_first
        self.proj = nn.Linear(3, 6)
        self.rnn = cls(6, 5, batch_first=batch_first, **kw)
        directions = 2 if kw.get("bidirectional") else 1
        self.head = nn.Linear(5 * (directions if read in ("out", "last") else 1), 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, 3)
        steps = torch.tanh(self.proj(x if self.batch_first else x.transpose(0, 1)))
        out, state = self.rnn(steps)
        h = state[0] if isinstance(self.rnn, nn.LSTM) else state
        if self.read == "out":
            return self.head(out.mean(1 if self.batch_first else 0))
        if self.read == "last":
            return self.head(out[:, -1] if self.batch_first else out[-1])
        if self.read == "h_n":
            return self.head(h[-1])
        return self.head(state[1][-1])  # c_n of an LSTM


class WithState(nn.Module):
    """An LSTM started from a learned (h0, c0), widened alongside its hidden size."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 6)
        self.lstm = nn.LSTM(6, 5, num_layers=2, batch_first=True)
        self.h0 = nn.Parameter(0.5 * torch.randn(2, 1, 5))
        self.c0 = nn.Parameter(0.5 * torch.randn(2, 1, 5))
        self.head = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h0 = self.h0.expand(-1, b, -1).contiguous()
        c0 = self.c0.expand(-1, b, -1).contiguous()
        out, _ = self.lstm(self.proj(x), (h0, c0))
        return self.head(out[:, -1])


class Attention(nn.Module):
    """A residual block on nn.MultiheadAttention, optionally pre-norm."""

    def __init__(self, *, norm: bool, batch_first: bool = True, bias: bool = True) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.inp = nn.Linear(3, 8)
        self.norm = nn.LayerNorm(8) if norm else nn.Identity()
        self.attn = nn.MultiheadAttention(8, 2, bias=bias, batch_first=batch_first)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x if self.batch_first else x.transpose(0, 1))
        y = self.norm(h)
        h = h + self.attn(y, y, y, need_weights=False)[0]
        return self.head(h.mean(1 if self.batch_first else 0))


class Encoder(nn.Module):
    def __init__(self, *, norm_first: bool, stack: bool, decoder: bool = False) -> None:
        super().__init__()
        self.decoder = decoder
        self.inp = nn.Linear(3, 8)
        self.mem = nn.Linear(3, 8)
        if decoder:
            self.layer: nn.Module = nn.TransformerDecoderLayer(
                8, 2, 12, dropout=0.0, batch_first=True, norm_first=norm_first
            )
        else:
            layer = nn.TransformerEncoderLayer(
                8, 2, 12, dropout=0.0, batch_first=True, norm_first=norm_first
            )
            self.layer = (
                nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8), enable_nested_tensor=False)
                if stack
                else layer
            )
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        out = self.layer(h, self.mem(x)) if self.decoder else self.layer(h)
        return self.head(out.mean(1))


CASES = {
    "gru-last": (lambda: Recurrent(nn.GRU, "last"), ["rnn", "proj"]),
    "gru-h_n-time-major": (lambda: Recurrent(nn.GRU, "h_n", batch_first=False), ["rnn", "proj"]),
    "lstm-2x-bidirectional": (
        lambda: Recurrent(nn.LSTM, "out", num_layers=2, bidirectional=True),
        ["rnn", "proj"],
    ),
    "lstm-c_n": (lambda: Recurrent(nn.LSTM, "c_n"), ["rnn", "proj"]),
    "rnn-relu-3x-no-bias": (
        lambda: Recurrent(nn.RNN, "last", num_layers=3, nonlinearity="relu", bias=False),
        ["rnn", "proj"],
    ),
    "lstm-learned-state": (WithState, ["lstm", "proj"]),
    "attention": (lambda: Attention(norm=False), ["inp"]),
    "attention-time-major-no-bias": (
        lambda: Attention(norm=False, batch_first=False, bias=False),
        ["inp"],
    ),
    "attention-pre-norm": (lambda: Attention(norm=True), ["inp"]),
    "encoder-layer": (lambda: Encoder(norm_first=False, stack=False), ["inp"]),
    "encoder-stack-pre-norm": (lambda: Encoder(norm_first=True, stack=True), ["inp"]),
    "decoder-layer": (lambda: Encoder(norm_first=False, stack=False, decoder=True), ["inp"]),
}


def _width(model: nn.Module, target: str, groups: dict[str, object]) -> int:
    """The smallest width the analysis allows above the current one."""
    g = groups[target]
    w = g.width  # type: ignore[attr-defined]
    return 2 * w if g.integer_factors else w + g.multiple_of  # type: ignore[attr-defined]


@pytest.mark.parametrize("init", EXACT_INITS)
@pytest.mark.parametrize("case", list(CASES))
def test_widening_through_sequence_layers_is_exact(case: str, init: str) -> None:
    make, targets = CASES[case]
    torch.manual_seed(0)
    model = _trained_norms(make())
    x = torch.randn(4, 7, 3)
    space = analyse_model(model, x)
    groups = {p: g for g in space.groups for p in g.producers}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for target in targets:
        assert target in groups, f"{case}: {target} is not a width group: {space}"
        child = widen(model, target, _width(model, target, groups), init=init, seed=1)
        for train in (False, True):
            assert _rel_err(model, child, x, train) <= TOL, (case, target, train)
        child.train()
        child(x).square().mean().backward()  # the child trains
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in child.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the parent is untouched


def test_the_hidden_size_widens_every_gate_and_layer() -> None:
    model = Recurrent(nn.LSTM, "out", num_layers=2, bidirectional=True)
    child = widen(model, "rnn", 9, init="net2net")
    lstm = child.rnn
    assert lstm.hidden_size == 9 and lstm.input_size == 6
    assert lstm.weight_hh_l1_reverse.shape == (4 * 9, 9)
    assert lstm.weight_ih_l1.shape == (4 * 9, 2 * 9)  # reads both directions of layer 0
    assert child.head.in_features == 18


@pytest.mark.parametrize(
    ("width", "heads", "head_dim"),
    [(12, 3, 4), (16, 4, 4), (10, 2, 5), (14, 2, 7)],  # whole heads added, or larger heads
)
def test_attention_grows_by_heads_or_by_head_dimension(
    width: int, heads: int, head_dim: int
) -> None:
    torch.manual_seed(0)
    model = Attention(norm=False)
    x = torch.randn(4, 7, 3)
    for init in EXACT_INITS:
        child = widen(model, "inp", width, init=init, seed=2)
        assert (child.attn.num_heads, child.attn.head_dim, child.attn.embed_dim) == (
            heads,
            head_dim,
            width,
        )
        assert _rel_err(model, child, x, False) <= TOL


def test_a_width_that_fits_neither_heads_nor_head_dimension_is_refused() -> None:
    # 2 heads of 4: 11 adds 3 channels (not a whole head) and is odd (not 2 larger heads)
    with pytest.raises(MorphError, match=r"attention in 'attn' has 2 heads of dimension 4"):
        widen(Attention(norm=False), "inp", 11, example_input=(2, 7, 3))


def test_the_search_space_grows_attention_groups_by_whole_heads() -> None:
    space = analyse_model(Attention(norm=False), (2, 7, 3))
    (group,) = space.groups
    assert (group.width, group.multiple_of) == (8, 4)


def test_a_grown_model_keeps_its_function_through_a_chain_of_morphs() -> None:
    """The seed's weights survive: widen the hidden size, then the projection that feeds it,
    insert a residual block after the projection's activation, and widen again."""
    torch.manual_seed(0)
    model = Recurrent(nn.GRU, "last", num_layers=2)
    x = torch.randn(4, 7, 3)
    child = widen(model, "rnn", 8, init="net2net", seed=0)
    child = widen(child, "proj", 9, init="zero", seed=1)
    site = analyse_model(child, x).sites[0]  # the projection's output
    child = insert_block(child, site.module, "b0", site.dims, site.channels)
    child = widen(child, "rnn", 12, init="net2net", seed=2)
    assert child.rnn.hidden_size == 12 and child.rnn.input_size == 9
    assert _rel_err(model, child, x, False) <= TOL


class Projected(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 6)
        self.lstm = nn.LSTM(6, 5, proj_size=3, batch_first=True)
        self.head = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.proj(x))[0][:, -1])


class CrossWidth(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(3, 8)
        self.kv = nn.Linear(3, 6)
        self.attn = nn.MultiheadAttention(8, 2, kdim=6, vdim=6, batch_first=True)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kv = self.kv(x)
        return self.head(self.attn(self.q(x), kv, kv)[0].mean(1))


class Weights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(3, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        out, weights = self.attn(h, h, h)
        return self.head((out + weights.sum(-1, keepdim=True)).mean(1))


class Packed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 6)
        self.gru = nn.GRU(6, 5, batch_first=True)
        self.head = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = torch.full((x.shape[0],), x.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(self.proj(x), lengths, batch_first=True)
        _, h = self.gru(packed)
        return self.head(h[-1])


@pytest.mark.parametrize(
    ("model", "target", "needle"),
    [
        (Projected, "lstm", "module 'lstm' has proj_size=3"),
        (CrossWidth, "q", "module 'attn' has kdim=6 and vdim=6 differ from embed_dim=8"),
        (Weights, "inp", "uses the attention weights of module 'attn'"),
        (Packed, "gru", "cannot trace Packed with torch.fx"),
    ],
    ids=["proj_size", "kdim", "attention-weights", "packed-sequence"],
)
def test_what_cannot_be_exact_is_refused_in_one_line(model: type, target: str, needle: str) -> None:
    with pytest.raises(MorphError) as info:
        widen(model(), target, 16, example_input=(2, 7, 3))
    message = str(info.value)
    assert needle in message and "\n" not in message, message


def test_a_refused_layer_leaves_the_rest_of_the_model_searchable() -> None:
    space = analyse_model(Projected(), (2, 7, 3))
    assert [g.producers for g in space.groups] == [("proj",)]
    assert any(r.module == "lstm" and "proj_size" in r.reason for r in space.refused)


@settings(max_examples=25, deadline=None)
@given(
    cls=st.sampled_from([nn.RNN, nn.GRU, nn.LSTM]),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    read=st.sampled_from(["out", "last", "h_n"]),
    grow=st.integers(1, 6),
    init=st.sampled_from(sorted(EXACT_INITS)),
)
def test_random_recurrent_models_stay_exact(
    cls: type,
    layers: int,
    bidirectional: bool,
    batch_first: bool,
    read: str,
    grow: int,
    init: str,
) -> None:
    torch.manual_seed(0)
    model = Recurrent(
        cls, read, batch_first=batch_first, num_layers=layers, bidirectional=bidirectional
    )
    x = torch.randn(3, 6, 3)
    child = widen(model, "rnn", 5 + grow, init=init, seed=grow)
    for train in (False, True):
        assert _rel_err(model, child, x, train) <= TOL


def test_both_directions_final_states_side_by_side_widen_together() -> None:
    """``torch.cat([h[-2], h[-1]], 1)`` repeats the hidden channels (forward, backward): the
    head's columns for both copies follow the widening."""
    from tests.fixtures.zoo import ZOO, make_model

    model = make_model(ZOO["lstm"][0]).eval()
    x = torch.randn(4, 1, 40)
    groups = {g.producers[0]: g.width for g in analyse_model(model, x).groups}
    assert groups == {"proj": 16, "rnn": 32}
    for init in EXACT_INITS:
        child = widen(model, "rnn", 48, init=init, example_input=x)
        assert child.head.in_features == 96
        assert _rel_err(model, child, x, False) <= TOL


def test_flops_of_a_model_whose_attention_query_is_a_parameter_view() -> None:
    """``self.query.expand(...)`` under no_grad is a view that requires grad without a grad_fn,
    which torch's FLOP counter cannot hook: the count runs with autograd on."""
    from growsearch.arch import count_flops
    from tests.fixtures.zoo import ZOO, make_model

    model = make_model(ZOO["conv_lstm_attention_pool"][0])
    assert count_flops(model, (1, 40)) > 0
