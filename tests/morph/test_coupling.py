"""The coupling analysis on the patterns real models use: every supported pattern widens
exactly (and its whole group widens together), every unsupported one is refused in one line
that names the node, and the rest of the model stays searchable."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from growsearch.exceptions import MorphError
from growsearch.morph import analyse_model, deepen, insert_block, widen


class PosEmbed(nn.Module):
    """Tokens with a learned position embedding and a per-channel scale (get_attr operands)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 8)
        self.pos = nn.Parameter(torch.randn(1, 5, 8))
        self.scale = nn.Parameter(torch.rand(8) + 0.5)
        self.act = nn.PReLU(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):  # (B, 5, 6)
        h = (self.embed(x) + self.pos) * self.scale  # (B, 5, 8)
        h = self.act(h.transpose(1, 2)).transpose(1, 2)  # PReLU on (B, C, T)
        return self.head(h.sum(1))


class Norms(nn.Module):
    """LayerNorm over (C, H, W) and a GroupNorm with 2 groups: integer factors only."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 6, 3, padding=1)
        self.ln = nn.LayerNorm([6, 4, 4])
        self.b = nn.Conv2d(6, 4, 3, padding=1)
        self.gn = nn.GroupNorm(2, 4)
        self.head = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):  # (B, 2, 4, 4)
        x = F.gelu(self.ln(self.a(x)))
        x = F.silu(self.gn(self.b(x)))
        return self.head(torch.flatten(x, 1))


class Depthwise(nn.Module):
    """A depthwise conv with channel multiplier 2, then an unflatten/permute round trip."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(1, 4, 3, padding=1)
        self.dw = nn.Conv1d(4, 8, 3, padding=1, groups=4)
        self.bn = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):  # (B, 1, 10)
        x = F.hardswish(self.bn(self.dw(self.a(x))))  # (B, 8, 10)
        x = x.permute(0, 2, 1).reshape(x.shape[0], 10, -1)  # (B, L, C)
        return self.head(x.mean(1))


class Refusing(nn.Module):
    """One layer that cannot be widened (its channels are chunked), one that can."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 8)
        self.b = nn.Linear(4, 6)
        self.head = nn.Linear(4 + 6, 3)

    def forward(self, x):
        u, _ = self.a(x).chunk(2, dim=1)
        return self.head(torch.cat([u, F.relu(self.b(x))], 1))


class HardCoded(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(1, 4, 3, padding=1)
        self.head = nn.Linear(40, 3)

    def forward(self, x):  # (B, 1, 10)
        return self.head(self.a(x).view(-1, 40))


class Decoder(nn.Module):
    """A small U-Net: a strided encoder, a transposed conv back up (weight (in, out, k, k)),
    BatchNorm after it, and a skip concat of the encoder's first map with the upsampled one."""

    def __init__(self, up_groups: int = 1) -> None:
        super().__init__()
        self.enc1 = nn.Conv2d(1, 4, 3, padding=1)
        self.enc2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2, groups=up_groups)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x):  # (B, 1, 8, 8)
        a = F.relu(self.enc1(x))
        u = F.relu(self.bn(self.up(F.relu(self.enc2(a)))))
        return self.head(torch.cat([a, u], 1)).mean((2, 3))


class Upsampler1d(nn.Module):
    """Transposed 1-D convs first (the input shape is guessed from one), then a Linear over a
    flatten of a fixed length."""

    def __init__(self) -> None:
        super().__init__()
        self.up1 = nn.ConvTranspose1d(2, 5, 3)
        self.up2 = nn.ConvTranspose1d(5, 3, 3, stride=2, output_padding=1)
        self.head = nn.Linear(3 * 26, 2)

    def forward(self, x):  # (B, 2, 10)
        return self.head(torch.flatten(F.relu(self.up2(torch.tanh(self.up1(x)))), 1))


def _randomise(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            for name in ("weight", "bias", "running_mean"):
                t = getattr(m, name, None)
                if (
                    isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm)
                    and t is not None
                ):
                    t.copy_(0.5 + torch.rand(t.shape, generator=g))
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model.eval()


