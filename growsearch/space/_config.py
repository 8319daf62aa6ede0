"""The sections of a search-space file as frozen pydantic models (validated once, at load).

Each model forbids unknown keys; cross-field checks that need more than one section (the seed
architecture against the mutation limits, say) live in :mod:`growsearch.space._load`.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from growsearch.space._fields import (
    Section,
    boolean,
    integer,
    invalid,
    non_empty_list,
    number,
    one_of,
    text,
    to_number,
)
from growsearch.space._mutations import MutationSpace

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "constant")
WARM_INITS = ("net2net", "net2net-noise", "zero", "random-pad")
SHRINK_SCOPES = (
    "auto",
    "all",
    "scale-invariant",
    "homogeneous",
    "homogeneous-hidden",
    "homogeneous-norms",
)  # = growsearch.grow's (no torch here)
SCHEDULERS = ("asha",)
AMP_MODES = ("auto", "off", "bf16", "fp16")  # growsearch.train.AMP_MODES (no torch import here)
OBJECTIVES = {"val_acc": "maximize", "params": "minimize", "flops": "minimize"}
"""The objectives of a classification search by name, with their directions; any metric a
trial reports can be the first objective (``objective: {metric, mode}``)."""
SIZE_OBJECTIVES = ("params", "flops")
"""Objectives after the first: a model's size, always minimised."""
TASKS = ("classification", "regression")  # = growsearch.tasks.TASKS (no torch import here)
REGRESSION_LOSSES = ("mse", "l1", "huber")  # = growsearch.tasks.LOSSES
MODES = ("min", "max")

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FACTORY = re.compile(
    r"^([A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*|[^:]+\.py):[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$"
)

PosInt = Annotated[int, integer(lo=1)]
NonNegInt = Annotated[int, integer(lo=0)]
Bool = Annotated[bool, boolean()]


def _amp(v: Any) -> str:
    # YAML reads `off`/`on` as booleans: true is "auto", false is "off"
    if isinstance(v, bool):
        return "auto" if v else "off"
    if not isinstance(v, str) or v not in AMP_MODES:
        raise invalid(f"one of {list(AMP_MODES)} (or true = 'auto', false = 'off')", v)
    return v


Amp = Annotated[str, BeforeValidator(_amp)]


def _shrink(v: Any) -> float | str:
    if v == "auto":
        return "auto"
    f = to_number(v)
    if f is None or not 0.0 < f <= 1.0:
        raise invalid("'auto' or a number in (0, 1]", v)
    return f


Shrink = Annotated[float | str, BeforeValidator(_shrink)]


def _dataset_names() -> tuple[str, ...]:
    from growsearch.data import DATASETS  # torch and friends: only when a file is loaded

    return DATASETS


def _in_memory(v: Any) -> bool | str:
    if v == "auto" or isinstance(v, bool):
        return v
    raise invalid("auto, true or false", v)


InMemory = Annotated[bool | str, BeforeValidator(_in_memory)]
Factory = Annotated[
    str,
    text(
        "a string 'package.module:function' or 'file.py:function'",
        lambda s: bool(_FACTORY.match(s)),
    ),
]


