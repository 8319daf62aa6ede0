"""Engine-level growth of every zoo model, without Ray: the search space finds layers to grow in
it, and random descendants (1-2 ops per step, several steps) built by the morph engine compute the
parent's function exactly.

This is the only test of the Conv3d model (no built-in dataset has 3-D samples, so it cannot be
searched through the CLI), and a fast first check for every other model: when it fails, the CLI
search of the same model in test_zoo_search.py fails for the same reason.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from growsearch.arch import ArchSpec, Deepen, Widen, build
from growsearch.arch._custom import build_custom_meta
from growsearch.grow import WarmStartRecipe, apply_ops
from growsearch.morph import EXACT_INITS
from growsearch.space._mutations import MutationSpace
from tests.fixtures.zoo import ZOO, example, input_dtype

GENERATIONS = 3  # grow the grown model again: the recorded history is replayed each time
SEARCH_INIT = WarmStartRecipe().init  # what a search's warm children use by default
TOL = 1e-5
MAX_DRAWS = 50  # children drawn for a kind of op the first generations did not grow


def _missing(seen: set[type]) -> str:
    return " and ".join(t.__name__ for t in (Widen, Deepen) if t not in seen)


def _randomise(model: nn.Module, seed: int) -> None:
    """Make every normalisation layer non-trivial (as training would): affine parameters and
    running statistics away from their (1, 0) initial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm):
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                    m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                if getattr(m, "running_mean", None) is not None:
                    m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                    m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


@pytest.mark.slow  # 0.5-6 s per model on an idle 2-core machine (each proposal is built)
@pytest.mark.parametrize("name", list(ZOO))
def test_random_descendants_preserve_the_function(name: str) -> None:
    factory, _, shape = ZOO[name]
    spec = ArchSpec.from_user_model(factory, None, shape, 10, input_dtype(name))
    assert spec.family == "custom" and (spec.layers or spec.custom.sites), spec
    space = MutationSpace(ops_per_child=(1, 2))
    rng = random.Random(0)
    torch.manual_seed(0)
    x = example(name, 16)
    model = build(spec, seed=0)
    _randomise(model, 0)
    model.eval()
    seen: set[type] = set()
    generation = 0
    while generation < GENERATIONS or seen != {Widen, Deepen}:
        step = space.random_child(spec, rng)
        assert step is not None, f"{name}: no op can grow {spec.summary()}"
        if generation >= GENERATIONS:  # one more step, of the kind not grown yet
            for _ in range(MAX_DRAWS):
                if not {type(o) for o in step[1]} <= seen:
                    break
                step = space.random_child(spec, rng)
            else:
                raise AssertionError(f"{name}: {MAX_DRAWS} children without {_missing(seen)}")
        child_spec, ops = step
        with torch.no_grad():
            before = model(x)
        child, got_spec = apply_ops(
            model, spec, ops, init=SEARCH_INIT, calibration=x, seed=generation
        )
        assert got_spec == child_spec
        # spec == model: the grown model, analysed afresh, has the spec's width groups and widths
        assert space.buildable(child_spec) is None, space.buildable(child_spec)
        child.eval()
        with torch.no_grad():
            after = child(x)
        err = float((after - before).abs().max() / before.abs().max().clamp_min(1e-12))
        assert err <= TOL, (
            f"{name}: generation {generation}, ops {[str(o) for o in ops]}: {err:.3g}"
        )
        seen |= {type(o) for o in ops}
        model, spec = child, child_spec
        generation += 1
    assert seen == {Widen, Deepen}, name  # every model both widens and deepens
    rebuilt = build(spec)  # the spec alone (factory + history) gives the grown model's shapes
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    # so does the meta build, replayed from cached ancestors' builds (what proposals are checked on)
    meta = build_custom_meta(spec.custom, spec.input_shape)
    assert {k: v.shape for k, v in meta.state_dict().items()} == shapes


