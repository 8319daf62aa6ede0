"""Hill climbing by network morphisms: NASH (Elsken, Metzen, Hutter, "Simple and efficient
architecture search for convolutional neural networks", 2017)."""

from __future__ import annotations

from typing import Annotated, Any

from growsearch.controllers._base import Proposal, TrialResult
from growsearch.controllers._growth import GrowthController
from growsearch.controllers._registry import register_controller
from growsearch.space import Section, boolean, integer


class HillclimbOptions(Section):
    """Options of ``hillclimb``.

    Attributes:
        neighbours: Children per round, each grown from the current best by a short random
            sequence of ops.
        initial: Children of the first round, each a random point of the space the seed grows
            into (``mutations.random_descendant``, warm-started from the seed) instead of a
            neighbour: the climb starts from the best of a spread-out sample, not by creeping
            out of a small seed. 0: the first round is ``neighbours`` neighbours of the seed.
        initial_by_size: With a size objective, stratify that round by size (log scale, from
            near the seed's size to the largest draws); false: uniform draws.
    """

    neighbours: Annotated[int, integer(lo=1)] = 4
    initial: Annotated[int, integer(lo=0)] = 4
    initial_by_size: Annotated[bool, boolean()] = True


@register_controller("hillclimb")
class Hillclimb(GrowthController):
    """Rounds of ``neighbours`` children of the current architecture; when every child of a
    round has ended, the best of (current, children) becomes current. It waits (None) while a
    round's children are all proposed but not all ended. The first round is ``initial`` random
    descendants of the seed (``initial`` 0: ``neighbours`` children of it, as NASH starts).

    When the current architecture cannot grow any more (it is at the space's limits), the climb
    restarts from the best trial that can still grow into an architecture not proposed before,
    instead of ending the search with budget left; it ends when no successful trial can.
    """

    Options = HillclimbOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.current: str | None = None  # trial id of the current architecture
        self.round: list[str] = []  # children proposed in this round
        self.round_full = False  # no more children this round (enough, or none can grow)
        self.rounds = 0
        self.restarts = 0  # climbs restarted from another trial (the current one could not grow)

    def _propose(self, trial_id: str) -> Proposal | None:
        if self.current is None:
            best = self.best()
            assert best is not None  # _propose is called once a trial has succeeded
            self.current = best.trial_id
        if self.round_full:
            return None
        opts: Any = self.options
        first = self.rounds == 0 and opts.initial > 0  # the spread-out first round
        if first:
            proposal = self._spread(trial_id, of=opts.initial if opts.initial_by_size else None)
        else:  # a neighbour not proposed before (repeats only re-roll an initialisation)
            proposal = self._grow(trial_id, self.results[self.current], new_only=True)
        if proposal is None and not self.round:
            # a dead end with no round in flight: climb on from the best trial that can still
            # grow into something new (re-proposing a trained shape would only repeat it)
            proposal = self._grow_any(trial_id, self.ranked(self.successes()), new_only=True)
            if proposal is not None:
                self.current = proposal.parent_id
                self.restarts += 1
        if proposal is None:
            self.round_full = True
            self._maybe_close_round()
            return None
        self.round.append(trial_id)
        self.round_full = len(self.round) >= (opts.initial if first else opts.neighbours)
        return proposal

    def _observed(self, result: TrialResult) -> None:
        if self.current is None and result.ok:
            self.current = result.trial_id  # the seed
        self._maybe_close_round()

    def _rejected(self, proposal: Proposal) -> None:
        if proposal.trial_id in self.round:  # its place in the round is free again
            self.round.remove(proposal.trial_id)
            self.round_full = False

    def _maybe_close_round(self) -> None:
        """Move to the best of (current, children) once every child of the round has ended."""
        if not (self.round_full and self.round and all(t in self.results for t in self.round)):
            return
        assert self.current is not None  # a round grows from the current trial
        contenders = [self.results[self.current]] + [self.results[t] for t in self.round]
        winner = self.ranked([r for r in contenders if r.ok])[0]
        self.current = winner.trial_id
        self.round, self.round_full = [], False
        self.rounds += 1

    def _extra_state(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "round": list(self.round),
            "round_full": self.round_full,
            "rounds": self.rounds,
            "restarts": self.restarts,
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.current = state["current"]
        self.round = list(state["round"])
        self.round_full = bool(state["round_full"])
        self.rounds = int(state["rounds"])
        self.restarts = int(state.get("restarts", 0))  # absent in states saved before it existed
