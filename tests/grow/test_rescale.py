"""The homogeneous rescaling keeps predictions: logits × λ^depth, on any positively homogeneous
network found on its torch.fx graph (no BatchNorm, residual adds, normalisations, non-homogeneous
ops)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from growsearch.arch import ArchSpec, Widen, build
from growsearch.grow import WarmStartRecipe, grow_child, homogeneous_rescale
from tests.fixtures.zoo import ZOO, example, make_model
from tests.morph._models import randomise_bn


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


class _Residual(nn.Module):
    """A ReLU residual net without normalisation: the add needs equal exponents on both sides."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv1d(1, 6, 3, padding=1)
        self.conv1 = nn.Conv1d(6, 6, 3, padding=1)
        self.conv2 = nn.Conv1d(6, 6, 3, padding=1)
        self.head = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))  # (B, 6, L)
        x = torch.relu(x + self.conv2(torch.relu(self.conv1(x))))
        return self.head(x.mean(-1))  # (B, 4)


class _Gelu(nn.Module):
    """A GELU in the middle: not homogeneous, so its input must keep its scale."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(16, 16)
        self.fc3 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(self.act(self.fc1(x)))))


def test_plain_relu_cnn_without_batchnorm_is_exact() -> None:
    spec = ArchSpec.create("cnn", (1, 16), 4, [6, 6, 6], batch_norm=False)
    model = build(spec, seed=0)
    x = torch.randn(32, 1, 16)
    before = _outputs(model, x)
    r = homogeneous_rescale(model, 0.5)
    assert r.output_exponent == 4  # three convs and the head
    assert set(r.exponents.values()) == {1}
    torch.testing.assert_close(_outputs(model, x), before * 0.5**4, rtol=1e-5, atol=1e-6)


def test_residual_net_without_normalisation_is_exact() -> None:
    torch.manual_seed(0)
    model = _Residual()
    x = torch.randn(32, 1, 12)
    before = _outputs(model, x)
    r = homogeneous_rescale(model, 0.3)
    # the branch conv1 → conv2 must come back to the skip's exponent: conv2 is not shrunk
    assert r.out_exponents["conv2"] == r.out_exponents["stem"] == 1
    assert r.output_exponent == 2  # the add carries the stem's λ, the head adds one
    torch.testing.assert_close(_outputs(model, x), before * 0.3**2, rtol=1e-5, atol=1e-7)


def test_non_homogeneous_op_gets_exponent_zero() -> None:
    torch.manual_seed(0)
    model = _Gelu()
    x = torch.randn(32, 8)
    before = _outputs(model, x)
    r = homogeneous_rescale(model, 0.5)
    assert r.out_exponents["fc1"] == 0 and "fc1" not in r.exponents
    assert r.output_exponent == 2
    torch.testing.assert_close(_outputs(model, x), before * 0.25, rtol=1e-5, atol=1e-6)


# The power of λ on each zoo model's logits, read off its forward by hand: (plain, scale_norms).
# Without scale_norms a normalisation's output carries λ^0; with it, an affine normalisation's
# carries λ^1 unless a non-homogeneous op (ReLU6, GELU, Hardswish, SiLU into a product) reads it.
ZOO_EXPONENTS = {
    "basic_resnet": (1, 2),  # relu(bn2 + downsample's BN) → fc
    "cnn_bn": (2, 3),  # BN → relu → Linear → relu → Linear
    "cnn_nobn": (5, 5),  # c1, c2, c3, fc1, fc2: no normalisation
    "conv3d": (1, 2),  # bn2 → relu → pool → fc
    "densenet": (1, 2),  # bn → relu → pool → head
    "groupnorm": (1, 1),  # gn2 → hardswish (not homogeneous) → fc
    "identity_resnet": (1, 2),  # the skip is capped to bn_b's power → head
    "mixer": (1, 2),  # LayerNorm → mean → head
    "mlp": (3, 3),  # fc1, fc2, out
    "mobilenet": (1, 1),  # BN → ReLU6 (clips at 6: not homogeneous) → Linear
    "own_vit": (1, 2),  # LayerNorm → mean → head
    "se_net": (1, 1),  # bn2 → relu also feeds the SiLU gate: kept at λ^0 → fc
    "sibling_resnet": (1, 2),  # bn → relu → pool → linear
    "tcn": (1, 1),  # GELU before fc
    "vit": (1, 2),  # LayerNorm → mean → head
    # recurrent and attention layers are not homogeneous: kept at λ^0, the head shrinks alone
    "gru": (1, 1),
    "lstm": (1, 1),
    "rnn_with_state": (1, 1),
    "conv_lstm_attention_pool": (1, 1),
    "token_attention": (1, 1),  # the MLPs' residual adds are capped by the attention's λ^0
    "token_encoder": (1, 1),
    "transformer": (1, 2),  # its final LayerNorm → mean → head
}


def test_zoo_exponents_cover_the_zoo() -> None:
    assert set(ZOO_EXPONENTS) == set(ZOO)


@pytest.mark.parametrize("scale_norms", [False, True])
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_predictions_kept(name: str, scale_norms: bool) -> None:
    factory, _, shape = ZOO[name]
    torch.manual_seed(0)
    model = make_model(factory)
    randomise_bn(model)
    x = example(name, 16)
    before = _outputs(model, x)
    r = homogeneous_rescale(model, 0.5, scale_norms=scale_norms)
    after = _outputs(model, x)
    expected = ZOO_EXPONENTS[name][scale_norms]
    assert r.output_exponent == expected, name
    t = 0.5**expected
    assert float((after - t * before).abs().max() / (t * before).abs().max()) < 1e-3
    assert torch.equal(after.argmax(1), before.argmax(1))


def test_grow_child_homogeneous_keeps_predictions_without_batchnorm() -> None:
    spec = ArchSpec.create("cnn", (1, 16), 4, [6, 6], batch_norm=False)
    parent = build(spec, seed=1)
    x = torch.randn(64, 1, 16)
    recipe = WarmStartRecipe(shrink=0.3, shrink_scope="homogeneous")
    assert recipe.keeps_predictions
    ops = [Widen(layer.name, 2 * layer.width) for layer in spec.layers]
    child = grow_child(parent, spec, ops, recipe, total_steps=100, seed=0, calibration=x)
    a, b = _outputs(parent, x), _outputs(child.model, x)
    torch.testing.assert_close(b, a * 0.3**3, rtol=1e-4, atol=1e-6)


def test_scale_norms_carries_the_shrink_past_each_normalisation() -> None:
    """With BatchNorm every affine norm's scale and shift are × λ, so the layers after it are
    shrunk too (as the whole-network shrink does) and the logits carry λ² instead of λ; every
    prediction is kept, with the running statistics untouched where the input kept its scale."""
    spec = ArchSpec.create("cnn", (1, 16), 4, [[6, 6], [8]], batch_norm=True)
    plain, scaled = build(spec, seed=0), build(spec, seed=0)
    randomise_bn(plain)
    scaled.load_state_dict(plain.state_dict())
    x = torch.randn(64, 1, 16)
    before = _outputs(plain, x)
    norms = [n for n, m in scaled.named_modules() if isinstance(m, nn.BatchNorm1d)]
    old = {n: scaled.get_submodule(n).weight.clone() for n in norms}
    assert homogeneous_rescale(plain, 0.3).output_exponent == 1
    r = homogeneous_rescale(scaled, 0.3, scale_norms=True)
    assert r.output_exponent == 2
    for n in norms:
        # × 0.3, and a little more where eps now weighs more against the rescaled variance
        torch.testing.assert_close(scaled.get_submodule(n).weight, 0.3 * old[n], rtol=1e-2, atol=0)
    torch.testing.assert_close(_outputs(scaled, x), before * 0.09, rtol=1e-4, atol=1e-6)
    # without normalisation there is nothing more to carry: the same rescale as before
    spec = ArchSpec.create("cnn", (1, 16), 4, [6, 6], batch_norm=False)
    assert homogeneous_rescale(build(spec, seed=0), 0.5, scale_norms=True).output_exponent == 3


class _SharedNorm(nn.Module):
    """One LayerNorm applied twice: its scale may be multiplied once, not once per call."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.norm = nn.LayerNorm(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.relu(self.norm(self.fc1(x))), torch.relu(self.norm(self.fc2(x)))
        return self.head(a + b)


