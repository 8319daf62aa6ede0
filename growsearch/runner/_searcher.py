"""Bridges a controller (ask/tell) to Ray Tune's Searcher interface."""

from __future__ import annotations

import json
from typing import Any

from ray.tune.search import Searcher

from growsearch.controllers import Controller, Proposal, TrialResult


class ControllerSearcher(Searcher):
    """Asks the controller for trials and tells it how they ended.

    Budgets in trials and in training epochs are enforced here: once ``max_trials`` proposals
    have been issued (or their planned epochs reach ``max_epochs``), it reports FINISHED.
    Its state is JSON (the controller's ``state_dict`` plus the issued proposals), never pickle.
    """

    def __init__(
        self,
        controller: Controller,
        settings: dict[str, Any],
        *,
        max_trials: int | None,
        max_epochs: int | None,
        metric: str = "val_acc",
        mode: str = "max",
    ):
        super().__init__(metric=metric, mode=mode)
        self.controller = controller
        self.settings = settings
        self.max_trials = max_trials
        self.max_epochs = max_epochs
        self.issued: dict[str, dict[str, Any]] = {}
        self.finished: set[str] = set()

    def _planned_epochs(self) -> int:
        t = self.settings["training"]
        return sum(
            int(t["epochs"] if p["parent_id"] else t["seed_epochs"]) for p in self.issued.values()
        )

    def exhausted(self) -> bool:
        if self.max_trials is not None and len(self.issued) >= self.max_trials:
            return True
        return self.max_epochs is not None and self._planned_epochs() >= self.max_epochs

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if trial_id in self.issued:  # a restarted trial keeps its proposal
            return {
                "proposal": self.issued[trial_id],
                "settings": self.settings,
                "index": self._index(trial_id),
            }
        if self.exhausted():
            return Searcher.FINISHED
        proposal = self.controller.propose(trial_id)
        if proposal is None:
            return None  # the controller waits for running trials; Tune asks again later
        self.issued[trial_id] = proposal.to_dict()
        return {
            "proposal": self.issued[trial_id],
            "settings": self.settings,
            "index": self._index(trial_id),
        }

    def _index(self, trial_id: str) -> int:
        return list(self.issued).index(trial_id)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id not in self.issued or trial_id in self.finished:
            return
        self.finished.add(trial_id)
        proposal = Proposal.from_dict(self.issued[trial_id])
        ok = not error and result is not None and "val_acc" in result
        planned = result.get("epochs_planned") if result else None
        status = "failed"
        if ok:
            status = "completed" if planned is None or result["epoch"] >= planned else "stopped"
        self.controller.observe(
            TrialResult(
                proposal=proposal,
                status=status,
                val_acc=float(result["val_acc"]) if ok else None,
                params=int(result.get("params", 0)) if result else 0,
                flops=int(result.get("flops", 0)) if result else 0,
                epochs=int(result.get("epoch", 0)) if result else 0,
            )
        )

    def get_state(self) -> dict[str, Any]:
        return {
            "controller": self.controller.state_dict(),
            "issued": self.issued,
            "finished": sorted(self.finished),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.issued = dict(state["issued"])
        self.finished = set(state["finished"])

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            json.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            self.set_state(json.load(f))