CASES = [
    (PosEmbed, (4, 5, 6), {"embed": 12}),
    (Norms, (4, 2, 4, 4), {"a": 12, "b": 8}),
    (Depthwise, (4, 1, 10), {"a": 6}),
    (Refusing, (4, 4), {"b": 9}),
    (Decoder, (4, 1, 8, 8), {"enc1": 7, "enc2": 13, "up": 9}),
    (Upsampler1d, (4, 2, 10), {"up1": 8, "up2": 7}),
]


@pytest.mark.parametrize(("cls", "shape", "widths"), CASES, ids=[c[0].__name__ for c in CASES])
def test_supported_patterns_widen_exactly(cls, shape, widths) -> None:
    torch.manual_seed(0)
    model = _randomise(cls())
    x = torch.randn(shape)
    with torch.no_grad():
        before = model(x)
    for name, width in widths.items():
        child = widen(model, name, width, example_input=x).eval()
        with torch.no_grad():
            after = child(x)
        assert float((after - before).abs().max() / before.abs().max()) <= 1e-5, name
        space = analyse_model(child, x)
        assert space.group_of(name) is not None and space.group_of(name).width == width


def test_normalised_groups_grow_by_integer_factors_only() -> None:
    model = _randomise(Norms())
    space = analyse_model(model, (2, 2, 4, 4))
    assert {g.name: g.integer_factors for g in space.groups} == {"a": True, "b": True}
    with pytest.raises(MorphError, match=r"multiple of 6, got 9"):
        widen(model, "a", 9, example_input=(2, 2, 4, 4))


def test_refusals_name_the_node_and_keep_the_rest_searchable() -> None:
    space = analyse_model(Refusing(), (2, 4))
    assert [g.name for g in space.groups] == ["b"]
    reasons = {r.module: r.reason for r in space.refused}
    assert "chunk" in reasons["a"] or "split" in reasons["a"], reasons["a"]
    assert "model's output" in reasons["head"]
    assert all("\n" not in r for r in reasons.values())


def test_a_hard_coded_size_is_refused_not_crashed() -> None:
    with pytest.raises(MorphError, match="hard-code"):
        widen(HardCoded(), "a", 8, example_input=(2, 1, 10))


