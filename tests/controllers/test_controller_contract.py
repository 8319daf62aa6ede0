"""The contract every controller honours, run over every registered controller and family."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
import torch

from growsearch.arch import ArchSpec, build
from growsearch.controllers import CONTROLLERS, TrialResult, make_controller
from growsearch.exceptions import MorphError
from growsearch.space import MutationSpace, SearchSpace
from tests.controllers._controller_contract import Cluster, objective, roundtrip

NAMES = sorted(CONTROLLERS)
FAMILIES = ["cnn", "mlp", "resnet"]


@pytest.mark.parametrize("name", NAMES)
def test_first_proposal_is_the_seed_and_then_it_waits(
    name: str, spaces: dict[str, SearchSpace]
) -> None:
    space = spaces["cnn"]
    controller = make_controller(name, space, seed=0)
    first = controller.propose("t0")
    assert first is not None
    assert first.arch == space.seed_arch and first.parent_id is None and first.ops == ()
    assert controller.propose("t1") is None  # nothing to grow from until the seed has trained
    assert not controller.is_exhausted()


@pytest.mark.parametrize("name", NAMES)
def test_a_failed_seed_is_proposed_again(name: str, spaces: dict[str, SearchSpace]) -> None:
    space = spaces["cnn"]
    controller = make_controller(name, space, seed=0)
    seed = controller.propose("t0")
    controller.observe(TrialResult(seed, "failed", None))
    again = controller.propose("t1")
    assert again is not None and again.arch == space.seed_arch and again.parent_id is None


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", NAMES)
def test_a_search_grows_valid_children_and_improves(
    name: str, family: str, spaces: dict[str, SearchSpace]
) -> None:
    space = spaces[family]
    controller = make_controller(name, space, seed=1)
    cluster = Cluster(space, concurrency=3, seed=2)
    cluster.run(controller, 30)

    by_id = {p.trial_id: p for p in cluster.proposals}
    assert cluster.proposals[0].arch == space.seed_arch
    assert len(cluster.ended) >= 8, "a search over a roomy space stops early"
    for p in cluster.proposals[1:]:
        assert space.mutations.fits(p.arch), p.arch.summary()
        if p.parent_id is None:
            continue
        assert p.parent_id in cluster.ok_before[p.trial_id], "grown from an unfinished trial"
        parent = by_id[p.parent_id].arch
        assert p.arch.dominates(parent)
        assert parent.apply_all(p.ops) == p.arch
    seed_acc = cluster.ended[[r.trial_id for r in cluster.ended].index("t0")].value
    best = max(r.value for r in cluster.ended if r.ok)
    assert best > seed_acc + 0.05
    json.dumps(controller.state_dict())  # JSON-serialisable


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_restores_exactly(name: str, spaces: dict[str, SearchSpace]) -> None:
    space = spaces["mlp"]
    original = make_controller(name, space, seed=3)
    cluster = Cluster(space, concurrency=3, seed=4)
    cluster.run(original, 12)  # stops with trials still running

    restored = make_controller(name, space, seed=99)  # the state carries the seed
    restored.load_state_dict(roundtrip(original.state_dict()))
    assert restored.state_dict() == roundtrip(original.state_dict())

    twin = Cluster(space, concurrency=3, seed=4)
    twin.__dict__.update(
        {k: copy.copy(v) for k, v in cluster.__dict__.items() if k not in ("rng", "space")}
    )
    twin.rng.setstate(cluster.rng.getstate())
    cluster.run(original, 30)
    twin.run(restored, 30)
    assert [p.to_dict() for p in twin.proposals] == [p.to_dict() for p in cluster.proposals]


@pytest.mark.parametrize("name", NAMES)
def test_controllers_pickle(name: str, spaces: dict[str, SearchSpace]) -> None:
    # A Ray Tune searcher's state is pickled, with its controller.
    space = spaces["cnn"]
    controller = make_controller(name, space, seed=0)
    Cluster(space, concurrency=2).run(controller, 6)
    again = pickle.loads(pickle.dumps(controller))
    assert again.state_dict() == controller.state_dict()
    assert again.propose("next").to_dict() == controller.propose("next").to_dict()


@pytest.mark.parametrize("name", NAMES)
def test_asking_twice_for_a_running_trial_gives_the_same_proposal(
    name: str, spaces: dict[str, SearchSpace]
) -> None:
    controller = make_controller(name, spaces["cnn"], seed=0)
    seed = controller.propose("t0")
    assert controller.propose("t0") == seed
    controller.observe(TrialResult(seed, "completed", 0.5))
    with pytest.raises(ValueError, match="already ended"):
        controller.propose("t0")


@pytest.mark.parametrize("name", NAMES)
def test_a_space_with_no_room_is_exhausted(name: str, tmp_path) -> None:
    from growsearch.space import load_space

    path = tmp_path / "tight.yaml"
    path.write_text(
        "dataset: {name: digits}\n"
        "seed_model: {family: mlp, stages: [[8]]}\n"
        "mutations: {widen: {max_width: 8}, deepen: {max_layers_per_stage: 1}}\n"
    )
    space = load_space(path)
    controller = make_controller(name, space)
    seed = controller.propose("t0")
    controller.observe(TrialResult(seed, "completed", 0.5))
    assert controller.propose("t1") is None
    assert controller.is_exhausted()


@pytest.mark.parametrize("name", NAMES)
def test_children_build(name: str, spaces: dict[str, SearchSpace]) -> None:
    space = spaces["resnet"]
    controller = make_controller(name, space, seed=5)
    cluster = Cluster(space, concurrency=2, seed=5)
    cluster.run(controller, 6)
    assert len(cluster.ended) == 6 and len(cluster.proposals) >= 6
    grown = [p for p in cluster.proposals if p.parent_id is not None]
    assert len({p.arch.summary() for p in grown}) >= 2, [p.arch.summary() for p in grown]
    x = torch.randn(2, *space.seed_arch.input_shape)
    for p in cluster.proposals:
        model = build(p.arch)
        assert sum(q.numel() for q in model.parameters()) == space.mutations.params(p.arch)
        assert model(x).shape == (2, p.arch.num_classes), p.arch.summary()


def test_objective_is_deterministic(spaces: dict[str, SearchSpace]) -> None:
    space = spaces["cnn"]
    assert objective(space, space.seed_arch) == objective(space, space.seed_arch)


def _no_width_above(limit: int):
    """A stand-in for ``MutationSpace.buildable``: specs with a width above ``limit`` fail."""

    def buildable(self: MutationSpace, spec: ArchSpec) -> str | None:
        widths = [layer.width for layer in spec.layers] + [s.width or 0 for s in spec.stages]
        return None if max(widths) <= limit else f"widen: width {max(widths)} cannot be built"

    return buildable


@pytest.mark.parametrize("name", NAMES)
def test_children_that_cannot_be_built_are_never_proposed(
    name: str, spaces: dict[str, SearchSpace], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MutationSpace, "buildable", _no_width_above(24))
    space = spaces["cnn"]  # widths up to 64
    controller = make_controller(name, space, seed=1)
    cluster = Cluster(space, concurrency=3, seed=2)
    cluster.run(controller, 20)
    assert len(cluster.ended) >= 5
    assert all(max(x.width for x in p.arch.layers) <= 24 for p in cluster.proposals)
    json.dumps(controller.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_a_rejected_proposal_is_forgotten(name: str, spaces: dict[str, SearchSpace]) -> None:
    space = spaces["cnn"]
    controller = make_controller(name, space, seed=0)
    Cluster(space, concurrency=2).run(controller, 5)
    first = controller.propose("t99")
    assert first is not None
    controller.reject("t99", "MorphError: cannot grow it")
    assert "t99" not in controller.proposed
    again = controller.propose("t99")  # asked again, same id: something else
    assert again is not None and again.arch.digest() != first.arch.digest()
    assert controller.rejected[first.arch.digest()] == "MorphError: cannot grow it"
    restored = make_controller(name, space, seed=5)
    restored.load_state_dict(roundtrip(controller.state_dict()))
    assert restored.rejected == controller.rejected


@pytest.mark.parametrize("name", NAMES)
def test_a_sampler_error_is_a_draw_that_failed(
    name: str, spaces: dict[str, SearchSpace], monkeypatch: pytest.MonkeyPatch
) -> None:
    space = spaces["cnn"]
    controller = make_controller(name, space, seed=0)
    Cluster(space, concurrency=2).run(controller, 3)

    def broken(self: MutationSpace, spec: ArchSpec, rng: object) -> None:
        raise MorphError("widen layer2.conv2: new width must be an integer > 24, got 24")

    monkeypatch.setattr(MutationSpace, "random_child", broken)
    monkeypatch.setattr(MutationSpace, "random_descendant", broken)
    got = controller.propose("t50")  # never the error
    if name == "optuna":  # it samples its own architectures: a new one within the limits
        assert got is not None
        assert space.mutations.buildable(got.arch) is None and space.mutations.fits(got.arch)
    else:  # every draw failed: nothing to propose
        assert got is None and "t50" not in controller.proposed
    monkeypatch.undo()  # the sampler works again: so does the controller
    assert controller.propose("t51") is not None
