"""Search controllers: ask/tell over architectures, no Ray inside.

``make_controller(name, space, seed)`` builds one from :data:`CONTROLLERS`: ``evolution``
(aging evolution, the default), ``hillclimb`` (NASH), ``optuna`` (TPE / NSGA-II / random over
depths and widths) and ``random`` (random growth, the baseline).
"""

# Importing the implementations registers them.
from growsearch.controllers._base import Controller, Proposal, TrialResult
from growsearch.controllers._evolution import Evolution, EvolutionOptions
from growsearch.controllers._growth import GrowthController, rank_by_objectives
from growsearch.controllers._hillclimb import Hillclimb, HillclimbOptions
from growsearch.controllers._optuna import OptunaController, OptunaOptions
from growsearch.controllers._random import RandomGrowth
from growsearch.controllers._registry import CONTROLLERS, make_controller, register_controller

__all__ = [
    "CONTROLLERS",
    "Controller",
    "Evolution",
    "EvolutionOptions",
    "GrowthController",
    "Hillclimb",
    "HillclimbOptions",
    "OptunaController",
    "OptunaOptions",
    "Proposal",
    "RandomGrowth",
    "TrialResult",
    "make_controller",
    "rank_by_objectives",
    "register_controller",
]
