"""Read a search-space file (the only place YAML is read), apply overrides, validate once.

Every problem becomes one :class:`~growsearch.exceptions.ConfigError` line:
``<file>: <key.path>: expected <what>, got <found>``.
"""

from __future__ import annotations

import copy
import functools
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from growsearch.arch import ArchSpec
from growsearch.exceptions import ConfigError, GrowsearchError
from growsearch.space._config import (
    MODES,
    OBJECTIVES,
    SIZE_OBJECTIVES,
    BudgetConfig,
    ControllerConfig,
    DatasetConfig,
    ResourcesConfig,
    SchedulerConfig,
    SeedModelConfig,
    SpaceModel,
    TaskConfig,
    TrainingConfig,
)
from growsearch.space._fields import ERROR_TYPE, Section, show
from growsearch.space._mutations import MutationSpace

M = typing.TypeVar("M", bound=BaseModel)


class NoOptions(Section):
    """The options of a component that has none: any key is unknown."""


class _Invalid(Exception):
    """A problem at a key path, turned into a ConfigError line by :func:`_space_from_data`."""

    def __init__(self, path: str, message: str, key: str | None = None):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.key = path if key is None else key  # the offending key (an unknown key's own path)


@dataclass(frozen=True)
class UserModel:
    """A user's own seed model.

    Attributes:
        factory: ``package.module:function`` that returns the ``nn.Module`` (imported when the
            seed trial starts, not at load time).
        weights: Its trained weights (safetensors), or None to train it from scratch.
    """

    factory: str
    weights: Path | None = None


@dataclass(frozen=True)
class Objective:
    """The metric a search optimises and its direction.

    Attributes:
        metric: A metric every trial reports, e.g. ``val_acc``, ``val_mse``, ``val_iou``.
        mode: ``max`` or ``min``.
    """

    metric: str = "val_acc"
    mode: str = "max"


@dataclass(frozen=True, eq=False)
class SearchSpace:
    """A validated search space (immutable); build one with :func:`load_space`.

    Attributes:
        path: The file it was read from.
        name: The default run name (the file's stem unless ``name`` is set).
        seed: Seed of the search (controller, trials).
        dataset: ``dataset`` section.
        seed_model: ``seed_model`` section as written (with defaults).
        seed_arch: The seed architecture, with the dataset's input shape and class count; None
            when the seed is a user model.
        user_model: The user's seed model, or None for a model family.
        mutations: The allowed mutations, their limits and the samplers over them.
        controller: Controller name and its validated options.
        training: How each trial trains.
        budget: When the search stops.
        task: ``task`` section: classification, regression or a user's factory.
        objective: The metric the search optimises and its direction.
        objectives: The objective's metric, then optionally ``"params"`` / ``"flops"`` (always
            minimised).
        resources: Per-trial resources and concurrency.
        scheduler: Early stopping (ASHA), or None.
        warm_start: Children start from their parent's morphed weights (else from scratch).
        overrides: The overrides applied on top of the file.
    """

    path: Path
    name: str
    seed: int
    dataset: DatasetConfig
    seed_model: SeedModelConfig
    seed_arch: ArchSpec | None
    user_model: UserModel | None
    mutations: MutationSpace
    controller: ControllerConfig
    training: TrainingConfig
    budget: BudgetConfig
    task: TaskConfig
    objective: Objective
    objectives: tuple[str, ...]
    resources: ResourcesConfig
    scheduler: SchedulerConfig | None
    warm_start: bool
    overrides: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def modes(self) -> tuple[str, ...]:
        """``"max"`` / ``"min"`` for each objective, in order (size objectives: ``"min"``)."""
        return (self.objective.mode, *("min" for _ in self.objectives[1:]))

    @property
    def directions(self) -> tuple[str, ...]:
        """``"maximize"`` / ``"minimize"`` for each objective, in order."""
        return tuple("maximize" if m == "max" else "minimize" for m in self.modes)

    def to_dict(self) -> dict[str, Any]:
        """The validated space as plain data (defaults filled in, paths absolute), in the file's
        schema: ``load_space`` of it written as YAML gives the same space."""
        seed_model = self.seed_model.model_dump(mode="json")
        if self.user_model is not None:
            seed_model = {
                "factory": self.user_model.factory,
                "weights": None
                if self.user_model.weights is None
                else str(self.user_model.weights),
            }
        else:
            seed_model = {k: v for k, v in seed_model.items() if k not in ("factory", "weights")}
            if seed_model["family"] != "resnet":
                del seed_model["stage_widths"]
        return {
            "name": self.name,
            "seed": self.seed,
            "dataset": self.dataset.model_dump(mode="json"),
            "seed_model": seed_model,
            "mutations": self.mutations.model_dump(mode="json"),
            "controller": {"name": self.controller.name, **self.controller.options},
            "training": self.training.model_dump(mode="json"),
            "budget": self.budget.model_dump(mode="json"),
            "task": self.task.kind
            if self.task.factory is None and self.task.loss is None
            else self.task.model_dump(mode="json", exclude_defaults=True),
            "objective": {"metric": self.objective.metric, "mode": self.objective.mode},
            "objectives": list(self.objectives),
            "resources": self.resources.model_dump(mode="json"),
            "scheduler": None if self.scheduler is None else self.scheduler.model_dump(mode="json"),
            "warm_start": self.warm_start,
        }

    def with_overrides(self, overrides: Mapping[str, Any]) -> SearchSpace:
        """This space with more overrides (``{"budget.trials": 5}``...), validated again."""
        merged = {**self.overrides, **overrides}
        return _space_from_data(copy.deepcopy(dict(self.raw)), self.path, merged)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        path: str | Path = "<dict>",
        overrides: Mapping[str, Any] | None = None,
    ) -> SearchSpace:
        """Validate data in the file's schema (e.g. :meth:`to_dict`'s output) as if read from
        ``path`` (relative paths in it resolve against ``path``'s folder)."""
        return _space_from_data(copy.deepcopy(dict(data)), Path(path), dict(overrides or {}))


