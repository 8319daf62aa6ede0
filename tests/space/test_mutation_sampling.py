"""Sampling mutations within the limits, and planning the growth towards given widths."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from growsearch.arch import ArchSpec, Deepen, Widen, build
from growsearch.space import MutationSpace, plan_growth

CNN = ArchSpec.create("cnn", (1, 8, 8), 10, [[8], [16]], kernel_size=3)
MLP = ArchSpec.create("mlp", (64,), 10, [[16, 16]])
RESNET = ArchSpec.create("resnet", (1, 8, 8), 10, [[8], [8]], stage_widths=[8, 16])
SPECS = {"cnn": CNN, "mlp": MLP, "resnet": RESNET}

SPACE = MutationSpace.model_validate(
    {
        "widen": {"factors": [1.5, 2.0], "max_width": 48},
        "deepen": {"max_layers_per_stage": 3},
        "max_params": 40_000,
        "ops_per_child": [1, 3],
    }
)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _widths(spec: ArchSpec) -> list[list[int]]:
    return [[x.width for x in s.layers] for s in spec.stages]


def _descendant(spec: ArchSpec, rng: random.Random, generations: int) -> ArchSpec:
    for _ in range(generations):
        child = SPACE.random_child(spec, rng)
        if child is None:
            break
        spec = child[0]
    return spec


@FAST
@given(
    seed=st.integers(0, 2**32 - 1), family=st.sampled_from(sorted(SPECS)), steps=st.integers(1, 6)
)
def test_random_children_respect_every_limit(seed: int, family: str, steps: int) -> None:
    rng = random.Random(seed)
    spec = SPECS[family]
    for _ in range(steps):
        child = SPACE.random_child(spec, rng)
        if child is None:
            assert SPACE.random_op(spec, rng) is None
            break
        arch, ops = child
        lo, hi = SPACE.ops_per_child
        assert 1 <= len(ops) <= hi
        assert spec.apply_all(ops) == arch
        assert arch.dominates(spec)
        assert SPACE.fits(arch)
        assert SPACE.params(arch) <= 40_000
        assert max(x.width for x in arch.layers) <= 48
        assert max(len(s.layers) for s in arch.stages) <= 3
        spec = arch


def test_random_op_is_deterministic_and_takes_numpy_generators() -> None:
    a = [SPACE.random_op(CNN, random.Random(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    ops = {SPACE.random_op(CNN, np.random.default_rng(s)) for s in range(40)}
    assert any(isinstance(op, Widen) for op in ops) and any(isinstance(op, Deepen) for op in ops)
    child = SPACE.random_child(CNN, np.random.default_rng(0))
    assert child is not None and CNN.apply_all(child[1]) == child[0]


@FAST
@given(seed=st.integers(0, 2**32 - 1), family=st.sampled_from(sorted(SPECS)))
def test_random_descendants_respect_every_limit(seed: int, family: str) -> None:
    spec = SPECS[family]
    arch, ops = SPACE.random_descendant(spec, random.Random(seed))  # type: ignore[misc]
    assert len(ops) >= 1 and spec.apply_all(ops) == arch
    assert arch.dominates(spec) and SPACE.fits(arch)


def test_random_descendants_spread_over_the_space() -> None:
    """Unlike a child (``ops_per_child``: at most 3 ops here), a descendant is a uniform draw of
    depths and widths: anywhere between the spec and the space's limits."""
    rng = random.Random(0)
    draws = [SPACE.random_descendant(CNN, rng) for _ in range(60)]
    depths = {tuple(len(s.layers) for s in a.stages) for a, _ in draws}  # type: ignore[misc]
    assert (1, 1) in depths and (3, 3) in depths and len(depths) >= 6
    assert max(len(ops) for _, ops in draws) > 6  # type: ignore[misc]
    params = sorted(SPACE.params(a) for a, _ in draws)  # type: ignore[misc]
    assert params[0] < 2 * SPACE.params(CNN) and params[-1] > 25_000
    widths = {x.width for a, _ in draws for x in a.layers}  # type: ignore[misc]
    assert widths <= set(SPACE.width_choices(8)) | set(SPACE.width_choices(16))
    assert 48 in widths
    # deterministic for a given generator state
    assert SPACE.random_descendant(CNN, random.Random(5)) == SPACE.random_descendant(
        CNN, random.Random(5)
    )


def test_random_descendants_keep_to_the_allowed_layers() -> None:
    space = MutationSpace.model_validate(
        {"widen": {"targets": ["s1l0"]}, "deepen": {"after": ["s0l0"]}, "max_params": None}
    )
    rng = random.Random(0)
    for _ in range(20):
        arch, ops = space.random_descendant(CNN, rng)  # type: ignore[misc]
        assert all(
            op.target == "s1l0" if isinstance(op, Widen) else op.after == "s0l0" for op in ops
        )
        assert arch.stages[0].layers[0].width == 8 and len(arch.stages[1].layers) == 1


def test_random_descendants_of_tight_spaces_fall_back_to_a_walk() -> None:
    """When almost no encoding fits (one op's worth of parameters left), the random walk still
    finds the few descendants there are."""
    tight = MutationSpace.model_validate(
        {"widen": {"factors": [1.5]}, "max_params": SPACE.params(CNN.apply(Widen("s0l0", 12)))}
    )
    arch, ops = tight.random_descendant(CNN, random.Random(0))  # type: ignore[misc]
    assert tight.fits(arch) and len(ops) >= 1 and CNN.apply_all(ops) == arch


@pytest.mark.parametrize("family", sorted(SPECS))
def test_children_build(family: str) -> None:
    rng = random.Random(0)
    spec = SPECS[family]
    for _ in range(4):
        spec = _descendant(spec, rng, 1)
        build(spec)
        assert SPACE.params(spec) == sum(p.numel() for p in build(spec).parameters())


