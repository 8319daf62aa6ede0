"""Random growth: the honest baseline. Each child mutates a uniformly random successful trial."""

from __future__ import annotations

from growsearch.controllers._base import Proposal
from growsearch.controllers._growth import GrowthController
from growsearch.controllers._registry import register_controller


@register_controller("random")
class RandomGrowth(GrowthController):
    """Each proposal applies ``mutations.random_child`` to a uniformly random successful trial
    (the seed included); it never waits once the seed has trained."""

    def _propose(self, trial_id: str) -> Proposal | None:
        successes = self.successes()
        order = list(range(len(successes)))
        self.rng.shuffle(order)
        return self._grow_any(trial_id, [successes[i] for i in order])
