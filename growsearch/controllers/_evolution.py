"""Aging (regularized) evolution, asynchronous: Real et al., "Regularized Evolution for Image
Classifier Architecture Search", AAAI 2019, with widen/deepen ops as the mutations."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import field_validator
from pydantic_core.core_schema import ValidationInfo

from growsearch.controllers._base import Proposal
from growsearch.controllers._growth import GrowthController
from growsearch.controllers._registry import register_controller
from growsearch.space import Section, boolean, integer, invalid


class EvolutionOptions(Section):
    """Options of ``evolution``.

    Attributes:
        population: The population is the most recent ``population`` successful trials (the
            oldest leaves as a new one arrives: aging).
        sample: Members drawn (without replacement) per proposal; the best of them is mutated.
        initial: Proposals right after the seed that are random points of the space the seed
            grows into (``mutations.random_descendant``, warm-started from the seed), not
            1-op or 2-op mutations: the random initial population of Real et al. It spreads
            the first generation over the space instead of creeping out of a small seed.
        initial_by_size: With a size objective, stratify those proposals by size (log scale,
            from near the seed's size to the largest draws), so the small end of the space is
            explored from the start; false: uniform draws, which are mostly large models.
        keep_front: With a size objective, the Pareto front of all successful trials stays in
            the pool the tournament draws from after its members have aged out of the
            population (elitism, as NSGA-II keeps its front): the small accurate models keep
            being grown, instead of the population drifting towards the size limit (every
            mutation grows a model); false: the aging population alone.
        fill_gaps: With a size objective, a child of a member of the Pareto front (other than
            its largest) is, of a few random children, the one nearest (log scale) the middle of
            the front's gap above its parent: the small accurate end is mapped step by step
            instead of jumped past; false: one random child.
    """

    population: Annotated[int, integer(lo=1)] = 8
    sample: Annotated[int, integer(lo=1)] = 3
    initial: Annotated[int, integer(lo=0)] = 4
    initial_by_size: Annotated[bool, boolean()] = True
    keep_front: Annotated[bool, boolean()] = True
    fill_gaps: Annotated[bool, boolean()] = True

    @field_validator("sample")
    @classmethod
    def _at_most_population(cls, v: int, info: ValidationInfo) -> int:
        population = info.data.get("population")
        if population is not None and v > population:
            raise invalid(f"an integer <= population ({population})", v)
        return v


@register_controller("evolution")
class Evolution(GrowthController):
    """Aging evolution. Once the seed has trained, every proposal mutates a parent; it never
    waits for running trials.

    The first ``initial`` proposals after the seed are random descendants of it. Then, until
    ``population`` trials have succeeded, the parent is the best so far; after that it is the
    best of ``sample`` members drawn from the population. "Best" follows the space's
    ``objectives`` (:func:`~growsearch.controllers.rank_by_objectives`): the best objective value,
    or with a size objective the member on the better Pareto front, the more isolated on it. A child repeats an architecture
    already proposed only when no successful trial can grow into a new one: when the parent has
    nothing new left (at the space's limits), the best trial that has grows instead.
    """

    Options = EvolutionOptions

    def _propose(self, trial_id: str) -> Proposal | None:
        opts: Any = self.options
        if self.spread < opts.initial:
            spread = self._spread(trial_id, of=opts.initial if opts.initial_by_size else None)
            if spread is not None:
                return spread
        successes = self.successes()
        population = successes[-opts.population :]
        if len(population) < opts.population:
            parent = self.ranked(successes)[0]
        else:  # the tournament: the best of the drawn members, ranked within the pool
            pool = population
            if opts.keep_front and len(self.space.objectives) > 1:
                aged = {r.trial_id for r in population}
                pool = population + [r for r in self.front(successes) if r.trial_id not in aged]
            drawn = {r.trial_id for r in self.rng.sample(pool, min(opts.sample, len(pool)))}
            parent = next(r for r in self.ranked(pool) if r.trial_id in drawn)
        # Something not proposed before: from the parent, else from the best trial that can
        # still grow into something new (a parent at the space's limits often has one child
        # left; retraining it again and again only re-rolls its initialisation). Only when no
        # trial has anything new left is a repeat better than idling.
        ranked = self.ranked(successes)
        return (
            self._grow(trial_id, parent, new_only=True, fill_gap=opts.fill_gaps)
            or self._grow_any(trial_id, ranked, new_only=True)
            or self._grow(trial_id, parent)
            or self._grow_any(trial_id, ranked)
        )