def load_space(path: str | Path, overrides: Mapping[str, Any] | None = None) -> SearchSpace:
    """Read and validate a search-space YAML file.

    Args:
        path: The file.
        overrides: Flat ``{"key.path": value}`` settings applied before validation (from the
            command line), e.g. ``{"budget.trials": 5, "warm_start": False}``. Changing
            ``controller.name`` drops the file's options for the previous controller.

    Returns:
        The validated, immutable search space.

    Raises:
        ConfigError: One line naming the file, the key path, what was expected and what was found.
    """
    path = Path(path)
    try:
        raw_text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: expected an existing search-space file, got no such file"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: expected a search-space file, got a folder") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the file ({e})") from None
    try:
        data = yaml.safe_load(raw_text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(
            f"{path}: {where}expected valid YAML, got a syntax error ({problem})"
        ) from None
    return _space_from_data(data, path, dict(overrides or {}))


# ---- validation -------------------------------------------------------------------------------
def _space_from_data(data: Any, path: Path, overrides: dict[str, Any]) -> SearchSpace:
    if data is None:
        raise ConfigError(f"{path}: expected a mapping at the top level, got an empty file")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {_kind(data)}")
    raw = copy.deepcopy(data)
    try:
        merged = _apply_overrides(copy.deepcopy(data), overrides)
        try:
            model = SpaceModel.model_validate(merged)
        except ValidationError as e:
            raise _Invalid(*_first_error(e, SpaceModel, ())) from None
        space = _finish(model, path, overrides, raw)
    except _Invalid as e:
        note = _override_note(e.key, overrides)
        raise ConfigError(f"{path}: {e}{note}") from None
    return space


def _finish(
    model: SpaceModel, path: Path, overrides: dict[str, Any], raw: dict[str, Any]
) -> SearchSpace:
    """Cross-field checks, path resolution and the seed architecture."""
    base = path.parent
    dataset = _check_dataset(model.dataset, base)

    seed_model, user_model = model.seed_model, None
    if seed_model.factory is not None:
        for key in ("family", "stages", "stage_widths"):
            if getattr(seed_model, key) is not None:
                raise _Invalid(
                    f"seed_model.{key}",
                    f"expected no {key} alongside a factory, got {show(_plain(getattr(seed_model, key)))}",
                )
        weights = None
        if seed_model.weights is not None:
            weights = _resolve(seed_model.weights, base)
            if not weights.is_file():
                raise _Invalid(
                    "seed_model.weights",
                    f"expected an existing file, got {show(seed_model.weights)}",
                )
            seed_model = seed_model.model_copy(update={"weights": str(weights)})
        user_model = UserModel(str(seed_model.factory), weights)
    else:
        if seed_model.weights is not None:
            raise _Invalid(
                "seed_model.weights",
                f"expected weights only with a factory, got {show(seed_model.weights)}",
            )
        if seed_model.family is None:
            raise _Invalid(
                "seed_model.family",
                "expected one of ['mlp', 'cnn', 'resnet'] (or a factory), got nothing",
            )
        if seed_model.stages is None:
            raise _Invalid("seed_model.stages", "expected a list of lists of widths, got nothing")
        if seed_model.family == "resnet":
            if seed_model.stage_widths is None:
                raise _Invalid(
                    "seed_model.stage_widths",
                    "expected a residual width per stage for resnet, got nothing",
                )
            if len(seed_model.stage_widths) != len(seed_model.stages):
                raise _Invalid(
                    "seed_model.stage_widths",
                    f"expected {len(seed_model.stages)} widths (one per stage), got {show(_plain(seed_model.stage_widths))}",
                )
        elif seed_model.stage_widths is not None:
            raise _Invalid(
                "seed_model.stage_widths",
                f"expected null for family {seed_model.family!r} (resnet only), got {show(_plain(seed_model.stage_widths))}",
            )
        if seed_model.kernel_size % 2 == 0:
            raise _Invalid(
                "seed_model.kernel_size",
                f"expected an odd integer > 0, got {seed_model.kernel_size}",
            )

    task = _check_task(model.task, base)
    kind = task.kind
    training = model.training
    if training.function is not None:
        training = training.model_copy(
            update={"function": _check_file(training.function, base, "training.function")}
        )
    seed_arch = None
    if user_model is None:
        input_shape, num_classes = _data_shape(dataset, seed_model.family == "mlp", kind)
        try:
            seed_arch = ArchSpec.create(
                seed_model.family,  # type: ignore[arg-type]
                input_shape,
                num_classes,
                [list(ws) for ws in seed_model.stages],  # type: ignore[union-attr]
                stage_widths=None
                if seed_model.stage_widths is None
                else list(seed_model.stage_widths),
                kernel_size=seed_model.kernel_size,
                batch_norm=seed_model.batch_norm,
                dropout=seed_model.dropout,
            )
        except GrowsearchError as e:
            raise _Invalid(
                "seed_model", f"expected a valid architecture, got an error ({e})"
            ) from None
    else:
        assert user_model is not None
        factory = user_model.factory
        module, _, fn = factory.rpartition(":")
        if module.endswith(".py"):  # a file next to the YAML: resolve it, so workers find it
            module_path = _resolve(module, base)
            if not module_path.is_file():
                raise _Invalid(
                    "seed_model.factory", f"expected an existing Python file, got {show(module)}"
                )
            factory = f"{module_path}:{fn}"
            user_model = UserModel(factory, user_model.weights)
            seed_model = seed_model.model_copy(update={"factory": factory})
        input_shape, num_classes = _data_shape(dataset, False, kind)
        x, _ = _loaded(dataset, False, kind).train.head(1)
        try:
            seed_arch = ArchSpec.from_user_model(
                factory,
                None if user_model.weights is None else str(user_model.weights),
                input_shape,
                num_classes if kind == "classification" else 0,  # 0: the model's own output
                "int64" if not x.is_floating_point() else "float32",  # token ids, or features
            )
        except GrowsearchError as e:
            raise _Invalid(
                "seed_model.factory", f"expected a model growsearch can morph, got an error ({e})"
            ) from None

    augment = model.training.augment
    if augment.enabled and len(seed_arch.input_shape) not in (2, 3):
        raise _Invalid(
            "training.augment",
            f"expected samples of shape (C, H, W) or (C, L) to crop or flip, got "
            f"{tuple(seed_arch.input_shape)} (flat inputs: the mlp family, a table)",
        )
    mutations = model.mutations
    _check_mutations(mutations, seed_arch)
    controller = _check_controller(model.controller)

    if all(getattr(model.budget, k) is None for k in ("trials", "time_minutes", "epochs")):
        raise _Invalid(
            "budget", "expected at least one of trials, time_minutes or epochs, got none"
        )
    objective, objectives = _check_objectives(model, task, dataset, seed_arch, training)
    gpus = model.resources.gpus_per_trial
    if gpus > 1 and not float(gpus).is_integer():
        raise _Invalid(
            "resources.gpus_per_trial",
            f"expected a number in [0, 1] or a whole number, got {gpus:g}",
        )
    grace = None if model.scheduler is None else int(model.scheduler.grace_period)
    if grace is not None and grace > int(model.training.epochs):
        raise _Invalid(
            "scheduler.grace_period",
            f"expected at most training.epochs ({model.training.epochs}), got {grace}",
        )
    return SearchSpace(
        path=path,
        name=model.name or _run_name_from(path),
        seed=model.seed,
        dataset=dataset,
        seed_model=seed_model,
        seed_arch=seed_arch,
        user_model=user_model,
        mutations=mutations,
        controller=controller,
        training=training,
        budget=model.budget,
        task=task,
        objective=objective,
        objectives=objectives,
        resources=model.resources,
        scheduler=model.scheduler,
        warm_start=model.warm_start,
        overrides=dict(overrides),
        raw=raw,
    )


def _check_file(factory: str, base: Path, key: str) -> str:
    """A ``file.py:function`` factory with its file resolved against ``base`` (so every worker
    finds it); a ``module:function`` as it is."""
    module, _, fn = factory.rpartition(":")
    if not module.endswith(".py"):
        return factory
    path = _resolve(module, base)
    if not path.is_file():
        raise _Invalid(key, f"expected an existing Python file, got {show(module)}")
    return f"{path}:{fn}"


def _check_task(task: TaskConfig, base: Path) -> TaskConfig:
    """A name or a factory, with the keys that belong to it."""
    if task.factory is not None:
        if task.name is not None:
            raise _Invalid(
                "task.name", f"expected no name alongside a factory, got {show(task.name)}"
            )
        task = task.model_copy(update={"factory": _check_file(task.factory, base, "task.factory")})
    elif task.options:
        raise _Invalid("task.options", "expected options only with a factory")
    if task.loss is not None and task.kind != "regression":
        raise _Invalid(
            "task.loss", f"expected a loss only with name: regression, got {show(task.loss)}"
        )
    return task


def _check_objectives(
    model: SpaceModel,
    task: TaskConfig,
    dataset: DatasetConfig,
    seed: ArchSpec,
    training: TrainingConfig,
) -> tuple[Objective, tuple[str, ...]]:
    """The objective (the task's default unless ``objective`` or ``objectives[0]`` names one)
    and the objectives' names; the task is built and run on a probe batch of the data."""
    from growsearch.space._config import ObjectiveConfig

    entries = list(model.objectives) if model.objectives is not None else []
    first: ObjectiveConfig | None = None
    sizes: list[str] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str) and entry in SIZE_OBJECTIVES:
            if i == 0:
                raise _Invalid(
                    "objectives[0]",
                    f"expected the metric to optimise first (then params and/or flops), got {show(entry)}",
                )
            if entry in sizes:
                raise _Invalid(
                    f"objectives[{i}]", f"expected each objective once, got {show(entry)} twice"
                )
            sizes.append(entry)
        elif i == 0:
            try:
                first = ObjectiveConfig.model_validate(entry)
            except ValidationError as e:
                raise _Invalid(*_first_error(e, ObjectiveConfig, ("objectives", 0))) from None
        else:
            raise _Invalid(
                f"objectives[{i}]",
                f"expected params or flops after the first objective, got {show(_plain(entry))}",
            )
    given, key = model.objective, "objective"
    if (
        given is not None
        and first is not None
        and (
            given.metric != first.metric or (given.mode and first.mode and given.mode != first.mode)
        )
    ):
        raise _Invalid(
            "objective",
            f"expected the same metric as objectives[0] ({first.metric}), got {show(given.metric)}",
        )
    if given is None and first is not None:
        given, key = first, "objectives[0]"

    kind = task.kind
    data = _loaded(dataset, seed.family == "mlp", kind)
    try:
        built = task.build(data, float(training.label_smoothing))
    except GrowsearchError as e:
        raise _Invalid("task.factory", str(e).removeprefix("task.factory: ")) from None
    known = {f"val_{k}": m for k, m in built.modes().items()}
    reported = sorted({"val_loss", *(f"val_{k}" for k in built.metrics())})
    if given is None:
        metric, mode = built.objective
    else:
        metric, mode = given.metric, given.mode or known.get(given.metric)
        if mode is None:
            legacy = OBJECTIVES.get(metric)
            mode = None if legacy is None else ("max" if legacy == "maximize" else "min")
        if mode is None:
            raise _Invalid(
                f"{key}.mode" if isinstance(given, ObjectiveConfig) else key,
                f"expected min or max (the direction of {metric!r} is not known), got nothing",
            )
    if mode not in MODES:
        raise _Invalid(f"{key}.mode", f"expected one of {list(MODES)}, got {show(mode)}")
    if training.function is None and metric not in reported:
        raise _Invalid(
            f"{key}.metric" if given is not None else "objective",
            f"expected a metric the {built.name} task reports ({', '.join(reported)}), got {show(metric)}",
        )
    if training.function is None or model.task != TaskConfig():
        _probe(built, seed, data)
    return Objective(metric, mode), (metric, *sizes)


