"""The homogeneous rescaling keeps predictions: logits × λ^depth, on any positively homogeneous
network found on its torch.fx graph (no BatchNorm, residual adds, normalisations, non-homogeneous
ops)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from growsearch.arch import ArchSpec, Widen, build
from growsearch.grow import WarmStartRecipe, grow_child, homogeneous_rescale
from tests.fixtures.zoo import ZOO, make_model
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
    t = 0.3**r.output_exponent
    torch.testing.assert_close(_outputs(model, x), before * t, rtol=1e-5, atol=1e-7)
    assert r.output_exponent >= 2


def test_non_homogeneous_op_gets_exponent_zero() -> None:
    torch.manual_seed(0)
    model = _Gelu()
    x = torch.randn(32, 8)
    before = _outputs(model, x)
    r = homogeneous_rescale(model, 0.5)
    assert r.out_exponents["fc1"] == 0 and "fc1" not in r.exponents
    assert r.output_exponent == 2
    torch.testing.assert_close(_outputs(model, x), before * 0.25, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_predictions_kept(name: str) -> None:
    factory, _, shape = ZOO[name]
    torch.manual_seed(0)
    model = make_model(factory)
    randomise_bn(model)
    x = torch.randn(16, *shape)
    before = _outputs(model, x)
    r = homogeneous_rescale(model, 0.5)
    after = _outputs(model, x)
    t = 0.5**r.output_exponent
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


# ---- shrink_scope="auto": the whole-network shrink where it keeps the parent, else the rescale
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
    """With BatchNorm the whole-network shrink keeps the trained parent's predictions and is
    kept; without, it does not (checked on the test split), and the child gets the homogeneous
    rescale at λ 0.6 instead, which keeps every prediction."""
    from dataclasses import replace

    from growsearch.grow import AUTO_SCOPE_MIN_SHRINK

    spec, parent = _trained_cnn(mnist1d, batch_norm)
    ops = [Widen(layer.name, 2 * layer.width) for layer in spec.layers]
    calibration, probe = mnist1d.train.x[:256], mnist1d.val.x[:256]
    test_x = mnist1d.test.x
    child = grow_child(
        parent,
        spec,
        ops,
        total_steps=400,
        seed=0,
        calibration=calibration,
        probe=probe,
        probe_labels=mnist1d.val.y[:256],
    )  # the default recipe: shrink "auto" (0.3 at 400 steps), shrink_scope "auto"; fmt: skip
    whole = grow_child(
        parent, spec, ops, replace(child.recipe, shrink_scope="all", shrink=0.3), total_steps=400,
        seed=0, calibration=calibration,
    )  # fmt: skip
    if batch_norm:
        assert child.recipe.shrink_scope == "all" and child.recipe.shrink == pytest.approx(0.3)
        assert _agreement(parent, child.model, test_x) >= 0.95  # the guard checked the probe
    else:
        assert _agreement(parent, whole.model, test_x) < 0.9  # what the default used to do
        assert child.recipe.shrink_scope == "homogeneous"
        assert child.recipe.shrink == AUTO_SCOPE_MIN_SHRINK
        assert _agreement(parent, child.model, test_x) == 1.0


def test_auto_scope_judges_by_accuracy_when_it_has_labels() -> None:
    """A briefly trained BatchNorm parent whose running statistics lag its weights: the
    re-estimate after the whole-network shrink changes many predictions (agreement below
    AUTO_SCOPE_AGREEMENT) but not for the worse, so with labels the shrink is kept."""
    from growsearch.data import load_dataset
    from growsearch.grow import AUTO_SCOPE_AGREEMENT, resolve_shrink_scope
    from growsearch.train import TrainConfig, train

    data = load_dataset("digits")
    spec = ArchSpec.create("cnn", data.input_shape, data.num_classes, [[8], [16]])
    parent = build(spec, seed=0)
    train(parent, data, TrainConfig(epochs=4, lr=3e-3, device="cpu", amp=False, seed=0))
    parent.eval()
    x, y = data.val.head(256)
    recipe = WarmStartRecipe(shrink=0.3)
    ops = [Widen(layer.name, 2 * layer.width) for layer in spec.layers]
    trial = grow_child(
        parent, spec, ops, WarmStartRecipe(shrink=0.3, shrink_scope="all"), total_steps=400,
        seed=0, calibration=data.train.x[:256],
    )  # fmt: skip
    agreement = _agreement(parent, trial.model, x)
    accuracy = (
        float((_outputs(trial.model, x).argmax(1) == y).float().mean()),
        float((_outputs(parent, x).argmax(1) == y).float().mean()),
    )
    assert agreement < AUTO_SCOPE_AGREEMENT and accuracy[0] >= accuracy[1] - 0.01
    calibration = data.train.x[:256]
    morphed = grow_child(
        parent, spec, ops, WarmStartRecipe(shrink=1.0), total_steps=400, seed=0,
        calibration=calibration,
    ).model  # fmt: skip
    by_labels = resolve_shrink_scope(morphed, recipe, probe=x, calibration=calibration, labels=y)
    by_agreement = resolve_shrink_scope(morphed, recipe, probe=x, calibration=calibration)
    assert by_labels.shrink_scope == "all" and by_agreement.shrink_scope == "homogeneous"
    # grow_child hands the probe's labels on (the trainable and the replication pass them)
    for labels, scope in ((y, "all"), (None, "homogeneous")):
        child = grow_child(
            parent, spec, ops, recipe, total_steps=400, seed=0, calibration=calibration,
            probe=x, probe_labels=labels,
        )  # fmt: skip
        assert child.recipe.shrink_scope == scope, (labels is None, child.recipe)


def test_auto_scope_without_a_batch_keeps_predictions() -> None:
    from growsearch.grow import resolve_shrink_scope

    spec = ArchSpec.create("cnn", (1, 16), 4, [6, 6], batch_norm=True)
    model = build(spec, seed=0)
    recipe = WarmStartRecipe(shrink=0.3)
    assert recipe.shrink_scope == "auto" and not recipe.keeps_predictions
    resolved = resolve_shrink_scope(model, recipe, probe=None, calibration=None)
    assert resolved.shrink_scope == "homogeneous" and resolved.keeps_predictions
    assert resolve_shrink_scope(
        model, WarmStartRecipe(shrink=1.0), probe=None, calibration=None
    ).exact
    with pytest.raises(ValueError, match="for_steps"):
        resolve_shrink_scope(model, WarmStartRecipe(), probe=None, calibration=None)