def test_residual_groups_and_inserted_blocks() -> None:
    """A projection shortcut ties two convs into one group; a block inserted at a site is the
    identity, keeps every existing name, and its inner width is a new group."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.down = nn.Conv2d(3, 8, 1)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            y = self.conv2(F.relu(self.conv1(x))) + self.down(x)
            return self.head(F.adaptive_avg_pool2d(F.relu(y), 1).flatten(1))

    model = Block().eval()
    x = torch.randn(2, 3, 6, 6)
    space = analyse_model(model, x)
    groups = {g.name: set(g.producers) for g in space.groups}
    assert groups == {"conv1": {"conv1"}, "conv2": {"conv2", "down"}}
    site = next(s for s in space.sites if s.group == "conv2")
    grown = insert_block(model, site.module, "b0", site.dims, 8).eval()
    assert set(model.state_dict()) < set(grown.state_dict())
    assert torch.equal(grown(x), model(x))
    after = analyse_model(grown, x)
    assert after.group_of("gs_blocks.b0.layer1") is not None
    assert "gs_blocks.b0.layer2" in after.group_of("conv2").producers


def test_a_one_channel_residual_is_a_group_not_a_broadcast() -> None:
    """A width-1 layer whose output is added to another width-1 value: the size-1 channel axis
    of the other operand carries the channel (it is not broadcast), so both widen together."""

    class Narrow(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv1d(2, 1, 3, padding=1)
            self.conv = nn.Conv1d(1, 1, 3, padding=1)
            self.gate = nn.Parameter(torch.full((1, 1), 1.5))  # per channel: (C, 1)
            self.head = nn.Linear(1, 3)

        def forward(self, x):  # (B, 2, 10)
            h = F.relu(self.stem(x))
            h = (h + self.conv(h)) * self.gate
            return self.head(h.mean(2))

    torch.manual_seed(0)
    model = Narrow().eval()
    x = torch.randn(4, 2, 10)
    space = analyse_model(model, x)
    assert {g.name: set(g.producers) for g in space.groups} == {"stem": {"conv", "stem"}}
    child = widen(model, "stem", 3, example_input=x).eval()
    assert child.stem.out_channels == child.conv.out_channels == 3
    assert child.gate.shape == (3, 1)
    with torch.no_grad():
        torch.testing.assert_close(child(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("init", ["net2net", "zero"])
def test_exact_inits_are_exact_under_norms_over_the_channels(init: str) -> None:
    """Under ``zero`` the new units of a group a LayerNorm/GroupNorm sees together are copies
    with zero outgoing weights (fresh units would move the normalisation's statistics)."""
    torch.manual_seed(0)
    model = _randomise(Norms())
    x = torch.randn(4, 2, 4, 4)
    with torch.no_grad():
        before = model(x)
    for name, width in {"a": 12, "b": 8}.items():
        child = widen(model, name, width, init=init, example_input=x).eval()
        with torch.no_grad():
            err = float((child(x) - before).abs().max() / before.abs().max())
        assert err <= 1e-5, (name, err)


class ClassToken(nn.Module):
    """A ViT-style residual stream: a class token expanded over the batch, a position
    embedding, pre-norm MLP; the attention's qkv is chunked, so only it is refused."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, 8, 2, stride=2)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.pos = nn.Parameter(torch.randn(1, 5, 8))
        self.ln = nn.LayerNorm(8)
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)
        self.fc = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):  # (B, 1, 4, 4)
        x = self.patch(x).flatten(2).transpose(1, 2)  # (B, 4, 8)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos  # (B, 5, 8)
        q, k, v = self.qkv(self.ln(x)).chunk(3, dim=-1)
        x = x + self.proj(torch.softmax(q @ k.transpose(1, 2), -1) @ v)
        x = x + self.fc(F.gelu(x))
        return self.head(x[:, 0])


def test_a_class_token_expanded_over_the_batch_follows_the_stream() -> None:
    torch.manual_seed(0)
    model = ClassToken().eval()
    x = torch.randn(3, 1, 4, 4)
    space = analyse_model(model, x)
    stream = space.group_of("patch")
    assert stream is not None and set(stream.producers) == {"patch", "proj", "fc"}
    assert stream.integer_factors  # the LayerNorm normalises the stream's channels together
    assert {r.module for r in space.refused} == {"qkv", "head"}
    with torch.no_grad():
        before = model(x)
        child = widen(model, "patch", 16, init="zero", example_input=x).eval()
        assert child.cls.shape == (1, 1, 16) and child.pos.shape == (1, 5, 16)
        assert float((child(x) - before).abs().max() / before.abs().max()) <= 1e-5


def test_transposed_convs_are_producers_and_consumers() -> None:
    """A transposed conv's weight is (in, out, ...): widening it grows axis 1 and its bias,
    widening what feeds it grows axis 0; the whole decoder stays searchable."""
    x = torch.randn(4, 1, 8, 8)
    model = _randomise(Decoder())
    space = analyse_model(model, x)
    assert {g.name for g in space.groups} == {"enc1", "enc2", "up"}
    child = widen(model, "up", 6, example_input=x)
    assert child.up.weight.shape == (8, 6, 2, 2) and child.up.bias.shape == (6,)
    assert (child.up.in_channels, child.up.out_channels) == (8, 6)
    child = widen(child, "enc2", 10, example_input=x)
    assert child.up.weight.shape == (10, 6, 2, 2) and child.up.in_channels == 10
    assert child.bn.num_features == 6 and child.head.weight.shape == (3, 10, 1, 1)


class Volume(nn.Module):
    """3-d convs with BatchNorm, then a transposed 3-d conv up."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv3d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm3d(4)
        self.r1 = nn.ReLU()
        self.up = nn.ConvTranspose3d(4, 3, 2, stride=2)
        self.r2 = nn.ReLU()
        self.head = nn.Linear(3, 2)

    def forward(self, x):  # (B, 1, 4, 4, 4)
        return self.head(self.r2(self.up(self.r1(self.bn1(self.c1(x))))).mean((2, 3, 4)))


class Resampled(nn.Module):
    """An ``nn.Upsample`` and an ``nn.PixelUnshuffle`` between convs: modules deepen's rules do
    not name, whose outputs' channels and dimensionality come from a shape probe."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2)
        self.down = nn.PixelUnshuffle(2)  # (B, 4, 16, 16) -> (B, 16, 8, 8)
        self.c2 = nn.Conv2d(16, 8, 3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):  # (B, 1, 8, 8)
        return self.head(F.relu(self.c2(self.down(self.up(torch.tanh(self.c1(x)))))).mean((2, 3)))


DEEPEN_CASES = [  # model, input shape, module, expected block, its first layer
    (Decoder, (6, 1, 8, 8), "up", "ResidualBlock", nn.Conv2d),
    (Decoder, (6, 1, 8, 8), "bn", "ResidualBlock", nn.Conv2d),
    (Upsampler1d, (6, 2, 10), "up2", "ResidualBlock", nn.Conv1d),
    (Volume, (6, 1, 4, 4, 4), "r1", "ConvBlock", nn.Conv3d),  # BatchNorm, calibrated
    (Volume, (6, 1, 4, 4, 4), "up", "ResidualBlock", nn.Conv3d),
    (Volume, (6, 1, 4, 4, 4), "r2", "ConvBlock", nn.Conv3d),
    (Resampled, (6, 1, 8, 8), "up", "ResidualBlock", nn.Conv2d),
    (Resampled, (6, 1, 8, 8), "down", "ResidualBlock", nn.Conv2d),  # 16 channels, probed
]


@pytest.mark.parametrize(
    ("cls", "shape", "name", "block", "layer"), DEEPEN_CASES, ids=[f"{c[0].__name__}-{c[2]}" for c in DEEPEN_CASES]
)  # fmt: skip
def test_deepen_after_transposed_and_3d_convs(cls, shape, name, block, layer) -> None:
    """A new identity layer goes after any feature map, its dimensionality and channels read
    from the model's own shapes; the child computes the parent's function and trains."""
    model = _randomise(cls()).eval()
    x = torch.randn(shape)
    child = deepen(model, name, calibration=x).eval()
    new = child.get_submodule(f"{name}_deepen")
    assert type(new).__name__ == block
    first = new.conv if block == "ConvBlock" else new.layer1
    assert isinstance(first, layer) and first.in_channels == first.out_channels
    assert float((child(x) - model(x)).abs().max()) <= 1e-5
    child.train()
    child(x).square().mean().backward()
    last = new.conv if block == "ConvBlock" else new.layer2  # a residual's first layer waits
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0  # on its zero last


def test_a_grouped_transposed_conv_is_refused_in_one_line() -> None:
    x = (2, 1, 8, 8)
    with pytest.raises(MorphError, match=r"grouped transposed convolution module 'up'") as e:
        widen(Decoder(up_groups=2), "enc2", 16, example_input=x)
    assert "\n" not in str(e.value)
    space = analyse_model(Decoder(up_groups=2), x)
    assert "up" in {r.module for r in space.refused} and space.group_of("enc1") is not None


def test_a_failed_shape_probe_prints_nothing(capfd) -> None:
    """Guessing the input shape tries many sizes; torch's ShapeProp prints a traceback for each
    failure, which must not reach the user (the error, if any, is one line)."""
    space = analyse_model(Upsampler1d())  # only (B, 2, 10) fits the head
    assert space.group_of("up1") is not None
    with pytest.raises(MorphError, match="hard-code"):
        widen(HardCoded(), "a", 8, example_input=(2, 1, 10))
    out, err = capfd.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