def _probe(task: Any, seed: ArchSpec, data: Any) -> None:
    """The seed model's output on a few training samples, scored by the task: a target that
    does not fit the model's output fails here, before any trial starts."""
    import torch

    from growsearch.arch import build

    x, y = data.train.head(4)
    model = build(seed).eval()
    try:
        with torch.no_grad():
            out = model(x)
            loss = task.loss(out, y)
            prepared = task.prepare(out, y)
            for metric in task.metrics().values():
                metric.update(*prepared)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"loss returned {type(loss).__name__}, expected a scalar tensor")
    except Exception as e:
        shape = tuple(out.shape) if "out" in locals() and isinstance(out, torch.Tensor) else "?"
        raise _Invalid(
            "task",
            f"expected targets that fit the model's output, got an error on a probe batch "
            f"(outputs {shape}, targets {tuple(y.shape)} {y.dtype}): "
            f"{type(e).__name__}: {' '.join(str(e).split())[:200]}",
        ) from None


def _run_name_from(path: Path) -> str:
    """The file's stem, made a valid run name."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem).lstrip("_.-")
    return name or "search"


def _plain(v: Any) -> Any:
    """Tuples back to lists, for messages."""
    return [_plain(x) for x in v] if isinstance(v, tuple) else v


def _check_mutations(m: MutationSpace, seed: ArchSpec | None) -> None:
    if not (m.widen.enabled or m.deepen.enabled):
        raise _Invalid("mutations", "expected widen or deepen enabled, got both disabled")
    if seed is None:
        return
    targets = set(seed.widen_targets())
    for key, names in (("widen.targets", m.widen.targets), ("deepen.after", m.deepen.after)):
        if names == "all":
            continue
        valid = targets if key == "widen.targets" else {x.name for x in seed.layers}
        what = "a layer name of the seed"
        if seed.custom is not None:
            what = "a width group" if key == "widen.targets" else "an insertion site"
            if key == "deepen.after":
                valid = {s[0] for s in seed.custom.sites}
        for i, n in enumerate(names):
            if n not in valid:
                raise _Invalid(
                    f"mutations.{key}[{i}]",
                    f"expected {what} ({', '.join(sorted(valid))}), got {show(n)}",
                )
    widest = max([x.width for x in seed.layers] + [s.width or 0 for s in seed.stages])
    if m.widen.max_width is not None and m.widen.max_width < widest:
        raise _Invalid(
            "mutations.widen.max_width",
            f"expected at least the seed's largest width ({widest}), got {m.widen.max_width}",
        )
    deepest = max(len(s.layers) for s in seed.stages)
    if seed.custom is None and m.deepen.max_layers_per_stage < deepest:
        raise _Invalid(
            "mutations.deepen.max_layers_per_stage",
            f"expected at least the seed's deepest stage ({deepest} layers), got {m.deepen.max_layers_per_stage}",
        )
    if m.max_params is not None and m.params(seed) > m.max_params:
        raise _Invalid(
            "mutations.max_params",
            f"expected at least the seed's {m.params(seed)} parameters, got {m.max_params}",
        )
    if m.max_flops is not None and m.flops(seed) > m.max_flops:
        raise _Invalid(
            "mutations.max_flops",
            f"expected at least the seed's {m.flops(seed)} FLOPs, got {m.max_flops}",
        )


def validate_options(model: type[M], options: Mapping[str, Any], where: str = "controller") -> M:
    """Validate a component's options (a mapping) with ``model``; errors name ``where.<key>``.

    Raises:
        ConfigError: ``<where>.<key>: expected ..., got ...``.
    """
    try:
        return model.model_validate(dict(options))
    except ValidationError as e:
        path, msg = _first_error(e, model, (where,), ("name",) if where == "controller" else ())[:2]
        raise ConfigError(f"{path}: {msg}") from None


def _check_controller(section: dict[str, Any]) -> ControllerConfig:
    """The controller's name and its options as written: the controller checks them itself
    (:func:`growsearch.controllers.make_controller`, before a run writes anything)."""
    name = section.get("name", "evolution")
    if not isinstance(name, str) or not name:
        raise _Invalid("controller.name", f"expected a controller name, got {show(name)}")
    return ControllerConfig(name=name, options={k: v for k, v in section.items() if k != "name"})


def _check_dataset(dataset: DatasetConfig, base: Path) -> DatasetConfig:
    """A name or a factory, each with its own keys; paths resolved against ``base``."""
    if dataset.factory is not None:
        if dataset.name is not None:
            raise _Invalid(
                "dataset.name", f"expected no name alongside a factory, got {show(dataset.name)}"
            )
        module, _, fn = dataset.factory.rpartition(":")
        if module.endswith(".py"):  # a file next to the YAML: resolve it, so workers find it
            module_path = _resolve(module, base)
            if not module_path.is_file():
                raise _Invalid(
                    "dataset.factory", f"expected an existing Python file, got {show(module)}"
                )
            dataset = dataset.model_copy(update={"factory": f"{module_path}:{fn}"})
    elif dataset.name is None:
        raise _Invalid(
            "dataset.name",
            "expected a dataset name (or a factory), got nothing (the key is required)",
        )
    table = dataset.name == "table"
    for key, only in (("path", "table"), ("target", "table")):
        value = getattr(dataset, key)
        if value is not None and dataset.name != only:
            raise _Invalid(
                f"dataset.{key}", f"expected {key} only with name: {only}, got {show(value)}"
            )
    if table and dataset.target is None:
        raise _Invalid("dataset.target", "expected the table's label column, got nothing")
    if table and dataset.path is None:
        raise _Invalid("dataset.path", "expected a .csv or .parquet file, got nothing")
    if dataset.root is not None:
        root = _resolve(dataset.root, base)
        if not root.is_dir():
            raise _Invalid("dataset.root", f"expected an existing folder, got {show(dataset.root)}")
        dataset = dataset.model_copy(update={"root": str(root)})
    if dataset.path is not None:
        file = _resolve(dataset.path, base)
        if not file.is_file():
            raise _Invalid("dataset.path", f"expected an existing file, got {show(dataset.path)}")
        dataset = dataset.model_copy(update={"path": str(file)})
    return dataset


def _data_shape(
    dataset: DatasetConfig, flat: bool, kind: str = "classification"
) -> tuple[tuple[int, ...], int]:
    """(input_shape, num_classes) of a dataset, its data checked; loaded once per process
    (again when a file it reads has changed)."""
    data = _loaded(dataset, flat, kind)
    return tuple(data.input_shape), int(data.num_classes)


def _loaded(dataset: DatasetConfig, flat: bool, kind: str) -> Any:
    """The dataset, loaded once per process (cached by the stamp of the file it reads)."""
    file = dataset.factory.rpartition(":")[0] if dataset.factory else dataset.path
    stamp = None
    if file is not None and Path(file).is_file():
        st = Path(file).stat()
        stamp = (st.st_mtime_ns, st.st_size)
    return _load_data(dataset, flat, kind, stamp)


@functools.lru_cache(maxsize=16)
def _load_data(dataset: DatasetConfig, flat: bool, kind: str, stamp: tuple[int, int] | None) -> Any:
    try:
        data = dataset.load(flat=flat, task=kind)
    except GrowsearchError as e:
        if dataset.factory is not None:
            key = "dataset.factory"
        elif dataset.name == "table":
            key = "dataset.path"
        elif dataset.root is not None or dataset.name == "imagefolder":
            key = "dataset.root"
        else:
            key = "dataset.name"
        raise _Invalid(key, f"expected a dataset that loads, got an error ({e})") from None
    return data


def _resolve(p: str, base: Path) -> Path:
    """``p`` with ``~`` expanded, relative to ``base`` (the search-space file's folder)."""
    path = Path(p).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


# ---- overrides ---------------------------------------------------------------------------------
def _apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set each ``"a.b.c": value`` in ``data``; a new ``controller.name`` drops old options."""
    new_name = overrides.get("controller.name")
    section = data.get("controller")
    if new_name is not None and not (
        isinstance(section, dict) and section.get("name", "evolution") == new_name
    ):
        data["controller"] = {}
    for key, value in overrides.items():
        if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
            raise _Invalid("", f"expected an override key like 'budget.trials', got {show(key)}")
        parts = key.split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                where = ".".join(parts[: i + 1])
                raise _Invalid(
                    where, f"expected a mapping to apply override {key!r}, got {show(node[part])}"
                )
            node = node[part]
        node[parts[-1]] = value
    return data


def _override_note(path: str, overrides: dict[str, Any]) -> str:
    """`` (from override k=v)`` when the error is about an overridden key."""
    for key, value in overrides.items():
        if isinstance(key, str) and (
            path == key or path.startswith(key + ".") or path.startswith(key + "[")
        ):
            return f" (from override {key}={show(value)})"
    return ""


# ---- pydantic errors as one line ---------------------------------------------------------------
_EXPECTED = {
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
}


def _first_error(
    e: ValidationError, root: type[BaseModel], prefix: tuple[Any, ...], also: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """(key path, message[, offending key]) of pydantic's first error; ``also``: more valid keys."""
    err = e.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        parent = prefix + loc[:-1]
        model = _model_at(root, loc[:-1])
        keys = [*also, *model.model_fields] if model is not None else []
        valid = ", ".join(keys) if keys else "none"
        return (
            _path(parent),
            f"unknown key {show(loc[-1])} (valid keys: {valid})",
            _path(prefix + loc),
        )
    path = _path(prefix + loc)
    if err["type"] == ERROR_TYPE:
        return path, str(err["ctx"]["msg"])
    if err["type"] == "missing":
        return path, "expected a value, got nothing (the key is required)"
    if err["type"] in _EXPECTED:
        return path, f"expected {_EXPECTED[err['type']]}, got {show(err.get('input'))}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return path, f"expected a valid value ({msg}), got {show(err.get('input'))}"


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` below ``root``."""
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        model = _model_in(info.annotation) if info is not None else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _kind(v: Any) -> str:
    if isinstance(v, list):
        return "a list"
    if isinstance(v, str):
        return f"a string {show(v)}"
    return show(v)