class DatasetConfig(Section):
    """``dataset``: which data the search trains on.

    A name (a built-in dataset, ``imagefolder`` with ``root``, ``table`` with ``path`` and
    ``target``) or a user's ``factory``, never both.

    Attributes:
        name: A name from :data:`growsearch.data.DATASETS`.
        root: A local folder (``imagefolder`` only), resolved against the search-space file's
            folder when relative.
        path: A CSV or parquet file (``table`` only), resolved the same way.
        target: The table's column of class labels (``table`` only).
        factory: ``package.module:function`` or ``file.py:function`` returning
            ``{"train", "val" (optional), "test"}`` (see :func:`growsearch.data.dataset_from_factory`).
        in_memory: A factory's ``torch.utils.data.Dataset``: ``auto`` (read into memory when it
            fits, else streamed), ``true`` or ``false`` (always streamed).
        workers: ``DataLoader`` worker processes that read a ``Dataset``.
    """

    name: Annotated[str, one_of(_dataset_names)] | None = None
    root: Annotated[str, text("a folder path")] | None = None
    path: Annotated[str, text("a file path")] | None = None
    target: Annotated[str, text("a column name")] | None = None
    factory: Factory | None = None
    in_memory: InMemory = "auto"
    workers: NonNegInt = 2

    def load(self, flat: bool = False, task: str = "classification") -> Any:
        """The :class:`growsearch.data.Dataset` this section names (``flat``: samples flattened
        to 1-D, for the mlp family); a factory is imported and called here. ``task`` is the
        kind of the search's task (:attr:`TaskConfig.kind`): only classification insists on
        class labels; a table is read as a regression table for ``regression``."""
        from growsearch.arch import load_factory
        from growsearch.data import dataset_from_factory, flatten, load_dataset

        if self.factory is not None:
            fn = load_factory(self.factory)
            name = self.factory.rpartition(":")[2]
            data = dataset_from_factory(
                fn, name=name, in_memory=self.in_memory, workers=int(self.workers),
                labels=task == "classification",
            )  # fmt: skip
            return flatten(data) if flat else data
        return load_dataset(
            str(self.name), root=self.root, path=self.path, target=self.target, flat=flat,
            regression=task == "regression",
        )  # fmt: skip


class TaskConfig(Section):
    """``task``: what a trial trains for and how it is scored.

    ``classification`` (the default), ``regression``, or a mapping: ``{name: regression, loss:
    huber}``, or a user's own task ``{factory: my_task.py:make, options: {...}}``.

    Attributes:
        name: ``classification`` or ``regression``.
        loss: Regression only: ``mse`` (default), ``l1`` or ``huber``.
        factory: ``package.module:function`` or ``file.py:function`` returning an object with
            ``loss(output, target)`` and ``metrics()`` (:class:`growsearch.tasks.Task`).
        options: Keyword arguments of the factory.
    """

    name: Annotated[str, one_of(TASKS)] | None = None
    loss: Annotated[str, one_of(REGRESSION_LOSSES)] | None = None
    factory: Factory | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @property
    def kind(self) -> str:
        """``classification``, ``regression`` or ``custom`` (a factory)."""
        return "custom" if self.factory is not None else str(self.name or "classification")

    def build(self, data: Any, label_smoothing: float = 0.0) -> Any:
        """The :class:`growsearch.tasks.Task` for ``data`` (a :class:`growsearch.data.Dataset`)."""
        from growsearch.tasks import Classification, Regression, load_user_task

        if self.factory is not None:
            return load_user_task(self.factory, dict(self.options))
        if self.kind == "regression":
            stats = data.target_stats
            return Regression(
                width=int(data.num_classes), loss=self.loss or "mse",
                target_mean=None if stats is None else stats[0],
                target_std=None if stats is None else stats[1],
            )  # fmt: skip
        return Classification(int(data.num_classes), label_smoothing=label_smoothing)


class ObjectiveConfig(Section):
    """``objective``: the metric a search optimises, e.g. ``{metric: val_mse, mode: min}`` (or
    just the metric's name when its direction is known).

    Attributes:
        metric: A metric every trial reports (``val_acc``, ``val_loss``, ``val_<name>``...).
        mode: ``min`` or ``max``; may be left out for the task's own metrics.
    """

    metric: Annotated[str, text("a metric name such as 'val_acc'")]
    mode: Annotated[str, one_of(MODES)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, v: Any) -> Any:
        return {"metric": v} if isinstance(v, str) else v


