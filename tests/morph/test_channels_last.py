"""Deepen where the channels are the last axis: tokens (B, T, C) and channels-last maps
(B, H, W, C) between permutes. The new layer must act on the channels, not on the sequence or
a spatial axis: the child computes the parent's function on inputs of any length or size.
And insertion sites whose channels no width group reaches (a transformer's residual stream):
blocks of a fixed width."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from growsearch.arch import Deepen
from growsearch.exceptions import MorphError
from growsearch.morph import analyse_model, deepen, insert_block, widen


class Tokens(nn.Module):
    """(B, T, 4) → Linear → a normalisation over the channels → ReLU → Linear → mean over T."""

    def __init__(self, norm: str) -> None:
        super().__init__()
        self.emb = nn.Linear(4, 16)
        self.norm = nn.LayerNorm(16) if norm == "layer" else nn.BatchNorm1d(16)
        self.act = nn.ReLU()
        self.fc = nn.Linear(16, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        if isinstance(self.norm, nn.BatchNorm1d):  # BatchNorm wants (B, C, T)
            h = self.norm(h.transpose(1, 2)).transpose(1, 2)
        else:
            h = self.norm(h)
        return self.out(self.fc(self.act(h)).mean(1))


class ChannelsLast(nn.Module):
    """A ConvNeXt-style block: a depthwise conv, then LayerNorm and two Linears on
    (B, H, W, C), a layer scale, and back to (B, C, H, W) for the residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.dw = nn.Conv2d(16, 16, 7, padding=3, groups=16)
        self.ln = nn.LayerNorm(16)
        self.pw1 = nn.Linear(16, 32)
        self.act = nn.ReLU()
        self.pw2 = nn.Linear(32, 16)
        self.gamma = nn.Parameter(torch.full((16,), 0.5))
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.ln(self.dw(x).permute(0, 2, 3, 1))
        y = self.pw2(self.act(self.pw1(y))) * self.gamma
        return self.head((x + y.permute(0, 3, 1, 2)).mean((2, 3)))


class ConvThenTokens(nn.Module):
    """A Conv1d over (B, 4, T), its channels moved last (``torch.movedim``), then LayerNorm,
    ReLU and a Linear on (B, T, C)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 16, 3, padding=1)
        self.ln = nn.LayerNorm(16)
        self.act = nn.ReLU()
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.ln(torch.movedim(self.conv(x), 1, -1)))
        return self.fc(h).mean(1)


class MiddleChannels(nn.Module):
    """Channels moved to axis 2 of 4 (neither 1 nor last) before a ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(x).transpose(1, 2))  # (B, H, C, W)
        return self.head(y.mean((1, 3)))


def _trained_stats(model: nn.Module, x: torch.Tensor) -> nn.Module:
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


CASES = [  # model, input, site, its channels, a longer or larger input
    (lambda: Tokens("layer"), (8, 7, 4), "act", 16, (3, 11, 4)),
    (lambda: Tokens("layer"), (8, 7, 4), "norm", 16, (3, 11, 4)),
    (lambda: Tokens("batch"), (8, 7, 4), "act", 16, (3, 11, 4)),
    (ChannelsLast, (4, 1, 8, 8), "ln", 16, (2, 1, 12, 10)),
    (ChannelsLast, (4, 1, 8, 8), "act", 32, (2, 1, 12, 10)),
    (ConvThenTokens, (8, 4, 9), "act", 16, (3, 4, 13)),
]


@pytest.mark.parametrize(
    ("make", "shape", "site", "c", "other"), CASES, ids=[f"{i}-{x[2]}" for i, x in enumerate(CASES)]
)
def test_deepen_acts_on_the_last_axis_channels(make, shape, site, c, other) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    x = torch.randn(shape)
    model = _trained_stats(make(), x)
    child = deepen(model, site, calibration=x).eval()
    new = child.get_submodule(f"{site}_deepen")
    linears = [m for m in new.modules() if isinstance(m, nn.Linear)]
    assert linears and not any(isinstance(m, nn.modules.conv._ConvNd) for m in new.modules())
    assert all(m.in_features == c == m.out_features for m in linears)  # the channels
    assert not any(isinstance(m, nn.BatchNorm1d) for m in new.modules())  # would normalise T
    y = torch.randn(other)  # another length or size: the new layer does not depend on it
    with torch.no_grad():
        assert float((child(x) - model(x)).abs().max()) <= 1e-5
        assert float((child(y) - model(y)).abs().max()) <= 1e-5
    child.train()
    child(x).square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in new.parameters())


