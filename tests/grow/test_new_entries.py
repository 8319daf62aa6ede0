"""growsearch.grow.new_entries: which entries of a child the morph did not copy from its parent."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from growsearch.arch import ArchSpec, Deepen, Widen, build
from growsearch.grow import WarmStartRecipe, apply_ops, child_step_scale, grow_child, new_entries
from growsearch.train import scale_steps

FACTORY = f"{Path(__file__).parents[1] / 'fixtures' / 'user_models.py'}:digits_net"


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters()}


def test_zero_init_widen_marks_the_new_units_in_and_out() -> None:
    spec = ArchSpec.create("cnn", (1, 16), 4, [6, 6], batch_norm=False)
    ops = [Widen("s0l0", 10)]
    masks = new_entries(spec, ops, init="zero", seed=3)
    parent = build(spec, seed=0)
    child, _ = apply_ops(parent, spec, ops, init="zero", seed=3)
    assert masks.keys() == _params(child).keys()
    first = masks["layers.s0l0.conv.weight"]  # (10, 1, k): units 6..9 are new
    assert first[6:].all() and not first[:6].any()
    assert masks["layers.s0l0.conv.bias"].tolist() == [False] * 6 + [True] * 4
    second = masks["layers.s1l0.conv.weight"]  # (6, 10, k): the new input columns
    assert second[:, 6:].all() and not second[:, :6].any()
    # everything not marked is the parent's value, exactly
    old = _params(parent)
    for name, p in _params(child).items():
        if name in old and p.shape == old[name].shape:
            assert torch.equal(p[~masks[name]], old[name][~masks[name]]), name


def test_an_inserted_layer_is_new_throughout_and_the_rest_is_kept() -> None:
    spec = ArchSpec.create("cnn", (1, 16), 4, [6, 6], batch_norm=False)
    ops = [Deepen("s0l0", spec.new_layer_name("s0l0"))]
    masks = new_entries(spec, ops, init="zero", seed=0)
    new_layer = [n for n in masks if n not in _params(build(spec))]
    assert new_layer and all(masks[n].all() for n in new_layer)
    assert not any(masks[n].any() for n in masks if n not in new_layer)


def test_a_users_model_grows_the_same_way() -> None:
    # a user's model (its own forward, BatchNorm, flatten): conv1's new units, what reads them
    spec = ArchSpec.from_user_model(FACTORY, None, (1, 8, 8), 10)
    first = spec.layers[0]
    masks = new_entries(spec, [Widen(first.name, 2 * first.width)], init="zero", seed=1)
    assert masks["conv1.weight"][8:].all() and not masks["conv1.weight"][:8].any()
    assert masks["bn1.weight"][8:].all() and not masks["bn1.weight"][:8].any()  # γ = 1, new
    assert masks["conv2.weight"][:, 8:].all() and not masks["conv2.weight"][:, :8].any()
    assert not masks["fc.weight"].any() and not masks["out.weight"].any()


def test_grow_child_scales_the_new_entries_steps_by_the_recipes_factor() -> None:
    spec = ArchSpec.create("cnn", (1, 16), 4, [6, 6], batch_norm=False)
    parent = build(spec, seed=0)
    ops = [Widen("s0l0", 10)]
    plain = grow_child(
        parent, spec, ops, WarmStartRecipe(new_entry_lr_factor=1.0), total_steps=100, seed=2
    )
    assert plain.step_scale is None  # one learning rate for all
    child = grow_child(parent, spec, ops, WarmStartRecipe(), total_steps=100, seed=2)
    assert child.recipe.new_entry_lr_factor == 3.0  # the default
    masks = new_entries(spec, ops, init="zero", seed=2, split_std=0.5)
    assert child.step_scale is not None
    assert child.step_scale.keys() == {n for n, m in masks.items() if m.any()}
    for name, scale in child.step_scale.items():
        assert torch.equal(scale, torch.where(masks[name], 3.0, 1.0)), name
    # what a resumed trial rebuilds from the spec and the ops alone is the same
    again = child_step_scale(spec, ops, child.recipe, calibration=None, seed=2)
    assert again is not None and all(torch.equal(again[n], s) for n, s in child.step_scale.items())


def test_a_users_transposed_conv_grows_along_its_output_axis() -> None:
    """A transposed conv stores (in, out, k, k): its new units are columns of axis 1, and the
    new inputs of what reads them (the mix conv, after a concat with the encoder's 8 maps)."""
    factory = FACTORY.replace(":digits_net", ":decoder_net")
    spec = ArchSpec.from_user_model(factory, None, (1, 8, 8), 10)
    assert "up" in [layer.name for layer in spec.layers]
    ops = [Widen("up", 12), Widen("enc2", 20)]
    parent = build(spec, seed=0).eval()
    child, _ = apply_ops(parent, spec, ops, init="net2net", seed=1)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(child.eval()(x), parent(x), atol=1e-5)
    masks = new_entries(spec, ops, init="zero", seed=1)
    up = masks["up.weight"]  # (20, 12, 2, 2)
    assert up.shape == (20, 12, 2, 2)
    assert up[:, 8:].all() and up[16:].all() and not up[:16, :8].any()
    mix = masks["mix.weight"]  # reads cat([a (8), u (12)]): columns 16..19 are new
    assert mix[:, 16:].all() and not mix[:, :16].any()
    grown = grow_child(
        parent, spec, ops, WarmStartRecipe(new_entry_lr_factor=3.0), total_steps=100, seed=1
    )
    assert grown.step_scale is not None and float(grown.step_scale["up.weight"].max()) == 3.0


def test_a_users_own_loop_steps_the_new_entries_three_times_as_far() -> None:
    """grow_child's step_scale through growsearch.train.scale_steps in a loop of one's own:
    one Adam step moves the morph's new entries 3x as far as the same step without it, and
    the parent's entries exactly as far."""
    spec = ArchSpec.create("cnn", (1, 16), 4, [6, 6], batch_norm=False)
    parent = build(spec, seed=0)
    ops = [Widen("s0l0", 10)]
    grown = grow_child(parent, spec, ops, WarmStartRecipe(), total_steps=100, seed=2)
    assert grown.step_scale is not None
    x, y = torch.randn(32, 1, 16), torch.randint(0, 4, (32,))
    moved = []
    for hook in (True, False):
        model = copy.deepcopy(grown.model)
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        with scale_steps(opt, model, grown.step_scale if hook else None):
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        moved.append({n: p.detach() - start[n] for n, p in model.named_parameters()})
    hooked, plain = moved
    for name, scale in grown.step_scale.items():
        torch.testing.assert_close(hooked[name], scale * plain[name], msg=name)
    assert any((plain[n][s == 3.0] != 0).any() for n, s in grown.step_scale.items())