@pytest.mark.parametrize("init", EXACT_INITS)
@pytest.mark.parametrize("name", list(ZOO))
def test_every_width_group_widens_exactly(name: str, init: str) -> None:
    """Each width the space offers, grown alone by its smallest allowed step with each exact
    init, preserves the function (groups that a LayerNorm/GroupNorm normalises together grow by
    integer factors)."""
    factory, _, shape = ZOO[name]
    spec = ArchSpec.from_user_model(factory, None, shape, 10, input_dtype(name))
    torch.manual_seed(0)
    x = example(name, 16)
    model = build(spec, seed=0)
    _randomise(model, 1)
    model.eval()
    if not spec.layers:  # nothing widens in the seed (a ViT): a block's inner width does
        site = spec.custom.sites[0][0]
        grow = Deepen(site, spec.new_layer_name(site))
        model, spec = apply_ops(model, spec, [grow], init=init, calibration=x, seed=0)
        with torch.no_grad():  # as if trained: the block's zero last layer is not zero any more
            for p in model.get_submodule(f"gs_blocks.{grow.name}").parameters():
                p.normal_(0.0, 0.2)
        model.eval()
    with torch.no_grad():
        before = model(x)
    smallest: dict[str, Widen] = {}
    for op in MutationSpace().widen_ops(spec):
        if op.target not in smallest or op.width < smallest[op.target].width:
            smallest[op.target] = op
    assert set(smallest) == set(spec.widen_targets()), (smallest, spec.widen_targets())
    errors = {}
    for op in smallest.values():
        child, _ = apply_ops(model, spec, [op], init=init, seed=1)
        child.eval()
        with torch.no_grad():
            after = child(x)
        errors[str(op)] = float((after - before).abs().max() / before.abs().max())
    assert errors, f"{name}: nothing to widen"
    assert max(errors.values()) <= TOL, errors


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_random_point_of_a_user_models_space_is_drawn_in_seconds() -> None:
    """evolution's and hillclimb's default initial proposals are ``random_descendant``s of the
    seed; for a user's model each must come in seconds, or a search with the default controller
    never gets past its seed."""
    import time

    factory, _, shape = ZOO["basic_resnet"]
    spec = ArchSpec.from_user_model(factory, None, shape, 10)
    t0 = time.perf_counter()
    got = MutationSpace().random_descendant(spec, random.Random(0))
    seconds = time.perf_counter() - t0
    assert got is not None
    assert seconds < 30, f"random_descendant took {seconds:.0f}s ({len(got[1])} ops)"


def _zero_slices(model: nn.Module) -> list[str]:
    """Weights (2-D and up) with an output row or an input column that is all zero: what a
    function-preserving morph gives new units (zero outgoing weights, a zero last layer)."""
    found = []
    for name, p in model.named_parameters():
        if p.dim() < 2:
            continue
        for dim in (0, 1):
            if (p.detach().abs().sum(dim=[d for d in range(p.dim()) if d != dim]) == 0).any():
                found.append(f"{name} (dim {dim})")
    return found


@pytest.mark.parametrize("name", list(ZOO))
def test_a_grown_spec_builds_freshly_initialised(name: str) -> None:
    """``build(grown spec, seed)`` is a network of that architecture from scratch (what a
    from-scratch child trains and what shrink-and-perturb adds as noise), not the morph's
    function-preserving child: added units and blocks have fresh weights in and out, seeded."""
    factory, _, shape = ZOO[name]
    spec = ArchSpec.from_user_model(factory, None, shape, 10, input_dtype(name))
    space = MutationSpace()
    widen = space.widen_ops(spec)  # none for a ViT: its only growth is blocks
    ops = [*([min(widen, key=lambda o: o.width)] if widen else []), *space.deepen_ops(spec)[:1]]
    grown = spec.apply_all(ops)
    own = set(_zero_slices(build(spec, seed=1)))  # by design only (an embedding's padding row)
    assert own <= {"embed.weight (dim 0)"}, "the factory's own init has zero slices"
    morphed, _ = apply_ops(build(spec, seed=1), spec, ops, init="zero", seed=0)
    assert set(_zero_slices(morphed)) - own, "the morph's child should hold zeros (else vacuous)"
    fresh = build(grown, seed=1)
    assert set(_zero_slices(fresh)) <= own
    again, other = build(grown, seed=1).state_dict(), build(grown, seed=2).state_dict()
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, again[key]), f"{key}: the same seed built different weights"
    added = [k for k, v in fresh.state_dict().items() if v.dim() >= 2 and "gs_blocks" in k]
    assert all(not torch.equal(fresh.state_dict()[k], other[k]) for k in added), added


def test_a_width_that_only_fails_when_the_model_runs_is_refused_not_offered() -> None:
    """A hand-written attention reshapes with a width read from the input's shape: the coupling
    analysis alone would offer the residual stream as a width; widened on the meta device it
    fails, so it is refused with that reason and its sites keep the stream's fixed width."""
    factory, _, shape = ZOO["own_vit"]
    spec = ArchSpec.from_user_model(factory, None, shape, 10)
    refused = dict(spec.custom.refused)
    assert "forward fails" in refused["patch"], refused
    assert {x.name for x in spec.layers} == {"blocks_0_fc1", "blocks_1_fc1"}
    sites = {s[0]: s for s in spec.custom.sites}
    assert sites["blocks_0_ln1"][2:] == ("", 0, 32)  # fixed: no group, Linear blocks of 32
    assert sites["blocks_0_act"][2] == "blocks_0_fc1"  # the MLP's hidden width: a group
    for op in MutationSpace().widen_ops(spec):  # every width offered builds
        assert MutationSpace().buildable(spec.apply(op)) is None, op