def test_channels_last_sites_are_listed_and_grow_exactly() -> None:
    """The analysis offers sites inside the channels-last part; each deepens exactly."""
    model = _trained_stats(ChannelsLast(), torch.randn(4, 1, 8, 8))
    space = analyse_model(model, (4, 1, 8, 8))
    x = torch.randn(2, 1, 8, 8)
    sites = {s.module: s for s in space.sites}
    # the LayerNorm and the Linears' outputs on (B, H, W, C): sites for a Linear on C
    assert {"ln", "act", "pw2"} <= set(sites), sorted(sites)
    assert [sites[m].dims for m in ("ln", "act", "pw2")] == [0, 0, 0]
    for site in space.sites:
        child = deepen(model, site.module, calibration=x).eval()
        with torch.no_grad():
            assert float((child(x) - model(x)).abs().max()) <= 1e-5, site.module


def test_channels_on_a_middle_axis_are_refused_in_one_line() -> None:
    with pytest.raises(MorphError, match="channels on axis 2 of 4") as e:
        deepen(MiddleChannels().eval(), "act", calibration=torch.randn(2, 1, 8, 8))
    assert "\n" not in str(e.value)


def test_a_vit_on_torchs_encoder_layers_has_its_stream_as_one_width_group() -> None:
    """torch's TransformerEncoderLayer passes its residual stream (d_model) on: the patch
    embedding, both encoder layers and the final norm are one width group, which grows by
    integer factors (the layers' LayerNorms) in whole heads; the outputs of the encoder
    layers and of the norm are sites of that group, and a block inserted at each, or a
    widening of the stream, keeps the function."""
    from tests.fixtures.zoo import ZOO, make_model

    model = make_model(ZOO["vit"][0]).eval()
    x = torch.randn(4, 1, 8, 8)
    space = analyse_model(model, (4, 1, 8, 8))
    (group,) = space.groups
    assert (group.producers, group.width, group.integer_factors, group.multiple_of) == (
        ("patch",),
        32,
        True,
        8,
    )
    sites = {s.module: s for s in space.sites}
    assert {"encoder.0", "encoder", "norm"} <= set(sites)
    for name in ("encoder.0", "encoder", "norm"):
        assert sites[name].group == "patch" and sites[name].dims == 0
    wide = widen(model, "patch", 64, example_input=x).eval()
    assert wide.encoder[1].self_attn.num_heads == 8
    with torch.no_grad():
        assert float((wide(x) - model(x)).abs().max()) <= 1e-5
    for site in space.sites:
        child = insert_block(model, site.module, f"b_{site.name}", site.dims, site.channels).eval()
        with torch.no_grad():
            block = child.get_submodule(f"gs_blocks.b_{site.name}")
            assert float((child(x) - model(x)).abs().max()) <= 1e-5, site.module
            block.layer2.weight.normal_()  # the block is really on the path
            assert float((child(x) - model(x)).abs().max()) > 1e-3, site.module


def test_a_spec_saved_with_four_field_sites_still_loads() -> None:
    """Specs written before fixed-width sites list (name, module, group, dims)."""
    from growsearch.arch import ArchSpec

    spec = ArchSpec.from_user_model("tests/fixtures/user_models.py:digits_net", None, (1, 8, 8), 10)
    d = spec.to_dict()
    d["custom"]["sites"] = [s[:4] for s in d["custom"]["sites"]]
    old = ArchSpec.from_dict(d)
    site = old.custom.sites[0]
    grown = old.apply(Deepen(site[0], old.new_layer_name(site[0])))
    assert grown.layers[-1].width == old.width_of(site[2])
