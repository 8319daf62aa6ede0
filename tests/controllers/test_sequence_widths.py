"""Every controller grows the widths of sequence models: the GRU's hidden size and the
transformer's residual stream (in whole heads) of the worked examples under search_spaces/."""

from __future__ import annotations

from pathlib import Path

import pytest

from growsearch.controllers import CONTROLLERS, make_controller
from growsearch.space import load_space
from tests.controllers._controller_contract import Cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    # space, the width group a sequence layer owns, the step its widths keep
    "gru": (ROOT / "search_spaces" / "gru_mnist1d" / "space.yaml", "rnn", 1),
    "transformer": (ROOT / "search_spaces" / "transformer_tokens" / "space.yaml", "embed", 8),
}


@pytest.mark.parametrize("controller", sorted(CONTROLLERS))
@pytest.mark.parametrize("example", list(EXAMPLES))
def test_every_controller_grows_the_widths_of_sequence_layers(
    example: str, controller: str
) -> None:
    """A short search (14 trials) of each example widens the sequence layer's width group, in
    steps the space allows. Whether 14 trials draw a given op is up to the search's seed (once
    a transformer has a LayerNorm block inserted, its stream can only double, a rare op, and
    evolution's gap-filling children prefer cheap ops below the front's largest member): the
    search runs with seed 0, and with 1 and 2 only while none has widened it."""
    path, group, step = EXAMPLES[example]
    space = load_space(path)
    seed = space.seed_arch
    assert seed is not None and group in [layer.name for layer in seed.layers]
    start = seed.width_of(group)
    widths: set[int] = set()
    for search_seed in (0, 1, 2):
        cluster = Cluster(space, concurrency=2)
        cluster.run(make_controller(controller, space, seed=search_seed), 14)
        for proposal in cluster.proposals:  # what the controller proposes, the space allows
            assert space.mutations.buildable(proposal.arch) is None, proposal.arch.summary()
        widths |= {p.arch.width_of(group) for p in cluster.proposals}
        if max(widths) > start:
            break
    assert max(widths) > start, f"{controller} never widened {group}: {sorted(widths)}"
    assert all(w % step == 0 for w in widths), sorted(widths)  # whole attention heads


def test_a_users_space_proposes_the_same_children_in_any_folder(tmp_path: Path) -> None:
    """The children drawn for a user's model do not depend on where its files live (a fresh
    clone, another machine): the per-parent generators are keyed by the architecture, with the
    factory by file name."""
    import shutil

    proposals = []
    for folder in ("a", "deeper/b"):
        copy = tmp_path / folder
        shutil.copytree(ROOT / "search_spaces" / "gru_mnist1d", copy)
        space = load_space(copy / "space.yaml")
        cluster = Cluster(space, concurrency=2)
        cluster.run(make_controller("evolution", space, seed=0), 8)
        proposals.append([p.arch.summary() for p in cluster.proposals])
    assert proposals[0] == proposals[1]
