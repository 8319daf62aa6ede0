"""What the controllers share: the seed first, the history of trials, a seeded generator, and a
JSON state that restores all of it exactly."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from pydantic import BaseModel

from growsearch.arch import ArchSpec
from growsearch.controllers._base import Controller, Proposal, TrialResult
from growsearch.exceptions import ConfigError, GrowsearchError
from growsearch.space import NoOptions, SearchSpace, validate_options

DUPLICATE_DRAWS = 8
"""Random children drawn before a duplicate of an earlier proposal is accepted."""

log = logging.getLogger("growsearch")


class GrowthController(Controller):
    """Base of the built-in controllers.

    It proposes the seed architecture first (again if every seed trial failed) and waits until
    one trial has succeeded; after that :meth:`_propose` decides. Subclasses keep any further
    state in :meth:`_extra_state` / :meth:`_load_extra_state`, and draw every random number
    from ``self.rng``.

    A child that cannot be built (``mutations.buildable``) is never proposed: it is drawn
    again, and remembered (``self.rejected``, by spec digest, with the reason) so that it is
    not built twice; so is a proposal the runner rejects (:meth:`reject`).
    """

    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(
        self,
        space: SearchSpace,
        seed: int | None = None,
        options: Mapping[str, Any] | None = None,
    ):
        if space.seed_arch is None:
            raise ConfigError(
                f"controller {self.name!r}: the search space has no seed architecture"
            )
        if options is None:
            options = space.controller.options if space.controller.name == self.name else {}
        self.space = space
        self.seed_arch: ArchSpec = space.seed_arch
        self.seed = space.seed if seed is None else int(seed)
        self.options = validate_options(self.Options, options)
        self.rng = random.Random(self.seed)
        self.proposed: dict[str, Proposal] = {}
        self.results: dict[str, TrialResult] = {}
        self._exhausted = False
        self.spread = 0  # initial, spread-out proposals made (see _spread)
        self.rejected: dict[str, str] = {}  # digest of a spec that cannot be built -> why
        self._spread_id: str | None = None  # the trial id of the last spread-out proposal

    # ---- the history -----------------------------------------------------------------------
    @property
    def pending(self) -> list[str]:
        """Trials proposed and not yet observed, in proposal order."""
        return [t for t in self.proposed if t not in self.results]

    def successes(self) -> list[TrialResult]:
        """Trials that ended with a validation accuracy, in completion order."""
        return [r for r in self.results.values() if r.ok]

    def best(self) -> TrialResult | None:
        """The first successful trial of :meth:`ranked` (the best objective value with one
        objective)."""
        ranked = self.ranked(self.successes())
        return ranked[0] if ranked else None

    def ranked(self, results: list[TrialResult]) -> list[TrialResult]:
        """``results`` best first by the space's objectives (:func:`rank_by_objectives`)."""
        return rank_by_objectives(results, self.space.objectives, self.space.modes)

    def front(self, results: list[TrialResult]) -> list[TrialResult]:
        """The members of ``results`` on the first Pareto front of the space's objectives (no
        other result is at least as good in every objective and better in one), in order."""
        return [
            results[i] for i in pareto_indices(results, self.space.objectives, self.space.modes)
        ]

    # ---- the interface ---------------------------------------------------------------------
    def propose(self, trial_id: str) -> Proposal | None:
        if trial_id in self.proposed:
            if trial_id in self.results:
                raise ValueError(f"trial {trial_id!r} has already ended; trial ids must be new")
            return self.proposed[trial_id]  # asked again (e.g. after a resume): same answer
        if not self.successes():
            if self.pending:
                return None  # the seed is training
            proposal: Proposal | None = Proposal(trial_id, self.seed_arch)
        else:
            proposal = self._propose(trial_id)
        self._exhausted = proposal is None and not self.pending
        if proposal is not None:
            self.proposed[trial_id] = proposal
        return proposal

    def observe(self, result: TrialResult) -> None:
        if result.trial_id in self.results:
            return  # a trial ends once; a repeat (e.g. replayed after a resume) changes nothing
        self.results[result.trial_id] = result
        self.proposed.setdefault(result.trial_id, result.proposal)
        self._exhausted = False
        self._observed(result)

    def reject(self, trial_id: str, reason: str) -> None:
        if trial_id in self.results:
            return
        proposal = self.proposed.pop(trial_id, None)
        if proposal is None:
            return
        self.rejected[proposal.arch.digest()] = reason
        if trial_id == self._spread_id:
            self.spread -= 1  # it did not spread anything
            self._spread_id = None
        self._exhausted = False
        self._rejected(proposal)

    def is_exhausted(self) -> bool:
        return self._exhausted

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {
            "controller": self.name,
            "seed": self.seed,
            "rng": [version, list(internal), gauss],
            "proposed": [p.to_dict() for p in self.proposed.values()],
            "results": [r.to_dict() for r in self.results.values()],
            "exhausted": self._exhausted,
            "spread": self.spread,
            "rejected": dict(self.rejected),
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("controller") != self.name:
            raise ConfigError(
                f"controller state: expected the state of {self.name!r}, got {state.get('controller')!r}"
            )
        self.seed = int(state["seed"])
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.proposed = {d["trial_id"]: Proposal.from_dict(d) for d in state["proposed"]}
        self.results = {}
        for d in state["results"]:
            r = TrialResult.from_dict(d)
            self.results[r.trial_id] = r
        self._exhausted = bool(state.get("exhausted", False))
        self.spread = int(state.get("spread", 0))  # absent in states saved before it existed
        self.rejected = {str(k): str(v) for k, v in state.get("rejected", {}).items()}
        self._load_extra_state(state)

    # ---- for subclasses --------------------------------------------------------------------
    def _propose(self, trial_id: str) -> Proposal | None:
        """The next proposal once a trial has succeeded, or None (wait, or nothing left)."""
        raise NotImplementedError

    def _observed(self, result: TrialResult) -> None:
        """Hook: ``result`` has just been added to ``self.results``."""

    def _rejected(self, proposal: Proposal) -> None:
        """Hook: ``proposal`` has just been rejected by the runner and removed from
        ``self.proposed`` (see :meth:`reject`)."""

    def _buildable(self, arch: ArchSpec) -> bool:
        """Whether ``arch`` builds into a model (``mutations.buildable``); a spec that does not
        is remembered in ``self.rejected``."""
        key = arch.digest()
        if key in self.rejected:
            return False
        reason = self.space.mutations.buildable(arch)
        if reason is None:
            return True
        self.rejected[key] = reason
        log.info(
            "growsearch: skipped a child that cannot be built: %s (%s)", arch.summary(), reason
        )
        return False

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Hook: restore :meth:`_extra_state`."""

    def _grow(
        self,
        trial_id: str,
        parent: TrialResult,
        new_only: bool = False,
        fill_gap: bool = False,
    ) -> Proposal | None:
        """A random child of ``parent`` (``mutations.random_child``), or None if it cannot grow.

        A child whose shape was already proposed is drawn again (a few times) before it is
        accepted: retraining a duplicate is rarely the best use of a worker. With ``new_only``
        it is not accepted at all (None: ``parent`` has nothing new to offer). With
        ``fill_gap`` and a size objective, the child is the one of a few random children that
        lands nearest the middle of the front's gap above ``parent`` (:meth:`_gap_target`).
        """
        sampler = self.space.mutations.random_child
        target = self._gap_target(parent) if fill_gap else None
        if target is not None:
            sampler = self._nearest(sampler, target, self.space.objectives[1])
        return self._draw(trial_id, parent, sampler, new_only)

    def _gap_target(self, parent: TrialResult) -> float | None:
        """With a size objective: the log-size halfway between ``parent`` and the next larger
        member of the Pareto front of the successful trials (the gap a child of ``parent``
        can fill), or None when ``parent`` is not on the front or is its largest member
        (its children may grow freely: they push the accuracy end).

        Every mutation grows a model, and a random one often grows it a lot (a doubled layer
        doubles its neighbours' weights too); children that land inside the front's gaps map
        the small accurate end of the trade-off instead of jumping past it."""
        if len(self.space.objectives) < 2:
            return None
        cost = self.space.objectives[1]
        front = self.front(self.successes())
        if parent.trial_id not in {r.trial_id for r in front}:
            return None
        own = float(getattr(parent, cost))
        above = [float(getattr(r, cost)) for r in front if float(getattr(r, cost)) > own]
        if not above:
            return None
        return (math.log(max(1.0, own)) + math.log(min(above))) / 2

    def _nearest(self, sampler: Any, target: float, cost: str, draws: int = 6) -> Any:
        """``sampler`` that draws ``draws`` candidates and returns the one whose ``cost``
        (``params`` or ``flops``) is nearest to ``target`` in log scale."""

        def draw(spec: Any, rng: Any) -> Any:
            found = [c for c in (sampler(spec, rng) for _ in range(draws)) if c]
            if not found:
                return None
            logs = self._log_costs(found, cost)
            return found[min(range(len(found)), key=lambda i: abs(logs[i] - target))]

        return draw

    def _log_costs(self, children: list[Any], cost: str) -> list[float]:
        """The log of ``cost`` (``params`` or ``flops``) of each (spec, ops) child."""
        measure = self.space.mutations.params if cost == "params" else self.space.mutations.flops
        return [math.log(max(1, measure(c[0]))) for c in children]

    def _spread(self, trial_id: str, of: int | None = None) -> Proposal | None:
        """A random descendant of the seed trial (``mutations.random_descendant``), one of a
        search's ``of`` initial, spread-out proposals; None if the seed cannot grow into
        anything not proposed before (a duplicate would only repeat a trial, not spread).

        With a size objective the proposals are stratified by size: the i-th of ``of`` is, of
        :data:`SIZE_CANDIDATES` random descendants, the one at quantile (i + 0.5) / ``of`` of
        their sizes, so the start covers the small end of the space as well as the large one
        (uniform draws over widths and depths are mostly large models)."""
        seed = self.successes()[0]  # the first success is the seed (proposed alone, first)
        sampler = self.space.mutations.random_descendant
        if of and len(self.space.objectives) > 1:
            sampler = self._by_size(sampler, (self.spread + 0.5) / of, self.space.objectives[1])
        proposal = self._draw(trial_id, seed, sampler, True)
        if proposal is not None:
            self.spread += 1
            self._spread_id = trial_id
        return proposal

    def _by_size(self, sampler: Any, quantile: float, cost: str) -> Any:
        """``sampler`` stratified by size: of :data:`SIZE_CANDIDATES` draws (random descendants,
        and short random walks of ``ops_per_child`` ops, which stay near the seed's size), the
        one whose ``cost`` (``params`` or ``flops``) is nearest, in log scale, to ``quantile``
        of the way from the smallest draw to the largest."""
        mutations = self.space.mutations

        def draw(spec: Any, rng: Any) -> Any:
            walks = SIZE_CANDIDATES // 3
            found = [sampler(spec, rng) for _ in range(SIZE_CANDIDATES - walks)]
            found += [mutations.random_child(spec, rng) for _ in range(walks)]
            found = [c for c in found if c]
            if not found:
                return None
            logs = self._log_costs(found, cost)
            target = min(logs) + quantile * (max(logs) - min(logs))
            return found[min(range(len(found)), key=lambda i: abs(logs[i] - target))]

        return draw

    def _draw(
        self, trial_id: str, parent: TrialResult, sampler: Any, new_only: bool
    ) -> Proposal | None:
        """``sampler(parent.arch, rng)`` as a proposal, drawn again while it is a duplicate or
        cannot be built (a child that cannot be built is never accepted)."""
        seen = {p.arch.summary() for p in self.proposed.values()}
        repeats = []  # duplicates drawn, in order (built only if one is accepted)
        rng = self._rng_for(parent)
        for _ in range(DUPLICATE_DRAWS):
            try:
                child = sampler(parent.arch, rng)
            except GrowsearchError as e:  # a candidate on the way could not be built
                log.info("growsearch: a child of %s could not be drawn: %s", parent.trial_id, e)
                continue
            if child is None:
                return None
            if child[0].summary() in seen:
                repeats.append(child)
            elif self._buildable(child[0]):
                break
        else:
            if new_only:
                return None
            child = next((c for c in repeats if self._buildable(c[0])), None)
            if child is None:
                return None
        arch, ops = cast("tuple[ArchSpec, tuple[Any, ...]]", child)
        return Proposal(trial_id, arch, parent.trial_id, ops)

    def _rng_for(self, parent: TrialResult) -> random.Random:
        """The generator a child of ``parent`` is drawn with: seeded by the search's seed, the
        parent's architecture (:meth:`~growsearch.arch.ArchSpec.shape_digest`: the same in any
        folder) and how many children of that architecture were proposed before, not by the
        shared stream. Which trial ends first changes with the machine's timing when trials run
        at once; the k-th child of an architecture does not (unless its first draw repeats an
        architecture proposed meanwhile, and is drawn again)."""
        key = parent.arch.shape_digest()
        k = sum(
            1
            for p in self.proposed.values()
            if p.parent_id is not None
            and p.parent_id in self.proposed
            and self.proposed[p.parent_id].arch.shape_digest() == key
        )
        return random.Random(f"{self.seed}:{key}:{k}")

    def _grow_any(
        self, trial_id: str, parents: list[TrialResult], new_only: bool = False
    ) -> Proposal | None:
        """A child of the first of ``parents`` that can still grow (into an architecture not
        proposed before, with ``new_only``), or None."""
        for parent in parents:
            proposal = self._grow(trial_id, parent, new_only=new_only)
            if proposal is not None:
                return proposal
        return None


SIZE_CANDIDATES = 12
"""Random descendants drawn per spread-out proposal of a search with a size objective."""


def by_value(results: list[TrialResult], mode: str = "max") -> list[TrialResult]:
    """``results`` best first by their objective value, highest first for ``mode`` ``max``,
    lowest for ``min`` (stable: earlier first among ties)."""
    sign = -1.0 if mode == "max" else 1.0
    return sorted(results, key=lambda r: sign * r.score)


def rank_by_objectives(
    results: list[TrialResult],
    objectives: tuple[str, ...] | list[str],
    modes: tuple[str, ...] | list[str] | None = None,
) -> list[TrialResult]:
    """``results`` best first for a search with these ``objectives``.

    The first objective is the trial's :attr:`~TrialResult.value` (its ``modes[0]``, by default
    ``max``); the others are ``params`` and/or ``flops``, always minimised. One objective:
    :func:`by_value`. Several: NSGA-II's order (Deb et al., 2002): by Pareto
    front (the first front: no other result is at least as good in every objective and better
    in one), within a front the most isolated first (crowding distance: the front's ends, then
    the members with the widest gap between their neighbours), then by value, then earlier
    first. A controller that picks its parents by this order keeps growing the small accurate
    trials as well as the most accurate ones, so the search maps the accuracy-size trade-off
    instead of only climbing towards the size limit.
    """
    mode = modes[0] if modes else "max"
    sign = 1.0 if mode == "max" else -1.0
    if len(objectives) <= 1:
        return by_value(results, mode)
    points = _points(results, objectives, sign)
    front_of = _fronts(points)
    front = max(front_of, default=-1) + 1
    n = len(results)
    crowding = [0.0] * n
    for f in range(front):
        members = [i for i in range(n) if front_of[i] == f]
        for k in range(len(objectives)):
            members.sort(key=lambda i: points[i][k])  # noqa: B023 (used inside the loop)
            lo, hi = points[members[0]][k], points[members[-1]][k]
            crowding[members[0]] = crowding[members[-1]] = float("inf")
            if hi > lo:
                for a, i, b in zip(members, members[1:], members[2:], strict=False):
                    crowding[i] += (points[b][k] - points[a][k]) / (hi - lo)
    order = sorted(
        range(n),
        key=lambda i: (front_of[i], -crowding[i], -sign * results[i].score, i),
    )
    return [results[i] for i in order]


def pareto_indices(
    results: list[TrialResult],
    objectives: tuple[str, ...] | list[str],
    modes: tuple[str, ...] | list[str] | None = None,
) -> list[int]:
    """The indices of ``results`` on their first Pareto front, in order (with one objective:
    those with the best value)."""
    if not results:
        return []
    sign = 1.0 if (modes[0] if modes else "max") == "max" else -1.0
    front_of = _fronts(_points(results, objectives, sign))
    return [i for i, f in enumerate(front_of) if f == 0]


def _points(
    results: list[TrialResult], objectives: tuple[str, ...] | list[str], sign: float
) -> list[tuple[float, ...]]:
    """Every result's objectives, each as "larger is better"."""
    return [
        tuple(sign * r.score if k == 0 else -float(getattr(r, o)) for k, o in enumerate(objectives))
        for r in results
    ]


def _fronts(points: list[tuple[float, ...]]) -> list[int]:
    """The Pareto front of every point (0: dominated by none; 1: by front 0 only; ...)."""

    def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    front_of = [0] * len(points)
    remaining = set(range(len(points)))
    front = 0
    while remaining:
        current = {
            i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining)
        }
        for i in current:
            front_of[i] = front
        remaining -= current
        front += 1
    return front_of