def test_scale_norms_leaves_a_shared_normalisation_alone() -> None:
    torch.manual_seed(0)
    model = _SharedNorm()
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(32, 8)
    before, weight = _outputs(model, x), model.norm.weight.detach().clone()
    r = homogeneous_rescale(model, 0.5, scale_norms=True)
    torch.testing.assert_close(model.norm.weight, weight)
    assert r.output_exponent == 1  # the norm's output keeps its scale: only the head carries λ
    t = 0.5
    torch.testing.assert_close(_outputs(model, x), before * t, rtol=1e-4, atol=1e-6)


def test_rescale_rejects_bad_factor() -> None:
    with pytest.raises(ValueError, match="factor > 0"):
        homogeneous_rescale(nn.Linear(2, 2), 0.0)


def test_grow_child_homogeneous_hidden_keeps_logits() -> None:
    spec = ArchSpec.create("cnn", (1, 16), 4, [6, 6], batch_norm=False)
    parent = build(spec, seed=1)
    x = torch.randn(64, 1, 16)
    recipe = WarmStartRecipe(shrink=0.3, shrink_scope="homogeneous-hidden")
    assert recipe.keeps_predictions
    ops = [Widen(layer.name, 2 * layer.width) for layer in spec.layers]
    child = grow_child(parent, spec, ops, recipe, total_steps=100, seed=0, calibration=x)
    torch.testing.assert_close(_outputs(child.model, x), _outputs(parent, x), rtol=1e-4, atol=1e-5)
    shrunk = child.model.get_submodule("layers.s0l0.conv").weight.detach()
    original = parent.get_submodule("layers.s0l0.conv").weight.detach()
    assert float(shrunk.abs().max()) < float(original.abs().max())