class SeedModelConfig(Section):
    """``seed_model``: the architecture the search starts from.

    Either a model family (``family`` + ``stages``...) or a user's own model (``factory``,
    optionally ``weights``), never both.

    Attributes:
        family: ``mlp``, ``cnn`` or ``resnet``.
        stages: Widths per stage, a list of lists (one width per layer or block).
        stage_widths: resnet only: the residual width of each stage.
        kernel_size: Convolution kernel size (odd).
        batch_norm: BatchNorm after every linear/conv layer.
        dropout: Dropout before the head.
        factory: ``package.module:function`` returning an ``nn.Module``.
        weights: A safetensors file with the factory model's trained weights.
    """

    family: Annotated[str, one_of(("mlp", "cnn", "resnet"))] | None = None
    stages: (
        Annotated[tuple[Annotated[tuple[PosInt, ...], non_empty_list()], ...], non_empty_list()]
        | None
    ) = None
    stage_widths: Annotated[tuple[PosInt, ...], non_empty_list()] | None = None
    kernel_size: Annotated[int, integer(lo=1)] = 3
    batch_norm: Bool = True
    dropout: Annotated[float, number(ge=0.0, lt=1.0)] = 0.0
    factory: Factory | None = None
    weights: Annotated[str, text("a file path")] | None = None


class ControllerConfig(Section):
    """``controller``: the search strategy.

    Attributes:
        name: A name from :data:`growsearch.controllers.CONTROLLERS`.
        options: The controller's own options as written; the controller validates them
            (its ``Options`` model) when it is made.
    """

    name: str = "evolution"
    options: dict[str, Any] = Field(default_factory=dict)


class AugmentConfig(Section):
    """``training.augment``: random changes to each training batch (never to val/test).

    Attributes:
        crop: Random crop with padding: pad each side by this many pixels and crop back at a
            random offset (0 = off).
        flip: Random horizontal flip of half the samples.
    """

    crop: NonNegInt = 0
    flip: Bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.crop or self.flip)


RENAMED_TRAINING_KEYS = {
    "student_lr_factor": "lr_factor",
    "student_warmup_fraction": "warmup_fraction",
    "student_cycle_fraction": "cycle_fraction",
    "student_new_entry_lr_factor": "new_entry_lr_factor",
}
"""``training`` keys that were renamed: earlier spelling -> today's (the old one still works)."""


