"""Bridges a controller (ask/tell) to Ray Tune's Searcher interface, and persists the search.

growsearch trial ids (``t0000``, ``t0001``, …) are its own, independent of Ray's: a resumed
search runs as a new Tune experiment in the same run folder, re-issuing the trials that were
running (they continue from their last checkpoint) before asking the controller for new ones.
After every event the searcher's state — the controller's ``state_dict``, every issued proposal,
which ones finished — is written atomically to ``search_state.json`` (JSON, never pickle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from growsearch.controllers import Controller, Proposal, TrialResult
from growsearch.runner._results import trial_status

STATE_FILE = "search_state.json"


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
        state_dir: str | Path | None = None,
        metric: str = "val_acc",
        mode: str = "max",
    ):
        super().__init__(metric=metric, mode=mode)
        self.controller = controller
        self.settings = settings
        self.max_trials = max_trials
        self.max_epochs = max_epochs
        self.state_dir = None if state_dir is None else str(state_dir)
        self.issued: dict[str, dict[str, Any]] = {}  # our id -> proposal dict, in issue order
        self.finished: set[str] = set()
        self.pending: list[str] = []  # issued, not finished, to re-run first (after a resume)
        self.ray_ids: dict[str, str] = {}  # Ray's trial id -> our id
        self.elapsed_s = 0.0  # wall time of earlier sessions (time budget across resumes)
        self.converged = False  # the controller said it will never propose again
        self._costs: dict[str, dict[str, int]] = {}

    # ---- budget ----------------------------------------------------------------------------
    def _planned_epochs(self) -> int:
        t = self.settings["training"]
        return sum(
            int(t["epochs"] if p["parent_id"] else t["seed_epochs"]) for p in self.issued.values()
        )

    def exhausted(self) -> bool:
        if self.converged:  # the controller has nothing left to propose within the space
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
        if self.pending:
            ours = self.pending.pop(0)
        elif self.exhausted():
            return Searcher.FINISHED
        else:
            ours = f"t{len(self.issued):04d}"
            proposal = self.controller.propose(ours)
            if proposal is None:
                if self.controller.is_exhausted():  # nothing running, nothing left to grow
                    self.converged = True
                    self._persist()
                    return Searcher.FINISHED
                return None  # the controller waits for running trials; Tune asks again later
            self.issued[ours] = proposal.to_dict()
        self.ray_ids[trial_id] = ours
        self._persist()
        return self._config(ours)

    def _config(self, ours: str) -> dict[str, Any]:
        return {
            "proposal": self.issued[ours],
            "settings": self.settings,
            "index": list(self.issued).index(ours),
            "cost": self._cost(ours),
        }

    def _cost(self, ours: str) -> dict[str, int]:
        """Parameters and FLOPs of a proposal, computed here in the driver: the first use of
        torch's FLOP counter costs ~1 s in every fresh worker process, later ones ~1 ms."""
        from growsearch.arch import ArchSpec, build, count_flops, count_params

        if ours not in self._costs:
            spec = ArchSpec.from_dict(self.issued[ours]["arch"])
            model = build(spec)
            self._costs[ours] = {
                "params": count_params(model),
                "flops": count_flops(model, spec.input_shape),
            }
        return self._costs[ours]

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        ours = self.ray_ids.get(trial_id)
        if ours is None or ours in self.finished:
            return
        status = "failed" if error else trial_status(result)
        self.observe(ours, status, None if status == "failed" else result)

    def observe(self, ours: str, status: str, result: dict[str, Any] | None) -> None:
        """Tell the controller that trial ``ours`` ended (also used when reconciling a resume)."""
        self.finished.add(ours)
        r = result or {}
        self.controller.observe(
            TrialResult(
                proposal=Proposal.from_dict(self.issued[ours]),
                status=status,
                val_acc=float(r["val_acc"]) if "val_acc" in r else None,
                params=int(r.get("params", 0)),
                flops=int(r.get("flops", 0)),
                epochs=int(r.get("epoch", 0)),
            )
        )
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
        path = Path(self.state_dir) / STATE_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.get_state()))
        os.replace(tmp, path)

    def save(self, checkpoint_path: str) -> None:  # Tune's own experiment checkpoint (JSON too)
        with open(checkpoint_path, "w") as f:
            json.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            self.set_state(json.load(f))


def load_state(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None