def test_widen_ops_follow_factors_and_cap() -> None:
    ops = SPACE.widen_ops(CNN)
    assert Widen("s0l0", 12) in ops and Widen("s0l0", 16) in ops
    assert Widen("s1l0", 24) in ops and Widen("s1l0", 32) in ops
    wide = ArchSpec.create("cnn", (1, 8, 8), 10, [[40]])
    assert SPACE.widen_ops(wide) == [Widen("s0l0", 48)]  # round(60) and round(80) capped at 48
    assert SPACE.widen_ops(ArchSpec.create("cnn", (1, 8, 8), 10, [[48]])) == []
    assert {op.target for op in SPACE.widen_ops(RESNET)} == {"s0l0", "s1l0", "s0", "s1"}


def test_targets_and_after_lists_restrict_the_ops() -> None:
    space = MutationSpace.model_validate(
        {"widen": {"targets": ["s1l0"]}, "deepen": {"after": ["s0l0"]}, "max_params": None}
    )
    rng = random.Random(0)
    for _ in range(30):
        op = space.random_op(CNN, rng)
        assert op in (Widen("s1l0", 24), Widen("s1l0", 32), Deepen("s0l0", "s0l1"))


def test_disabled_kinds_are_never_proposed() -> None:
    only_deepen = MutationSpace.model_validate({"widen": {"enabled": False}})
    only_widen = MutationSpace.model_validate({"deepen": {"enabled": False}})
    rng = random.Random(0)
    assert all(isinstance(only_deepen.random_op(CNN, rng), Deepen) for _ in range(20))
    assert all(isinstance(only_widen.random_op(CNN, rng), Widen) for _ in range(20))


def test_nothing_allowed_gives_none() -> None:
    full = MutationSpace.model_validate(
        {"widen": {"max_width": 16}, "deepen": {"enabled": False}, "max_params": 2000}
    )
    at_cap = ArchSpec.create("cnn", (1, 8, 8), 10, [[16], [16]])
    assert full.random_op(at_cap, random.Random(0)) is None
    assert full.random_child(at_cap, random.Random(0)) is None
    assert full.random_descendant(at_cap, random.Random(0)) is None
    tight = MutationSpace.model_validate({"max_params": SPACE.params(CNN)})
    assert tight.random_op(CNN, random.Random(0)) is None  # every op adds parameters


def test_flops_limit() -> None:
    flops = SPACE.flops(CNN)
    space = MutationSpace.model_validate({"max_params": None, "max_flops": int(flops * 1.6)})
    rng = random.Random(0)
    for _ in range(5):
        child = space.random_child(CNN, rng)
        assert child is not None and space.flops(child[0]) <= flops * 1.6


def test_width_choices() -> None:
    assert SPACE.width_choices(16) == (16, 24, 32, 36, 48)
    assert MutationSpace.model_validate({"widen": {"enabled": False}}).width_choices(16) == (16,)


# ---- plan_growth ---------------------------------------------------------------------------
@FAST
@given(seed=st.integers(0, 2**32 - 1), family=st.sampled_from(sorted(SPECS)))
def test_plan_growth_reaches_any_descendant(seed: int, family: str) -> None:
    rng = random.Random(seed)
    ancestor = _descendant(SPECS[family], rng, rng.randint(0, 3))
    target = _descendant(ancestor, rng, rng.randint(0, 3))
    stage_widths = [s.width for s in target.stages] if family == "resnet" else None
    ops = plan_growth(ancestor, _widths(target), stage_widths)
    assert ops is not None
    grown = ancestor.apply_all(ops)
    assert _widths(grown) == _widths(target)
    assert [s.width for s in grown.stages] == [s.width for s in target.stages]
    assert grown.dominates(ancestor)
    deepens = [i for i, op in enumerate(ops) if isinstance(op, Deepen)]
    assert deepens == list(range(len(deepens)))  # deepen first, then widen


def test_plan_growth_examples() -> None:
    assert plan_growth(CNN, [[8], [16]]) == []
    ops = plan_growth(CNN, [[8, 12], [32]])
    assert ops == [Deepen("s0l0", "s0l1"), Widen("s0l1", 12), Widen("s1l0", 32)]
    # a new layer can sit before a grown one: [16, 8] from [8] is deepen after s0l0, widen s0l0
    assert _widths(CNN.apply_all(plan_growth(CNN, [[16, 8], [16]]))) == [[16, 8], [16]]


@pytest.mark.parametrize(
    ("target", "stage_widths"),
    [
        ([[4], [16]], None),  # narrower
        ([[8]], None),  # fewer stages
        ([[8], [16], [16]], None),  # more stages
        ([[8], [16, 8]], None),  # a new layer narrower than the one it follows
    ],
)
def test_plan_growth_refuses_to_shrink(target, stage_widths) -> None:
    assert plan_growth(CNN, target, stage_widths) is None


def test_plan_growth_fewer_layers_and_stage_widths() -> None:
    assert plan_growth(MLP, [[16]]) is None
    assert plan_growth(RESNET, [[8], [8]], [8, 8]) is None  # stage width 16 -> 8
    ops = plan_growth(RESNET, [[16, 16], [8]], [16, 24])
    grown = RESNET.apply_all(ops)
    assert _widths(grown) == [[16, 16], [8]] and [s.width for s in grown.stages] == [16, 24]
    assert plan_growth(CNN, [[8], [16]], [8, 16]) is None  # stage widths are resnet only


def test_the_cost_cache_is_not_part_of_the_value() -> None:
    a, b = MutationSpace(), MutationSpace()
    a.params(CNN)
    assert a == b and hash(a) == hash(b)
    assert a != MutationSpace(max_params=10)
