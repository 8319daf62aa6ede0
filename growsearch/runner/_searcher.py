"""Bridges a controller (ask/tell) to Ray Tune's Searcher interface, and persists the search.

growsearch trial ids (``t0000``, ``t0001``, …) are its own, independent of Ray's: a resumed
search runs as a new Tune experiment in the same run folder, re-issuing the trials that were
running (they continue from their last checkpoint) before asking the controller for new ones.
After every event the searcher's state — the controller's ``state_dict``, every issued proposal,
which ones finished — is written atomically to ``search_state.json`` (JSON, never pickle).

A search never dies on a proposal: one whose child cannot be built in the driver (its cost is
measured here, which builds it) is not issued; the controller is told (``reject``) and asked
again, a bounded number of times. A trial that fails in its worker is recorded as failed (by the
results callback) and observed as failed by the controller; the search goes on.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from growsearch.arch import ArchSpec, build, count_flops, count_params
from growsearch.controllers import Controller, Proposal, TrialResult
from growsearch.exceptions import GrowsearchError
from growsearch.results import trial_status
from growsearch.space import TrainingConfig
from growsearch.storage import Location, location

STATE_FILE = "search_state.json"
MAX_REJECTED = 20
"""Proposals that cannot be built, or failed ``propose`` calls, for one trial before the
searcher stops asking: until a running trial ends, or, with none running, for the session."""

log = logging.getLogger("growsearch")


class ControllerSearcher(Searcher):
    """Asks the controller for trials and tells it how they ended.

    Budgets in trials and in planned training epochs are enforced here: once ``max_trials``
    proposals have been issued (or their planned epochs reach ``max_epochs``), it reports
    FINISHED, so a search of N trials ends with N trials however often it was interrupted.
    """

    def __init__(
        self,
        controller: Controller,
        settings: dict[str, Any],
        *,
        max_trials: int | None,
        max_epochs: int | None,
        state_dir: str | Path | Location | None = None,
    ):
        objective = settings.get("objective") or {"metric": "val_acc", "mode": "max"}
        super().__init__(metric=objective["metric"], mode=objective["mode"])
        self.controller = controller
        self.settings = settings  # JSON, sent to every trial (see _trainable.TrialSettings)
        self.objective = str(objective["metric"])
        self._training = TrainingConfig.model_validate(settings["training"])
        self.max_trials = max_trials
        self.max_epochs = max_epochs
        # the run folder (a local path or a URI): search_state.json is written there before the
        # trial it issues starts, so a resume never issues a trial id twice
        self.state_dir = None if state_dir is None else location(state_dir)
        self.issued: dict[str, dict[str, Any]] = {}  # our id -> proposal dict, in issue order
        self.finished: set[str] = set()
        self.pending: list[str] = []  # issued, not finished, to re-run first (after a resume)
        self.ray_ids: dict[str, str] = {}  # Ray's trial id -> our id
        self.elapsed_s = 0.0  # wall time of earlier sessions (time budget across resumes)
        self.converged = False  # the controller said it will never propose again
        self.stuck = False  # nothing buildable came in MAX_REJECTED tries, nothing running
        self._stalled = False  # the same, with trials running: wait for one to end
        self._costs: dict[str, dict[str, int]] = {}
        self.fatal: str | None = None  # why no trial can succeed (the loop's reports): stop

    # ---- budget ----------------------------------------------------------------------------
    def _planned_epochs(self) -> int:
        t = self._training
        return sum(t.epochs_for(child=p["parent_id"] is not None) for p in self.issued.values())

    def exhausted(self) -> bool:
        if self.converged or self.stuck:  # nothing (buildable) left to propose
            return True
        if self.max_trials is not None and len(self.issued) >= self.max_trials:
            return True
        return self.max_epochs is not None and self._planned_epochs() >= self.max_epochs

    def complete(self) -> bool:
        """Every trial the budget allows was issued and has ended."""
        return self.exhausted() and not self.pending and self.finished >= set(self.issued)

    # ---- Searcher API ----------------------------------------------------------------------
    # Ray annotates ``Optional[Dict]`` but documents and handles ``Searcher.FINISHED`` (a str) too
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        if trial_id in self.ray_ids:  # Tune re-asks for a trial it restarts
            return self._config(self.ray_ids[trial_id])
        if self.fatal is not None:
            return Searcher.FINISHED
        if self.pending:
            ours = self.pending.pop(0)
        elif self.exhausted():
            return Searcher.FINISHED
        else:
            ours = f"t{len(self.issued):04d}"
            proposal = self._propose(ours)
            if proposal is None:
                if self.converged or self.stuck:  # nothing running, nothing left to grow
                    self._persist()
                    return Searcher.FINISHED
                return None  # the controller waits for running trials; Tune asks again later
            self.issued[ours] = proposal.to_dict()
        self.ray_ids[trial_id] = ours
        self._persist()
        return self._config(ours)

    def _propose(self, ours: str) -> Proposal | None:
        """The controller's next proposal whose child can be built (its cost measured), else
        None: the controller waits or is exhausted (``converged``), or nothing buildable came
        in :data:`MAX_REJECTED` tries (``_stalled`` until a trial ends, or ``stuck``)."""
        if self._stalled:
            return None
        for _ in range(MAX_REJECTED):
            try:
                proposal = self.controller.propose(ours)
            except GrowsearchError as e:
                log.warning("growsearch: the controller could not propose trial %s: %s", ours, e)
                continue
            if proposal is None:
                self.converged = self.controller.is_exhausted()
                return None
            try:
                self._costs[ours] = _measure(proposal.arch)
            except Exception as e:  # building runs the morph engine and a user's factory
                reason = _one_line(e)
                log.warning(
                    "growsearch: skipped a proposal for trial %s that cannot be built: %s (%s)",
                    ours, proposal.arch.summary(), reason,
                )  # fmt: skip
                self.controller.reject(ours, reason)
                continue
            return proposal
        running = [t for t in self.issued if t not in self.finished]
        if running:
            self._stalled = True
            log.warning(
                "growsearch: no buildable proposal in %d tries; waiting for a running trial",
                MAX_REJECTED,
            )
        else:
            self.stuck = True
            log.warning(
                "growsearch: no buildable proposal in %d tries and no trial running; "
                "ending this session (growsearch resume tries again)",
                MAX_REJECTED,
            )
        return None

    def _config(self, ours: str) -> dict[str, Any]:
        return {
            "proposal": self.issued[ours],
            "settings": self.settings,
            "index": list(self.issued).index(ours),
            "cost": self._cost(ours),
        }

    def _cost(self, ours: str) -> dict[str, int]:
        """Parameters and FLOPs of a proposal, computed here in the driver: the first use of
        torch's FLOP counter costs ~1 s in every fresh worker process, later ones ~1 ms.

        Empty if an issued proposal cannot be built (one issued before a resume, by a version
        that did not check): its trial then fails in its worker, with the error, and is recorded.
        """
        if ours not in self._costs:
            try:
                self._costs[ours] = _measure(ArchSpec.from_dict(self.issued[ours]["arch"]))
            except Exception as e:  # never fail the whole search for one trial
                log.warning("growsearch: trial %s cannot be built here: %s", ours, _one_line(e))
                return {}
        return self._costs[ours]

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self._stalled = False  # a trial ended: the controller may have something new to grow
        ours = self.ray_ids.get(trial_id)
        if ours is None or ours in self.finished:
            return
        status = "failed" if error else trial_status(result, self.objective)
        self.observe(ours, status, None if status == "failed" else result)

    def observe(self, ours: str, status: str, result: dict[str, Any] | None) -> None:
        """Tell the controller that trial ``ours`` ended (also used when reconciling a resume)."""
        self.finished.add(ours)
        r = result or {}
        try:
            self.controller.observe(
                TrialResult(
                    proposal=Proposal.from_dict(self.issued[ours]),
                    status=status,
                    value=float(r[self.objective]) if r.get(self.objective) is not None else None,
                    params=int(r.get("params", 0)),
                    flops=int(r.get("flops", 0)),
                    epochs=int(r.get("epoch", 0)),
                )
            )
        except GrowsearchError as e:  # e.g. an objective's cost that cannot be computed
            log.warning("growsearch: the controller could not learn from trial %s: %s", ours, e)
        self._persist()

    # ---- state -----------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "controller": self.controller.state_dict(),
            "issued": self.issued,
            "finished": sorted(self.finished),
            "elapsed_s": self.elapsed_s,
            "converged": self.converged,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.issued = dict(state["issued"])
        self.finished = set(state["finished"])
        self.pending = [t for t in self.issued if t not in self.finished]
        self.ray_ids = {}
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        self.converged = bool(state.get("converged", False))

    def _persist(self) -> None:
        if self.state_dir is None:
            return
        (self.state_dir / STATE_FILE).write_text(json.dumps(self.get_state()))  # atomic

    def save(self, checkpoint_path: str) -> None:  # Tune's own experiment checkpoint (JSON too)
        with open(checkpoint_path, "w") as f:
            json.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            self.set_state(json.load(f))


def _measure(spec: ArchSpec) -> dict[str, int]:
    """Parameters and FLOPs of ``spec``'s model (builds it: raises if it cannot be built)."""
    model = build(spec)
    return {
        "params": count_params(model),
        "flops": count_flops(model, spec.input_shape, spec.input_dtype),
    }


def _one_line(e: BaseException) -> str:
    """``Type: message``, on one line."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def load_state(run_dir: str | Path | Location) -> dict[str, Any] | None:
    path = location(run_dir) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None
