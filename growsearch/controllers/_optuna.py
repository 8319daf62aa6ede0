"""An Optuna sampler over per-stage depths and per-layer widths, warm-started by growth.

Optuna (TPE by default, NSGA-II for several objectives) proposes a point in the space; the child
grows from the best finished trial it can be grown from (``plan_growth``: every depth and width
>= the ancestor's), so warm start works whatever the sampler picks.

The study lives in memory and is driven by ask/tell. Each ask uses a fresh sampler seeded from
the controller's seed and the ask's index, so replaying the log of asks and tells (the resume
state) rebuilds the study, the samplers' caches included, exactly.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import BeforeValidator

from growsearch.arch import ArchSpec
from growsearch.controllers._base import Proposal, TrialResult
from growsearch.controllers._growth import GrowthController, by_value
from growsearch.controllers._registry import register_controller
from growsearch.space import (
    Section,
    custom_encode,
    custom_params,
    integer,
    invalid,
    plan_custom_growth,
    plan_growth,
)

SAMPLERS = ("tpe", "nsga2", "random")
MAX_ASKS = 20  # asks per proposal before giving up on points beyond the limits


def _sampler_name(v: Any) -> str:
    if v == "cmaes":
        raise invalid(
            f"one of {list(SAMPLERS)} (cmaes samples only numbers; widths are categorical)", v
        )
    if v not in SAMPLERS:
        raise invalid(f"one of {list(SAMPLERS)}", v)
    return v


class OptunaOptions(Section):
    """Options of ``optuna``.

    Attributes:
        sampler: ``tpe`` (default; one or several objectives), ``nsga2`` or ``random``.
        n_startup_trials: TPE's random trials before it models the results.
        population_size: NSGA-II's generation size.
    """

    sampler: Annotated[str, BeforeValidator(_sampler_name)] = "tpe"
    n_startup_trials: Annotated[int, integer(lo=0)] = 10
    population_size: Annotated[int, integer(lo=2)] = 8


@register_controller("optuna")
class OptunaController(GrowthController):
    """Proposals from an Optuna sampler, grown from the best finished ancestor.

    The parameters: ``depth_s<i>`` (from the seed's depth to ``max_layers_per_stage``),
    ``width_s<i>_<j>`` for every position a stage can have, and for resnet ``stage_width_s<i>``;
    widths are categorical, the widths widen ops can reach from the seed's. Points beyond the
    limits (``max_params``, ``max_flops``) are told as pruned and asked again; a point proposed
    before is told the earlier result (or failed, if it is still running) and asked again. ``ops_per_child``
    and the ``targets``/``after`` lists do not apply: the sampler jumps anywhere in the space.
    """

    Options = OptunaOptions

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._distributions = self._make_distributions()
        self._log: list[
            list[Any]
        ] = []  # ["ask", params] | ["tell", number, state, values] | ["add", params, values]
        self._asks = 0
        self._trial_of: dict[str, int] = {}  # proposal trial id -> optuna trial number
        self._study = self._new_study()

    # ---- the space -------------------------------------------------------------------------
    def _make_distributions(self) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution, IntDistribution

        seed, m = self.space.seed_arch, self.space.mutations
        assert seed is not None
        if seed.custom is not None:  # a user's model: a width per group, blocks per site
            return {k: CategoricalDistribution(v) for k, v in custom_params(m, seed).items()}
        top = max(m.deepen.max_layers_per_stage, max(len(s.layers) for s in seed.stages))
        dists: dict[str, Any] = {}
        for i, stage in enumerate(seed.stages):
            depth = len(stage.layers)
            dists[f"depth_s{i}"] = IntDistribution(depth, top if m.deepen.enabled else depth)
            for j in range(top if m.deepen.enabled else depth):
                dists[f"width_s{i}_{j}"] = CategoricalDistribution(
                    m.width_choices(self._base(i, j))
                )
            if seed.family == "resnet":
                dists[f"stage_width_s{i}"] = CategoricalDistribution(
                    m.width_choices(stage.width or 1)
                )
        return dists

    def _base(self, i: int, j: int) -> int:
        """The smallest width position ``j`` of stage ``i`` can have when grown from the seed."""
        stage = self.seed_arch.stages[i]
        if j < len(stage.layers):
            return stage.layers[j].width
        return int(stage.width) if stage.width is not None else stage.layers[-1].width

    def _decode(self, params: dict[str, Any]) -> tuple[list[list[int]], list[int] | None]:
        seed = self.space.seed_arch
        assert seed is not None
        widths = []
        for i in range(len(seed.stages)):
            depth = int(params[f"depth_s{i}"])
            widths.append([int(params[f"width_s{i}_{j}"]) for j in range(depth)])
        if seed.family != "resnet":
            return widths, None
        return widths, [int(params[f"stage_width_s{i}"]) for i in range(len(seed.stages))]

    def _encode(self, arch: ArchSpec) -> dict[str, Any] | None:
        """The parameters of ``arch``, or None if it lies outside the sampler's space."""
        params: dict[str, Any] = {}
        seed = self.space.seed_arch
        if seed is not None and seed.custom is not None:
            if arch.custom is None:
                return None
            params = dict(custom_encode(arch, seed))
        for i, stage in enumerate(arch.stages if arch.custom is None else ()):
            params[f"depth_s{i}"] = len(stage.layers)
            for j, layer in enumerate(stage.layers):
                params[f"width_s{i}_{j}"] = layer.width
            if arch.family == "resnet":
                params[f"stage_width_s{i}"] = stage.width
        for name, dist in self._distributions.items():
            if name not in params:  # positions beyond this stage's depth: any valid value
                params[name] = dist.choices[0] if hasattr(dist, "choices") else dist.low
            elif not _contains(dist, params[name]):
                return None
        return params if set(params) == set(self._distributions) else None

    # ---- optuna ----------------------------------------------------------------------------
    def _new_study(self) -> Any:
        import optuna

        with _quiet():
            directions: list[Any] = list(self.space.directions)
            return optuna.create_study(directions=directions)

    def _sampler(self, index: int) -> Any:
        import optuna

        seed = (self.seed * 1_000_003 + index) % 2**32
        opts: Any = self.options
        with _quiet():
            if opts.sampler == "tpe":
                return optuna.samplers.TPESampler(seed=seed, n_startup_trials=opts.n_startup_trials)
            if opts.sampler == "nsga2":
                return optuna.samplers.NSGAIISampler(
                    seed=seed, population_size=opts.population_size
                )
            return optuna.samplers.RandomSampler(seed=seed)

    def _ask(self) -> tuple[int, dict[str, Any]]:
        self._study.sampler = self._sampler(self._asks)
        self._asks += 1
        with _quiet():
            trial = self._study.ask(dict(self._distributions))
        return trial.number, dict(trial.params)

    def _tell(self, number: int, state: str, values: list[float] | None) -> None:
        from optuna.trial import TrialState

        with _quiet():
            self._study.tell(number, values=values, state=TrialState[state])

    def _told(self, number: int, state: str, values: list[float] | None) -> None:
        """Tell, and log it for the resume state."""
        self._tell(number, state, values)
        self._log.append(["tell", number, state, values])

    def _same_shape(self, arch: ArchSpec) -> Proposal | None:
        """An earlier proposal with the same widths and depths as ``arch``, if any."""
        shape = arch.summary()
        for p in self.proposed.values():
            if p.arch.summary() == shape:
                return p
        return None

    def _add(self, params: dict[str, Any], values: list[float]) -> None:
        import optuna

        trial = optuna.trial.create_trial(
            params=params, distributions=dict(self._distributions), values=values
        )
        with _quiet():
            self._study.add_trial(trial)

    def _values(self, result: TrialResult) -> list[float]:
        out = []
        for k, objective in enumerate(self.space.objectives):
            if k == 0:
                out.append(result.score)
            elif objective == "params":
                out.append(float(result.params or self.space.mutations.params(result.arch)))
            else:
                out.append(float(result.flops or self.space.mutations.flops(result.arch)))
        return out

    # ---- the controller --------------------------------------------------------------------
    def _propose(self, trial_id: str) -> Proposal | None:
        seed = self.space.seed_arch
        assert seed is not None
        for _ in range(MAX_ASKS):
            number, params = self._ask()
            self._log.append(["ask", params])
            ops = self._plan(seed, params)
            if ops is not None:
                target = seed.apply_all(ops)
            else:
                target = _scratch(seed, *self._decode(params))
            if not self._buildable(target):  # e.g. a model the engine cannot grow: ask again
                self._told(number, "FAIL", None)
                continue
            if not self.space.mutations.fits(target):
                self._told(number, "PRUNED", None)
                continue
            twin = self._same_shape(target)
            if twin is not None:  # asked before: answer from what is known, ask again
                if twin.trial_id not in self.results:
                    self._told(number, "FAIL", None)  # running; the sampler already sees it
                elif self.results[twin.trial_id].ok:
                    self._told(number, "COMPLETE", self._values(self.results[twin.trial_id]))
                else:
                    self._told(number, "FAIL", None)
                continue
            self._trial_of[trial_id] = number
            for parent in by_value(self.successes(), self.space.objective.mode):
                ops = self._plan(parent.arch, params)
                if ops is not None:
                    child = parent.arch.apply_all(ops)
                    if self._buildable(child):
                        return Proposal(trial_id, child, parent.trial_id, tuple(ops))
            return Proposal(trial_id, target)  # nothing it grows from: from scratch
        # Every point asked was beyond the limits: a random child keeps the search going.
        return self._grow_any(trial_id, by_value(self.successes(), self.space.objective.mode))

    def _plan(self, ancestor: ArchSpec, params: dict[str, Any]) -> list[Any] | None:
        """The ops that grow ``ancestor`` to the point ``params``, or None."""
        if ancestor.custom is not None:
            return plan_custom_growth(ancestor, params)
        return plan_growth(ancestor, *self._decode(params))

    def _rejected(self, proposal: Proposal) -> None:
        number = self._trial_of.pop(proposal.trial_id, None)
        if number is not None:  # the sampler learns that this point failed
            self._told(number, "FAIL", None)

    def _observed(self, result: TrialResult) -> None:
        number = self._trial_of.get(result.trial_id)
        if number is not None:
            if result.ok:
                values: list[float] | None = self._values(result)
                state = "COMPLETE"
            else:
                values, state = None, "FAIL"
            self._told(number, state, values)
        elif result.ok:  # the seed, or a fallback child: let the sampler learn from it too
            params = self._encode(result.arch)
            if params is not None:
                values = self._values(result)
                self._add(params, values)
                self._log.append(["add", params, values])

    def _extra_state(self) -> dict[str, Any]:
        return {"optuna_log": list(self._log), "trial_of": dict(self._trial_of)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._study = self._new_study()
        self._asks = 0
        self._log = []
        for event in state["optuna_log"]:
            if event[0] == "ask":
                self._ask()  # same sampler seed, same history: the same point
            elif event[0] == "tell":
                self._tell(event[1], event[2], event[3])
            else:
                self._add(event[1], event[2])
            self._log.append(event)
        self._trial_of = {k: int(v) for k, v in state["trial_of"].items()}


def _scratch(seed: ArchSpec, widths: list[list[int]], stage_widths: list[int] | None) -> ArchSpec:
    return ArchSpec.create(
        seed.family,
        seed.input_shape,
        seed.num_classes,
        widths,
        stage_widths=stage_widths,
        kernel_size=seed.kernel_size,
        batch_norm=seed.batch_norm,
        dropout=seed.dropout,
    )


def _contains(dist: Any, value: Any) -> bool:
    if hasattr(dist, "choices"):
        return value in dist.choices
    return dist.low <= value <= dist.high


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Optuna logs every trial and warns about experimental options: not for a controller."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)
