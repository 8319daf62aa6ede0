"""A reusable contract suite: every controller must pass it (like optuna's
``optuna/testing/pytest_samplers.py``).

A simulated cluster drives a controller with a synthetic but deterministic objective, runs
trials concurrently, completes them out of order and fails some.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from dataclasses import dataclass, field

from growsearch.arch import ArchSpec
from growsearch.controllers import Controller, Proposal, TrialResult
from growsearch.space import SearchSpace


def objective(space: SearchSpace, arch: ArchSpec) -> float:
    """A smooth, saturating function of the parameter count (bigger is better, up to a point)."""
    params = space.mutations.params(arch)
    return round(1.0 - 0.5 * math.exp(-params / 20000.0), 6)


def fails(trial_id: str) -> bool:
    """Some trials fail, deterministically by id (never the seed, ``t0``)."""
    return trial_id != "t0" and zlib.crc32(trial_id.encode()) % 6 == 0


@dataclass
class Cluster:
    """``concurrency`` workers; a finished trial is drawn at random among the running ones."""

    space: SearchSpace
    concurrency: int = 3
    seed: int = 0
    running: list[Proposal] = field(default_factory=list)
    started: int = 0
    ended: list[TrialResult] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)
    ok_before: dict[str, set[str]] = field(default_factory=dict)  # successes when proposed

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def fill(self, controller: Controller, limit: int) -> None:
        """Start trials while a worker is free and the controller has one."""
        while len(self.running) < self.concurrency and self.started < limit:
            proposal = controller.propose(f"t{self.started}")
            if proposal is None:
                return
            self.started += 1
            self.ok_before[proposal.trial_id] = {r.trial_id for r in self.ended if r.ok}
            self.running.append(proposal)
            self.proposals.append(proposal)

    def finish_one(self, controller: Controller) -> TrialResult:
        """End a random running trial and tell the controller."""
        proposal = self.running.pop(self.rng.randrange(len(self.running)))
        if fails(proposal.trial_id):
            result = TrialResult(proposal, "failed", None)
        else:
            acc = objective(self.space, proposal.arch)
            result = TrialResult(
                proposal,
                "completed",
                acc,
                params=self.space.mutations.params(proposal.arch),
                epochs=3,
            )
        controller.observe(result)
        self.ended.append(result)
        return result

    def run(self, controller: Controller, trials: int) -> None:
        """Drive ``controller`` until ``trials`` trials have ended (or it is exhausted)."""
        while len(self.ended) < trials:
            self.fill(controller, trials)
            if not self.running:
                assert controller.is_exhausted(), "controller waits with nothing running"
                return
            self.finish_one(controller)


def roundtrip(state: dict) -> dict:
    """The state through JSON, as a resume stores it."""
    return json.loads(json.dumps(state))