class TrainingConfig(Section):
    """``training``: how each trial trains.

    Attributes:
        epochs: Epochs per child.
        seed_epochs: Epochs for the seed architecture (and any model trained from scratch
            as a seed).
        batch_size: Samples per step.
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        lr: Peak learning rate.
        weight_decay: Weight decay.
        schedule: ``cosine`` or ``constant`` learning rate.
        grad_clip: Clip the gradient norm; null = off.
        label_smoothing: Label smoothing of the loss.
        amp: Mixed precision: ``auto`` (on CUDA only: bf16 where supported, else fp16 with a
            gradient scaler), ``off``, or ``bf16``/``fp16`` on any device, CPU included.
        augment: Augmentation of training batches (:class:`AugmentConfig`).
        test_every_epoch: Evaluate the test set after every epoch of a trial, not only after
            its last (a test-accuracy learning curve; a ``scheduler``, which may stop a trial
            at any epoch, does so anyway). The test set is reported, never used to select.
        function: A training loop of the user's own, ``file.py:fit`` or ``module:fit``:
            ``fit(model, data, ctx)`` trains the trial's (already grown) model and reports
            each epoch through ``ctx.report`` (see docs/tasks.md); null: growsearch's own loop.
        options: Settings of the user's own loop, any keys (``ctx.hparams["options"]``).

    The warm-start recipe (how a warm-started child is made and trained); each null means
    the measured default of :class:`growsearch.grow.WarmStartRecipe`:

        init: How a warm-started child's new units are initialised: ``zero`` (the default:
            fresh incoming, zero outgoing weights; exact), ``net2net`` (replicas of existing
            units; exact), ``net2net-noise`` or ``random-pad``.
        split_std: Spread of net2net's random split of outgoing weights over replicas.
        lr_factor: A warm-started child trains at ``lr * lr_factor``.
        warmup_fraction: Linear LR warm-up over this fraction of the child's steps
            (default 0.1; 0 turns it off).
        shrink: Shrink-and-perturb λ applied to the child's weights after the morph, or
            ``auto`` (the default): by the child's training steps, 0.6 up to 135, 0.3 from
            270 on, log-linear between (:func:`growsearch.grow.auto_shrink`).
        perturb_std: Shrink-and-perturb σ (scale of a fresh initialisation added).
        shrink_scope: ``auto`` (the default: ``homogeneous-norms``, λ at least 0.6 on deep
            networks without normalisation; :func:`growsearch.grow.resolve_shrink_scope`),
            ``all`` (every weight × shrink), ``scale-invariant`` (only the layers a BatchNorm
            normalises), ``homogeneous`` / ``homogeneous-hidden`` (the predictions-keeping
            rescale of positively homogeneous networks, with / without the logit temperature),
            ``homogeneous-norms`` (the same, normalisation scales × shrink too).
        logit_scale: Multiplies the logits layer (a temperature; predictions kept).
        cycle_fraction: A warm child's cosine learning-rate cycle ends at this
            fraction of its steps, then restarts and decays again over the rest (0: one cycle;
            :attr:`growsearch.grow.WarmStartRecipe.cycle_fraction`).
        new_entry_lr_factor: The entries the morph added to a warm child take steps
            this many times as long as the inherited ones (1: one learning rate;
            :attr:`growsearch.grow.WarmStartRecipe.new_entry_lr_factor`).

    The recipe's keys are named as :class:`~growsearch.grow.WarmStartRecipe`'s fields; the
    earlier spellings ``student_lr_factor``, ``student_warmup_fraction``,
    ``student_cycle_fraction`` and ``student_new_entry_lr_factor`` are still accepted, with one
    deprecation line each.
    """

    epochs: PosInt = 10
    seed_epochs: PosInt = 30
    batch_size: PosInt = 128
    optimizer: Annotated[str, one_of(OPTIMIZERS)] = "adam"
    lr: Annotated[float, number(gt=0.0)] = 0.003
    weight_decay: Annotated[float, number(ge=0.0)] = 0.0
    schedule: Annotated[str, one_of(SCHEDULES)] = "cosine"
    grad_clip: Annotated[float, number(gt=0.0)] | None = None
    label_smoothing: Annotated[float, number(ge=0.0, lt=1.0)] = 0.0
    amp: Amp = "auto"
    augment: AugmentConfig = AugmentConfig()
    test_every_epoch: Bool = False
    function: Factory | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    init: Annotated[str, one_of(WARM_INITS)] | None = None
    split_std: Annotated[float, number(ge=0.0)] | None = None
    lr_factor: Annotated[float, number(gt=0.0)] | None = None
    warmup_fraction: Annotated[float, number(ge=0.0, lt=1.0)] | None = None
    shrink: Shrink | None = None
    perturb_std: Annotated[float, number(ge=0.0)] | None = None
    shrink_scope: Annotated[str, one_of(SHRINK_SCOPES)] | None = None
    logit_scale: Annotated[float, number(gt=0.0, le=1.0)] | None = None
    cycle_fraction: Annotated[float, number(ge=0.0, lt=1.0)] | None = None
    new_entry_lr_factor: Annotated[float, number(gt=0.0)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _earlier_spellings(cls, data: Any) -> Any:
        """``student_<key>`` as ``<key>``, with a deprecation line; both at once is an error."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in RENAMED_TRAINING_KEYS.items():
            if old not in data:
                continue
            if new in data:
                raise PydanticCustomError(
                    "renamed", f"both {new} and its earlier spelling {old} are given: keep {new}"
                )
            logging.getLogger("growsearch").warning(
                "growsearch: training.%s is deprecated, use training.%s (same meaning)", old, new
            )
            data[new] = data.pop(old)
        return data

    def epochs_for(self, child: bool) -> int:
        """Epochs a trial trains: ``epochs`` for a child, ``seed_epochs`` for a seed."""
        return int(self.epochs if child else self.seed_epochs)

    def train_config(
        self,
        *,
        epochs: int,
        device: str,
        seed: int,
        lr: float | None = None,
        warmup_steps: int = 0,
        cycle_steps: int = 0,
    ) -> Any:
        """The :class:`growsearch.train.TrainConfig` of one trial: this section's settings with
        the trial's length, device and seed, and a warm child's learning rate, warm-up and
        first cosine cycle."""
        from growsearch.train import Augment, TrainConfig

        augment = self.augment
        return TrainConfig(
            epochs=epochs, batch_size=self.batch_size, lr=self.lr if lr is None else lr,
            optimizer=self.optimizer, weight_decay=self.weight_decay, schedule=self.schedule,
            warmup_steps=warmup_steps, cycle_steps=cycle_steps,
            label_smoothing=self.label_smoothing,
            grad_clip=self.grad_clip, device=device, amp=self.amp, seed=seed,
            augment=Augment(int(augment.crop), bool(augment.flip)) if augment.enabled else None,
        )  # fmt: skip

    def recipe(self) -> Any:
        """The :class:`~growsearch.grow.WarmStartRecipe` this section describes."""
        from growsearch.grow import WarmStartRecipe

        fields = {
            "init": self.init, "split_std": self.split_std,
            "lr_factor": self.lr_factor,
            "warmup_fraction": self.warmup_fraction, "shrink": self.shrink,
            "perturb_std": self.perturb_std, "shrink_scope": self.shrink_scope,
            "logit_scale": self.logit_scale, "cycle_fraction": self.cycle_fraction,
            "new_entry_lr_factor": self.new_entry_lr_factor,
        }  # fmt: skip
        given: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        return WarmStartRecipe(**given)


class BudgetConfig(Section):
    """``budget``: when the search stops (whichever limit is reached first; at least one set).

    Attributes:
        trials: Number of trials, the seed included.
        time_minutes: Wall-clock minutes.
        epochs: Training epochs summed over all trials.
    """

    trials: PosInt | None = None
    time_minutes: Annotated[float, number(gt=0.0)] | None = None
    epochs: PosInt | None = None


class ResourcesConfig(Section):
    """``resources``: what each trial gets, and how many run at once.

    Attributes:
        cpus_per_trial: CPUs per trial (may be fractional).
        gpus_per_trial: GPUs per trial: a fraction in [0, 1] or a whole number.
        concurrency: Trials running at the same time.
    """

    cpus_per_trial: Annotated[float, number(gt=0.0)] = 1.0
    gpus_per_trial: Annotated[float, number(ge=0.0)] = 0.0
    concurrency: PosInt = 2


class SchedulerConfig(Section):
    """``scheduler``: early stopping of weak trials (ASHA).

    Attributes:
        name: ``asha``.
        grace_period: Epochs every trial runs before it can be stopped.
        reduction_factor: ASHA's reduction factor (> 1).
    """

    name: Annotated[str, one_of(SCHEDULERS)] = "asha"
    grace_period: PosInt = 1
    reduction_factor: Annotated[float, number(gt=1.0)] = 2.0


def _run_name(s: str) -> bool:
    return bool(_RUN_NAME.match(s))


class SpaceModel(Section):
    """The whole file, before the cross-field checks."""

    name: (
        Annotated[str, text("a run name of letters, digits, '_', '.' or '-'", _run_name)] | None
    ) = None
    seed: NonNegInt = 0
    dataset: DatasetConfig
    seed_model: SeedModelConfig
    mutations: MutationSpace = MutationSpace()
    controller: dict[str, Any] = Field(default_factory=lambda: {"name": "evolution"})
    training: TrainingConfig = TrainingConfig()
    budget: BudgetConfig = BudgetConfig(trials=20)
    task: TaskConfig = TaskConfig()
    objective: ObjectiveConfig | None = None
    objectives: Annotated[tuple[Any, ...], non_empty_list()] | None = None
    resources: ResourcesConfig = ResourcesConfig()
    scheduler: SchedulerConfig | None = None
    warm_start: Bool = True
