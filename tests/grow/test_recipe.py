"""The warm-start recipe: what the search and the replication benchmark apply to a child."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from growsearch.arch import ArchSpec, Deepen, Widen, build
from growsearch.grow import (
    WarmStartRecipe,
    auto_shrink,
    grow_child,
    perturb_student,
    recalibrate_batchnorm,
    resolve_shrink_scope,
    student_train_overrides,
)
from tests.morph._models import randomise_bn

# The accuracy a perturbing (inexact) recipe may cost right after the morph, before training.
MAX_ACC_DROP = 0.10


def prepare_student(parent, spec, ops, recipe=None, *, calibration, seed, total_steps=None):
    """(child, child_spec) of :func:`grow_child` (a numeric shrink does not depend on the length)."""
    child = grow_child(
        parent,
        spec,
        ops,
        recipe,
        calibration=calibration,
        seed=seed,
        total_steps=total_steps or 1000,
    )
    return child.model, child.spec


def _spec() -> ArchSpec:
    return ArchSpec.create("cnn", (1, 16), 4, [6, 6])


def _ops(spec: ArchSpec, kind: str) -> list:
    if kind == "wider":
        return [Widen(layer.name, 2 * layer.width) for layer in spec.layers]
    return [Deepen("s0l0", spec.new_layer_name("s0l0"))]


def _rel_err(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> float:
    a.eval()
    b.eval()
    with torch.no_grad():
        ya, yb = a(x), b(x)
    return float((ya - yb).abs().max() / ya.abs().max())


def _digits_teacher():
    """A small CNN trained briefly on digits (a second of CPU), and the data."""
    from growsearch.data import load_dataset
    from growsearch.train import TrainConfig, evaluate, train

    data = load_dataset("digits")
    spec = ArchSpec.create("cnn", data.input_shape, data.num_classes, [4, 8])
    model = build(spec, seed=0)
    train(model, data, TrainConfig(epochs=1000, max_steps=150, lr=3e-3, device="cpu", seed=0))
    return model, spec, data, evaluate(model, data.test)[1]


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def _resolved(recipe: WarmStartRecipe, child: nn.Module, total_steps: int) -> WarmStartRecipe:
    """The recipe as :func:`grow_child` applies it: shrink for the length, scope for the child."""
    return resolve_shrink_scope(child, recipe.for_steps(total_steps))


@pytest.mark.parametrize("kind", ["wider", "deeper"])
def test_default_recipe_student_keeps_the_parents_function(kind: str) -> None:
    """The default recipe keeps every prediction: the logits are the parent's × λ^e, a
    temperature (e = 2 here: λ on the last BatchNorm's scale and shift, λ on the head)."""
    spec = _spec()
    parent = randomise_bn(build(spec, seed=0)).eval()
    x = torch.randn(256, 1, 16, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    grown = grow_child(parent, spec, _ops(spec, kind), calibration=x[:32], seed=3, total_steps=300)
    assert all(torch.equal(before[k], v) for k, v in parent.state_dict().items()), "parent modified"
    expected = spec
    for op in _ops(spec, kind):
        expected = expected.apply(op)
    assert grown.spec == expected
    recipe = _resolved(WarmStartRecipe(), grown.model, 300)
    assert grown.recipe == recipe
    assert recipe.keeps_predictions and not recipe.exact
    assert recipe.shrink == pytest.approx(0.3) and recipe.shrink_scope == "homogeneous-norms"
    y, yc = _outputs(parent, x), _outputs(grown.model, x)
    assert torch.equal(yc.argmax(1), y.argmax(1))
    torch.testing.assert_close(yc, y * 0.3**2, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize(
    ("spec", "batch_norm"),
    [
        (ArchSpec.create("cnn", (1, 16), 4, [6, 6, 6], batch_norm=False), False),
        (ArchSpec.create("mlp", (1, 40), 10, [[24, 16]]), True),
    ],
    ids=["relu-cnn", "mlp-bn"],
)
@pytest.mark.parametrize("kind", ["wider", "deeper"])
def test_keep_outputs_keeps_the_parents_output_values(
    spec: ArchSpec, batch_norm: bool, kind: str
) -> None:
    """``keep_outputs=True`` undoes the shrink's temperature at the output layer: the child's
    outputs are the parent's (not only its argmax), while the hidden layers are shrunk."""
    parent = build(spec, seed=0)
    if batch_norm:
        randomise_bn(parent)
    parent.eval()
    x = torch.randn(64, *spec.input_shape, generator=torch.Generator().manual_seed(1))
    grown = grow_child(
        parent, spec, _ops(spec, kind), WarmStartRecipe(keep_outputs=True), calibration=x,
        seed=0, total_steps=2400,
    )  # fmt: skip
    assert grown.recipe.keep_outputs and float(grown.recipe.shrink) < 1.0
    torch.testing.assert_close(_outputs(grown.model, x), _outputs(parent, x), rtol=1e-4, atol=1e-5)
    first = spec.layers[0].name  # its Linear/Conv weight: the inherited units × λ
    shrunk, original = (next(m.layers[first].parameters()).detach() for m in (grown.model, parent))
    lam = float(grown.recipe.shrink)
    torch.testing.assert_close(shrunk[: len(original)], lam * original, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["wider", "deeper"])
@pytest.mark.parametrize(
    ("recipe", "steps"),
    [
        (WarmStartRecipe(), 200),
        (WarmStartRecipe(), 5000),
        (WarmStartRecipe(shrink=0.3, shrink_scope="all", logit_scale=1.0), None),
        (WarmStartRecipe(shrink=0.6, perturb_std=0.1, shrink_scope="all", logit_scale=1.0), None),
    ],
    ids=["default-short", "default-long", "shrink-all", "s&p"],
)
def test_student_accuracy_right_after_the_morph_is_bounded(
    kind: str, recipe: WarmStartRecipe, steps: int | None
) -> None:
    """On a trained teacher the default recipe (resolved for the child) keeps every test
    prediction; a perturbing recipe costs at most ``MAX_ACC_DROP``."""
    from growsearch.train import evaluate

    teacher, spec, data, acc = _digits_teacher()
    assert acc > 0.8
    total_steps = steps or 1000
    grown = grow_child(
        teacher, spec, _ops(spec, kind), recipe, calibration=data.train.x[:512], seed=0,
        total_steps=total_steps,
    )  # fmt: skip
    applied = _resolved(recipe, grown.model, total_steps)
    assert grown.recipe == applied
    child_acc = evaluate(grown.model, data.test)[1]
    if recipe.shrink_scope == "auto":
        assert applied.keeps_predictions
        y, yc = _outputs(teacher, data.test.x), _outputs(grown.model, data.test.x)
        moved = int((yc.argmax(1) != y.argmax(1)).sum())
        assert moved == 0, f"{moved} of {len(y)} predictions moved"
        assert child_acc == acc
    else:
        assert not applied.keeps_predictions
        assert child_acc >= acc - MAX_ACC_DROP


def test_shrink_and_perturb_changes_weights_as_documented() -> None:
    spec = _spec()
    parent = build(spec, seed=0)
    ops = _ops(spec, "wider")
    x = torch.randn(32, 1, 16)
    exact, _ = prepare_student(
        parent, spec, ops, WarmStartRecipe(shrink=1.0, logit_scale=1.0), calibration=x, seed=0
    )
    shrunk, _ = prepare_student(
        parent,
        spec,
        ops,
        WarmStartRecipe(shrink=0.5, perturb_std=0.0, shrink_scope="all", logit_scale=1.0),
        calibration=x,
        seed=0,
    )
    for (name, p), (_, q) in zip(exact.named_parameters(), shrunk.named_parameters()):
        assert torch.allclose(q, 0.5 * p), name
    perturbed, _ = prepare_student(
        parent,
        spec,
        ops,
        WarmStartRecipe(shrink=0.5, perturb_std=0.1, shrink_scope="all", logit_scale=1.0),
        calibration=x,
        seed=0,
    )
    # θ_fresh of a fresh build is non-zero for every weight (BatchNorm β starts at 0: unchanged)
    for (name, q), r in zip(shrunk.named_parameters(), perturbed.parameters()):
        if name.endswith("weight"):
            assert (r - q).abs().max() > 0, name
    # the BatchNorm statistics were re-estimated on the calibration batch
    bn = perturbed.layers["s0l0"].bn
    assert not torch.equal(bn.running_var, exact.layers["s0l0"].bn.running_var)


def test_scratch_recipe_builds_a_fresh_child() -> None:
    spec = _spec()
    parent = build(spec, seed=0)
    ops = _ops(spec, "wider")
    child, child_spec = prepare_student(
        parent, spec, ops, WarmStartRecipe(init="scratch"), calibration=None, seed=5
    )
    fresh = build(child_spec, seed=5)
    for a, b in zip(child.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)


def test_recalibrate_batchnorm_uses_the_batch_statistics() -> None:
    spec = _spec()
    model = randomise_bn(build(spec, seed=0)).eval()
    x = torch.randn(64, 1, 16)
    recalibrate_batchnorm(model, x)
    assert not model.training
    h = model.layers["s0l0"].conv(x)
    bn = model.layers["s0l0"].bn
    assert torch.allclose(bn.running_mean, h.mean(dim=(0, 2)), atol=1e-5)
    assert torch.allclose(bn.running_var, h.var(dim=(0, 2), unbiased=True), atol=1e-4)
    assert bn.momentum == 0.1


def test_recalibrate_batchnorm_covers_3d_maps_and_every_dropout() -> None:
    """A Conv3d + BatchNorm3d network (and a Dropout3d that must not change the statistics)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1), nn.Dropout3d(0.5), nn.BatchNorm3d(4), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 4 * 4 * 4, 3),
    ).eval()  # fmt: skip
    x = torch.randn(16, 2, 4, 4, 4)
    recalibrate_batchnorm(model, x)
    h = model[0](x)
    bn = model[2]
    assert torch.allclose(bn.running_mean, h.mean(dim=(0, 2, 3, 4)), atol=1e-5)
    assert torch.allclose(bn.running_var, h.var(dim=(0, 2, 3, 4), unbiased=True), atol=1e-4)
    assert not model.training and not model[1].training


@pytest.mark.parametrize("steps", [1, 7, 100, 2400])
def test_overrides_are_consistent(steps: int) -> None:
    recipe = WarmStartRecipe()
    o = student_train_overrides(recipe, base_lr=3e-3, total_steps=steps)
    assert set(o) == {"lr", "warmup_steps", "cycle_steps"}
    assert o["lr"] == pytest.approx(3e-3 * recipe.lr_factor)
    assert 0 <= o["warmup_steps"] < steps
    assert o["warmup_steps"] == min(round(recipe.warmup_fraction * steps), steps - 1)
    assert o["cycle_steps"] == 0 or o["warmup_steps"] < o["cycle_steps"] < steps
    s = student_train_overrides(
        dataclasses.replace(recipe, init="scratch"), base_lr=3e-3, total_steps=steps
    )
    assert s == {"lr": 3e-3, "warmup_steps": 0, "cycle_steps": 0}
    # the overrides are valid TrainConfig fields
    from growsearch.train import TrainConfig

    TrainConfig(max_steps=steps, **o)


def test_overrides_scale_with_the_recipe() -> None:
    r = WarmStartRecipe(lr_factor=0.1, warmup_fraction=0.25, cycle_fraction=0.5)
    assert student_train_overrides(r, 1e-2, 400) == {
        "lr": pytest.approx(1e-3), "warmup_steps": 100, "cycle_steps": 200,
    }  # fmt: skip
    # a first cycle no longer than the warm-up, or the whole run, is one cycle
    for cycle in (0.0, 0.2, 0.25):
        r = WarmStartRecipe(warmup_fraction=0.25, cycle_fraction=cycle)
        assert student_train_overrides(r, 1e-2, 400)["cycle_steps"] == 0
    with pytest.raises(ValueError, match="cycle_fraction"):
        WarmStartRecipe(cycle_fraction=1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"init": "copy"},
        {"split_std": -1.0},
        {"lr_factor": 0.0},
        {"warmup_fraction": 1.0},
        {"shrink": 0.0},
        {"shrink": 1.5},
        {"perturb_std": -0.1},
    ],
)
def test_invalid_recipes_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="WarmStartRecipe"):
        WarmStartRecipe(**kwargs)


def test_recipe_is_frozen_and_hashable() -> None:
    r = WarmStartRecipe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.shrink = 0.5  # type: ignore[misc]
    assert hash(r) == hash(WarmStartRecipe())


# ---- shrink_scope="scale-invariant": shrink only what BatchNorm normalises, keep predictions ----


def _family_cases():
    from tests.morph._models import family_cases

    return [(cid, model, shape) for cid, model, shape, _, _ in family_cases()]


@pytest.mark.parametrize("train_mode", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize(
    ("cid", "model", "shape"), _family_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_scale_invariant_shrink_keeps_predictions_and_scales_logits(
    cid: str, model: torch.nn.Module, shape: tuple[int, ...], train_mode: bool
) -> None:
    from growsearch.grow import output_layer, shrink_scale_invariant

    x = torch.randn(64, *shape, generator=torch.Generator().manual_seed(2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    child = copy_module(model)
    shrunk = shrink_scale_invariant(child, 0.3)
    with torch.no_grad():
        for p in output_layer(child).parameters():
            p.mul_(0.09)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.train(train_mode)
    child.train(train_mode)
    with torch.no_grad():
        y, yc = model(x), child(x)
    # exact up to BatchNorm's eps (relative ~eps / (0.09 var)); logits × 0.09; same argmax
    assert float((yc - 0.09 * y).abs().max()) <= 2e-3 * float((0.09 * y).abs().max()), cid
    assert torch.equal(yc.argmax(1), y.argmax(1)) or (yc.argmax(1) != y.argmax(1)).sum() <= 1
    bns = sum(isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d) for m in model.modules())
    # every BatchNorm in these models reads a Linear/Conv directly, except in no-BN families
    assert len(shrunk) == bns, (cid, shrunk)


def copy_module(m: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(m)


def test_scale_invariant_recipe_touches_only_bn_fed_layers_and_the_logits() -> None:
    spec = ArchSpec.create("cnn", (1, 16), 4, [[6], [6]])
    parent = randomise_bn(build(spec, seed=0)).eval()
    ops = _ops(spec, "wider")
    x = torch.randn(32, 1, 16)
    exact, _ = prepare_student(
        parent, spec, ops, WarmStartRecipe(shrink=1.0, logit_scale=1.0), calibration=x, seed=0
    )
    recipe = WarmStartRecipe(shrink=0.3, shrink_scope="scale-invariant", logit_scale=0.5)
    assert recipe.keeps_predictions and not recipe.exact
    child, _ = prepare_student(parent, spec, ops, recipe, calibration=x, seed=0)
    from growsearch.grow import output_layer

    head = output_layer(child)
    head_params = {id(p) for p in head.parameters()}
    mods = dict(child.named_modules())
    for (name, p), q in zip(child.named_parameters(), exact.parameters()):
        owner = mods[name.rsplit(".", 1)[0]]
        if id(p) in head_params:
            assert torch.allclose(p, 0.5 * q), name
        elif isinstance(owner, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            assert torch.equal(p, q), name  # γ, β untouched
        else:  # every conv feeds a BatchNorm here
            assert torch.allclose(p, 0.3 * q), name
    for m, e in zip(child.modules(), exact.modules()):
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            assert torch.allclose(m.running_mean, 0.3 * e.running_mean)
            assert torch.allclose(m.running_var, 0.09 * e.running_var)


def test_scale_invariant_recipe_keeps_a_trained_teachers_accuracy() -> None:
    from growsearch.train import evaluate

    teacher, spec, data, acc = _digits_teacher()
    for kind in ("wider", "deeper"):
        child, _ = prepare_student(
            teacher,
            spec,
            _ops(spec, kind),
            WarmStartRecipe(shrink=0.3, shrink_scope="scale-invariant", logit_scale=0.09),
            calibration=data.train.x[:512],
            seed=0,
        )
        assert abs(evaluate(child, data.test)[1] - acc) <= 1 / len(data.test), kind


def test_logit_scale_needs_a_logits_layer() -> None:
    from growsearch.exceptions import MorphError
    from growsearch.grow import output_layer

    class EndsInSoftmaxFree(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.fc(x))

    with pytest.raises(MorphError, match="logit_scale.*EndsInSoftmaxFree"):
        output_layer(EndsInSoftmaxFree())


@pytest.mark.parametrize(
    "kwargs", [{"shrink_scope": "bn"}, {"logit_scale": 0.0}, {"logit_scale": 2.0}]
)
def test_invalid_scale_invariant_fields_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="WarmStartRecipe"):
        WarmStartRecipe(**kwargs)


def test_auto_shrink_depends_on_the_childs_length() -> None:
    assert auto_shrink(1) == auto_shrink(135) == 0.6
    assert auto_shrink(270) == auto_shrink(100_000) == 0.3
    assert auto_shrink(191) == pytest.approx(0.45, abs=0.001)  # halfway in log(steps): 135·√2
    lengths = [1, 100, 135, 136, 150, 191, 250, 269, 270, 2400, 10**6]
    values = [auto_shrink(n) for n in lengths]
    assert values == sorted(values, reverse=True)  # longer children: stronger shrink
    with pytest.raises(ValueError, match="total_steps >= 1"):
        auto_shrink(0)
    assert WarmStartRecipe().shrink == "auto"
    assert WarmStartRecipe().for_steps(2400).shrink == 0.3
    assert WarmStartRecipe(shrink=0.8).for_steps(100).shrink == 0.8  # a number is kept as is


@pytest.mark.parametrize("bad", [0, 1.5, -0.3, "mild", True])
def test_recipe_rejects_a_bad_shrink(bad) -> None:
    with pytest.raises(ValueError, match="WarmStartRecipe.shrink: expected 'auto' or a number"):
        WarmStartRecipe(shrink=bad)


def test_auto_shrink_is_the_numeric_shrink_for_that_length() -> None:
    """grow_child with shrink 'auto' gives exactly the child of the resolved number (the
    whole-network scope pinned: the scope's own choice is tested in test_rescale.py)."""
    spec = _spec()
    parent = randomise_bn(build(spec, seed=0)).eval()
    x = torch.randn(32, 1, 16, generator=torch.Generator().manual_seed(1))
    ops = _ops(spec, "wider")
    whole = WarmStartRecipe(shrink_scope="all")
    for steps, value in [(135, 0.6), (2400, 0.3)]:
        auto, _ = prepare_student(
            parent, spec, ops, whole, calibration=x, seed=0, total_steps=steps
        )
        fixed, _ = prepare_student(
            parent, spec, ops, WarmStartRecipe(shrink=value, shrink_scope="all"), calibration=x,
            seed=0,
        )  # fmt: skip
        for (name, p), q in zip(auto.state_dict().items(), fixed.state_dict().values()):
            assert torch.equal(p, q), (steps, name)
    short, _ = prepare_student(parent, spec, ops, whole, calibration=x, seed=0, total_steps=100)
    long, _ = prepare_student(parent, spec, ops, whole, calibration=x, seed=0, total_steps=2400)
    w_short, w_long = short.layers["s0l0"].conv.weight, long.layers["s0l0"].conv.weight
    assert torch.allclose(w_long, w_short * 0.3 / 0.6, atol=1e-6)


def test_perturbation_needs_a_resolved_shrink() -> None:
    spec = _spec()
    parent = build(spec, seed=0)
    x = torch.randn(8, 1, 16)
    child, child_spec = prepare_student(
        parent, spec, _ops(spec, "wider"), WarmStartRecipe(shrink=1.0), calibration=x, seed=0
    )
    with pytest.raises(ValueError, match="for_steps"):
        perturb_student(child, child_spec, WarmStartRecipe(), calibration=x, seed=0)
    with pytest.raises(ValueError, match="total_steps >= 1"):
        grow_child(parent, spec, _ops(spec, "wider"), calibration=x, seed=0, total_steps=0)


def test_grow_child_reports_preservation_and_the_childs_schedule() -> None:
    """What the trainable records: the morph's error on a probe (before the deliberate
    perturbation), the morphed child seen by ``after_morph``, and the child's lr and warm-up."""
    spec = _spec()
    parent = randomise_bn(build(spec, seed=0)).train()
    x = torch.randn(32, 1, 16, generator=torch.Generator().manual_seed(1))
    seen: list[float] = []

    def after_morph(model: torch.nn.Module) -> None:
        assert not model.training
        seen.append(_rel_err(parent, model, x))

    child = grow_child(
        parent, spec, _ops(spec, "wider"), WarmStartRecipe(shrink_scope="all"), calibration=x,
        probe=x, seed=0, total_steps=400, after_morph=after_morph,
    )  # fmt: skip
    assert parent.training and child.model.training  # modes kept
    assert child.preserve_err is not None and child.preserve_err <= 1e-5
    assert seen == [pytest.approx(child.preserve_err, abs=1e-7)]
    assert child.recipe.shrink == auto_shrink(400)
    assert _rel_err(parent, child.model, x) > 1e-3  # the default recipe's shrink came after
    assert child.train_overrides(3e-3) == {
        "lr": pytest.approx(3e-3), "warmup_steps": 40, "cycle_steps": 80,
    }  # fmt: skip
    scratch = grow_child(
        parent, spec, _ops(spec, "wider"), WarmStartRecipe(init="scratch"), probe=x, seed=0,
        total_steps=400,
    )  # fmt: skip
    assert scratch.preserve_err is None and scratch.train_overrides(3e-3)["warmup_steps"] == 0


def test_default_recipe_warms_the_childs_learning_rate_up() -> None:
    """A warm child's learning rate rises linearly over its first 10% of steps, then decays,
    to 0 at 20% of its steps, and restarts; ``warmup_fraction=0``
    (``training.warmup_fraction: 0``) starts at the peak."""
    from growsearch.space import TrainingConfig
    from growsearch.train import TrainConfig, lr_at

    o = student_train_overrides(WarmStartRecipe(), base_lr=3e-3, total_steps=135)
    assert o == {"lr": pytest.approx(3e-3), "warmup_steps": 14, "cycle_steps": 27}
    cfg = TrainConfig(lr=o["lr"], warmup_steps=o["warmup_steps"], schedule="cosine")
    lrs = [lr_at(step, 135, cfg) for step in range(135)]
    assert lrs[0] == pytest.approx(3e-3 / 14) and lrs[13] == pytest.approx(3e-3)
    assert lrs[:14] == sorted(lrs[:14]) and lrs[13:] == sorted(lrs[13:], reverse=True)
    # the default's warm restart: the first cycle anneals by 1/5 of the steps, then restarts
    lrs = [lr_at(step, 135, TrainConfig(**o, schedule="cosine")) for step in range(135)]
    assert lrs[13] == pytest.approx(3e-3) and lrs[26] < 1e-4 and lrs[27] == pytest.approx(3e-3)
    assert lrs[27:] == sorted(lrs[27:], reverse=True)
    off = TrainingConfig(warmup_fraction=0).recipe()
    assert student_train_overrides(off, base_lr=3e-3, total_steps=135)["warmup_steps"] == 0
    assert TrainingConfig().recipe().warmup_fraction == 0.1


def test_a_training_key_spelled_as_before_still_works_with_one_deprecation_line(
    tmp_path, caplog
) -> None:
    """The recipe's YAML keys are named as WarmStartRecipe's fields; a space written with the
    earlier ``student_*`` spelling loads to the same recipe, says so in one line, and giving
    both spellings is a one-line error naming the file."""
    import logging
    from pathlib import Path

    from growsearch.exceptions import ConfigError
    from growsearch.space import load_space

    base = (Path(__file__).resolve().parents[2] / "search_spaces" / "mnist1d_cnn.yaml").read_text()
    old = tmp_path / "old.yaml"
    old.write_text(
        base.replace("  batch_size: 128\n", "  batch_size: 128\n  student_warmup_fraction: 0.25\n")
    )
    new = tmp_path / "new.yaml"
    new.write_text(
        base.replace("  batch_size: 128\n", "  batch_size: 128\n  warmup_fraction: 0.25\n")
    )
    with caplog.at_level(logging.WARNING, logger="growsearch"):
        recipe = load_space(old).training.recipe()
    lines = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert lines == [
        "growsearch: training.student_warmup_fraction is deprecated, use training.warmup_fraction"
        " (same meaning)"
    ]
    assert recipe == load_space(new).training.recipe() and recipe.warmup_fraction == 0.25
    both = tmp_path / "both.yaml"
    both.write_text(
        base.replace("  batch_size: 128\n", "  batch_size: 128\n  warmup_fraction: 0.2\n"
                     "  student_warmup_fraction: 0.25\n")
    )  # fmt: skip
    with pytest.raises(ConfigError) as e:
        load_space(both)
    assert "both warmup_fraction and its earlier spelling student_warmup_fraction" in str(e.value)
    assert "both.yaml" in str(e.value) and "\n" not in str(e.value)