# ---- shrink_scope="auto": the rescale that keeps every prediction, λ by the graph's depth
@pytest.fixture(scope="module")
def mnist1d():
    from growsearch.data import load_dataset

    return load_dataset("mnist1d")


def _trained_cnn(data, batch_norm: bool) -> tuple[ArchSpec, nn.Module]:
    from growsearch.train import TrainConfig, train

    spec = ArchSpec.create(
        "cnn", data.input_shape, data.num_classes, [[8], [16]], batch_norm=batch_norm
    )
    model = build(spec, seed=0)
    train(model, data, TrainConfig(epochs=16, lr=3e-3, device="cpu", amp=False, seed=0))
    return spec, model.eval()


def _agreement(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    return float((_outputs(a, x).argmax(1) == _outputs(b, x).argmax(1)).float().mean())


@pytest.mark.parametrize("batch_norm", [True, False])
def test_auto_scope_keeps_the_parent_with_and_without_batchnorm(mnist1d, batch_norm: bool) -> None:
    """A trained parent, widened by the default recipe: every test prediction is kept, with
    or without BatchNorm. With BatchNorm the shrink reaches every layer the whole-network
    shrink does (the normalisation scales too) at λ 0.3; without, the logits would carry
    λ^3, so λ is raised to 0.6. The whole-network shrink moves predictions on both."""
    from dataclasses import replace

    from growsearch.grow import AUTO_SCOPE_MIN_SHRINK

    spec, parent = _trained_cnn(mnist1d, batch_norm)
    ops = [Widen(layer.name, 2 * layer.width) for layer in spec.layers]
    calibration, test_x = mnist1d.train.x[:256], mnist1d.test.x
    child = grow_child(parent, spec, ops, total_steps=400, seed=0, calibration=calibration)
    # the default recipe: shrink "auto" (0.3 at 400 steps), shrink_scope "auto"
    assert child.recipe.shrink_scope == "homogeneous-norms"
    assert _agreement(parent, child.model, test_x) == 1.0
    whole = grow_child(
        parent, spec, ops, replace(child.recipe, shrink_scope="all", shrink=0.3), total_steps=400,
        seed=0, calibration=calibration,
    )  # fmt: skip
    assert _agreement(parent, whole.model, test_x) < 1.0
    if batch_norm:
        assert child.recipe.shrink == pytest.approx(0.3)
        bn = "layers.s1l0.bn"
        torch.testing.assert_close(  # the normalisation's scale shrunk as "all" shrinks it
            child.model.get_submodule(bn).weight,
            whole.model.get_submodule(bn).weight,
            rtol=0.05,  # up to the eps correction on channels of small variance
            atol=0,
        )
    else:
        assert _agreement(parent, whole.model, test_x) < 0.9  # what the default used to do
        assert child.recipe.shrink == AUTO_SCOPE_MIN_SHRINK


def test_auto_scope_is_decided_on_the_graph() -> None:
    """λ is kept where normalisations keep the logits' power of λ small (BatchNorm, LayerNorm
    models of the zoo, a normalised CNN) and raised on long chains without normalisation; an
    unresolved shrink is refused."""
    from growsearch.grow import (
        AUTO_SCOPE_MAX_EXPONENT,
        AUTO_SCOPE_MIN_SHRINK,
        rescale_output_exponent,
        resolve_shrink_scope,
    )

    recipe = WarmStartRecipe(shrink=0.3)
    assert recipe.shrink_scope == "auto" and not recipe.keeps_predictions
    for batch_norm, shrink in ((True, 0.3), (False, AUTO_SCOPE_MIN_SHRINK)):
        spec = ArchSpec.create("cnn", (1, 16), 4, [6, 6, 6], batch_norm=batch_norm)
        resolved = resolve_shrink_scope(build(spec, seed=0), recipe)
        assert resolved.shrink_scope == "homogeneous-norms" and resolved.keeps_predictions
        assert resolved.shrink == shrink, batch_norm
    for name in sorted(ZOO):
        factory, _, _ = ZOO[name]
        model = make_model(factory)
        e = ZOO_EXPONENTS[name][1]
        assert rescale_output_exponent(model, scale_norms=True) == e, name
        expected = 0.3 if e <= AUTO_SCOPE_MAX_EXPONENT else AUTO_SCOPE_MIN_SHRINK
        assert resolve_shrink_scope(model, recipe).shrink == expected, (name, e)
    assert resolve_shrink_scope(build(spec, seed=0), WarmStartRecipe(shrink=1.0)).exact
    with pytest.raises(ValueError, match="for_steps"):
        resolve_shrink_scope(build(spec, seed=0), WarmStartRecipe())
