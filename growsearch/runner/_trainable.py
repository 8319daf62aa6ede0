"""The Ray Tune trainable: one trial = (restore | grow the parent | fresh init) → fit → report.

Runs in a Ray worker process. Everything it needs arrives in the trial config: the proposal
(child spec, parent id, ops) and the run's settings as JSON, validated again here into the
search space's typed sections (:class:`TrialSettings`), once per worker. The model is made
here, before any training loop sees it; the loop — growsearch's own (:func:`builtin_fit`) or
the user's ``training.function`` — trains it through a :class:`TrialContext`, whose reports
are the trial's checkpoints.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from growsearch.arch import build, count_flops, count_params, load_factory
from growsearch.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from growsearch.controllers import Proposal
from growsearch.data import Dataset
from growsearch.exceptions import ConfigError, GrowsearchError, ReportError
from growsearch.grow import child_step_scale, grow_child
from growsearch.runner._context import TrialContext
from growsearch.runner._usercode import seed_weights
from growsearch.space import DatasetConfig, ResourcesConfig, TaskConfig, TrainingConfig
from growsearch.storage import Location, location
from growsearch.tasks import measure
from growsearch.train import (
    TrainState,
    pick_device,
    precision_name,
    precision_plan,
    train,
)

PROBE_SIZE = 256
log = logging.getLogger("growsearch")
_warned_no_cuda = False


@functools.lru_cache(maxsize=4)
def _dataset(dataset: DatasetConfig, flat: bool, kind: str = "classification") -> Dataset:
    # cached per worker process: with reuse_actors, later trials skip the data preparation
    return dataset.load(flat=flat, task=kind)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class TrialSettings:
    """The run's settings a trial needs, as the search space's typed sections."""

    run_dir: str  # a local path or a URI (growsearch.storage): the run folder every worker shares
    seed: int
    warm_start: bool
    early_stopping: bool  # a scheduler may stop a trial after any epoch
    dataset: DatasetConfig
    training: TrainingConfig
    resources: ResourcesConfig
    task: TaskConfig
    objective: str  # the metric every report must carry (the search's objective)

    @classmethod
    def from_config(cls, settings: dict[str, Any]) -> TrialSettings:
        return _parse_settings(json.dumps(settings, sort_keys=True))


@functools.lru_cache(maxsize=8)
def _parse_settings(text: str) -> TrialSettings:
    s = json.loads(text)
    return TrialSettings(
        run_dir=str(s["run_dir"]),
        seed=int(s["seed"]),
        warm_start=bool(s["warm_start"]),
        early_stopping=s.get("scheduler") is not None,
        dataset=DatasetConfig.model_validate(s["dataset"]),
        training=TrainingConfig.model_validate(s["training"]),
        resources=ResourcesConfig.model_validate(s["resources"]),
        task=TaskConfig.model_validate(s.get("task") or "classification"),
        objective=str((s.get("objective") or {}).get("metric", "val_acc")),
    )


def models_dir(run_dir: str | Path | Location) -> Location:
    """Where every trial's latest weights live, read by its children: a folder of the run's
    location (a local path, or a URI such as ``s3://`` that every node of a cluster reaches)."""
    return location(run_dir) / "models"


def trial_device(requested: str, gpu_ids: list[Any]) -> tuple[torch.device, str | None]:
    """The device a trial trains on, and a warning when Ray gave it GPUs it cannot use.

    ``"auto"`` means the GPU Ray assigned to the trial (``resources.gpus_per_trial > 0``), else
    the CPU: a trial never uses a GPU that Ray did not reserve for it. Ray's GPUs are logical: a
    cluster may declare GPUs (``ray start --num-gpus``) that this worker's torch cannot reach
    (a CPU-only build, no driver); then ``"auto"`` trains on the CPU and returns a warning. An
    explicit device is used as given (``"cuda"`` without CUDA is an error).
    """
    if requested != "auto":
        return pick_device(requested), None
    if not gpu_ids:
        return torch.device("cpu"), None
    if torch.cuda.is_available():
        return torch.device("cuda"), None  # Ray's CUDA_VISIBLE_DEVICES: the assigned GPU(s)
    return torch.device("cpu"), (
        f"Ray gave this trial GPU {','.join(str(g) for g in gpu_ids)} but CUDA is not available "
        f"in the worker (torch {torch.__version__}); training on the CPU"
    )


def _warn_once(message: str) -> None:
    global _warned_no_cuda
    if not _warned_no_cuda:
        _warned_no_cuda = True
        log.warning("growsearch: %s", message)


def train_trial(config: dict[str, Any]) -> None:
    """The function trainable registered with Ray Tune."""
    from ray import tune  # imported here: the rest of the module is usable without Ray

    settings = TrialSettings.from_config(config["settings"])
    training = settings.training
    proposal = Proposal.from_dict(config["proposal"])
    torch.set_num_threads(max(1, int(settings.resources.cpus_per_trial)))
    # a model family's MLP takes flat inputs; a user's model takes the data as it is
    data = _dataset(settings.dataset, proposal.arch.family == "mlp", settings.task.kind)
    task = settings.task.build(data, float(training.label_smoothing))
    # classification keeps the parent's predictions; any other task its output values
    recipe = training.recipe()
    if settings.task.kind != "classification":
        recipe = replace(recipe, keep_outputs=True)
    fit = builtin_fit if training.function is None else load_fit(training.function)
    gpu_ids = list(_ray_gpu_ids())
    device, warning = trial_device("auto", gpu_ids)
    if warning is not None:
        _warn_once(warning)  # in the worker's log; the driver warns on its console (RecordCallback)
    bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else True
    seed = settings.seed * 100_003 + int(config.get("index", 0))
    spec = proposal.arch
    warm = settings.warm_start and proposal.parent_id is not None
    # the objective's value at the stages of a warm start (accuracy for classification), when
    # the task computes the objective's metric (a user's loop may report metrics of its own)
    scored = settings.objective.removeprefix("val_") in {"loss", *task.metrics()}

    def score(model: torch.nn.Module) -> float | None:
        if not scored:
            return None
        return measure(model, data.val, task, device=device)[
            settings.objective.removeprefix("val_")
        ]

    info: dict[str, Any] = {
        "warm_start": warm,
        "parent_acc": None,
        "acc_before": None,
        "preserve_err": None,
    }
    # where it ran (recorded in meta.json and trials.parquet): the device, Ray's GPU ids, precision
    placement = {
        "device": str(device),
        "gpu_ids": ",".join(str(g) for g in gpu_ids),
        "precision": precision_name(precision_plan(training.amp, device.type, bf16)[0]),
    }

    node_id = _ray_node_id()
    resumed = tune.get_checkpoint()
    own = models_dir(settings.run_dir) / proposal.trial_id
    step_scale = None  # a warm child's per-entry step scale (recipe.new_entry_lr_factor)
    ck: Checkpoint | None = None
    if resumed is not None:  # Tune restarted this trial (e.g. its worker or node died)
        with resumed.as_directory() as d:
            ck = load_checkpoint(d)
    elif (own / "meta.json").is_file():  # the search was resumed: continue from its last epoch
        ck = load_checkpoint(own)
    epochs = training.epochs_for(child=proposal.parent_id is not None)
    steps = max(1, len(data.train) // training.batch_size) * epochs
    lr, warmup, cycle = training.lr, 0, 0
    if ck is not None:
        model = ck.model(device).train()
        info.update({k: v for k, v in ck.meta.get("info", {}).items() if k not in placement})
        info["restarts"] = int(info.get("restarts") or 0) + 1
        lr = float(info.get("lr", lr))
        warmup = int(info.get("warmup_steps") or 0)
        cycle = int(info.get("cycle_steps") or 0)
        if warm and recipe.new_entry_lr_factor != 1.0:  # rebuilt: spec + ops only
            parent_spec = load_checkpoint(
                models_dir(settings.run_dir) / str(proposal.parent_id)
            ).spec
            step_scale = child_step_scale(
                parent_spec, proposal.ops, recipe, seed=seed,
                calibration=_inputs(data, PROBE_SIZE, device),
            )  # fmt: skip
    elif warm:
        parent = load_checkpoint(models_dir(settings.run_dir) / str(proposal.parent_id))

        def after_morph(morphed: torch.nn.Module) -> None:  # before the recipe's perturbation
            info["acc_before"] = score(morphed)

        child = grow_child(
            parent.model(device), parent.spec, proposal.ops, recipe,
            total_steps=steps, seed=seed, calibration=_inputs(data, PROBE_SIZE, device),
            probe=_inputs(data, PROBE_SIZE, device, "val"), after_morph=after_morph,
        )  # fmt: skip
        if child.spec != spec:
            raise GrowsearchError(
                f"trial {proposal.trial_id}: ops {[str(o) for o in proposal.ops]} on "
                f"{parent.spec.summary()} give {child.spec.summary()}, not {spec.summary()}"
            )
        model = child.model
        step_scale = child.step_scale
        overrides = child.train_overrides(training.lr)
        lr, warmup = float(overrides["lr"]), int(overrides["warmup_steps"])
        cycle = int(overrides["cycle_steps"])
        info["shrink"] = float(child.recipe.shrink) if child.recipe.init != "scratch" else None
        info["shrink_scope"] = child.recipe.shrink_scope if child.recipe.init != "scratch" else None
        info["preserve_err"] = child.preserve_err
        parent_value = parent.meta.get("metrics", {}).get(settings.objective)
        info["parent_acc"] = None if parent_value is None else float(parent_value)
        info["acc_start"] = score(model)
        info["lr"], info["warmup_steps"], info["cycle_steps"] = lr, warmup, cycle
    else:
        model = build(spec, seed=seed).to(device)
        if spec.custom is not None and spec.custom.weights and proposal.parent_id is None:
            # the seed of a search over a user's model starts from the user's trained weights
            # (the run folder's copy: this worker may lack the user's file, see _usercode)
            weights = seed_weights(settings.run_dir, spec.custom.weights)
            model.load_state_dict(load_file(weights, device=str(device)), strict=True)

    if ck is not None and int(ck.meta.get("epoch", 0)) >= epochs:  # it had finished already
        tune.report(dict(ck.meta["metrics"]))
        return
    cost = config.get("cost") or {}  # computed by the searcher in the driver (see its _cost)
    params = int(cost.get("params") or count_params(model))
    flops = int(cost.get("flops") or count_flops(model, spec.input_shape, spec.input_dtype))
    lineage = {
        "trial_id": proposal.trial_id,
        "parent_id": proposal.parent_id,
        "ops": [op.to_dict() for op in proposal.ops],
    }
    t0 = time.perf_counter()
    first_step_unix = time.time()  # for the start-up benchmark: launch → first training step
    spent = float(info.get("train_seconds", 0.0))
    # the objective's value after each epoch, across restarts (the trials table's ``curve``)
    history: list[float] = list(ck.meta.get("history") or []) if ck is not None else []

    def save(
        values: dict[str, float], model: torch.nn.Module, opt: dict[str, Any], extra: dict[str, Any]
    ) -> None:
        epoch = ctx.epoch
        seconds = spent + time.perf_counter() - t0
        del history[epoch - 1 :]
        history.append(values[settings.objective])
        metrics = {
            "epoch": epoch, "epochs_planned": epochs, **values, "history": list(history),
            "params": params, "flops": flops, "train_seconds": seconds, "first_step_unix": first_step_unix,
            **{k: v for k, v in info.items() if v is not None and k != "train_seconds"},
            **placement, "ended_unix": time.time(),
        }  # fmt: skip
        # The test set is for reporting, not selection: evaluate it once, at the end — or every
        # epoch when a scheduler may stop the trial at any epoch, or when the space asks for it.
        # A loop that reports test metrics of its own is taken at its word.
        wanted = epoch >= epochs or settings.early_stopping or training.test_every_epoch
        if wanted and not any(k.startswith("test_") for k in values):
            try:
                metrics.update(ctx.evaluate(model, "test"))
            except Exception as e:  # a user's loop whose outputs the task cannot score
                log.warning("growsearch: trial %s: no test metrics (%s)", proposal.trial_id, e)
        meta = {
            **lineage,
            "epoch": epoch,
            "metrics": metrics,
            "pid": os.getpid(),  # which worker process wrote it (tools, fault-injection tests)
            "node_id": node_id,  # which Ray node ran it (multi-node clusters)
            "info": {**info, "train_seconds": seconds, **placement},
            "scheduler": extra["scheduler"],
            "user_state": extra["user_state"],
            "history": list(history),
        }
        save_checkpoint(
            models_dir(settings.run_dir) / proposal.trial_id, spec, model,
            optimizer_state=opt["optimizer"], meta=meta, overwrite=True,
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            path = save_checkpoint(
                Path(tmp) / "ck", spec, model, optimizer_state=opt["optimizer"], meta=meta
            )
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(path)))

    ctx = TrialContext(
        trial_id=proposal.trial_id, device=device, epochs=epochs, lr=lr,
        hparams=training.model_dump(mode="json"), task=task, objective=settings.objective,
        seed=seed, warmup_steps=warmup, total_steps=steps, cycle_steps=cycle, step_scale=step_scale,
        checkpoint=ck, save=save, data=data, model=model,
    )  # fmt: skip
    model.train()
    fit(model, data, ctx)
    if ctx.stopped:
        raise SystemExit(0)  # as Ray's report does for a stopped trial
    if not ctx.reported:
        raise ReportError(
            "the training loop returned without reporting an epoch (call ctx.report(metrics, "
            "model=model) after each epoch)"
        )


def builtin_fit(model: torch.nn.Module, data: Dataset, ctx: TrialContext) -> None:
    """growsearch's own loop (:func:`growsearch.train.train`) as a ``fit``: the task's loss, the
    space's optimiser and schedule with the recipe's warm-up and cycles, exact resume from the
    trial's last report, every metric of the task on the validation split each epoch."""
    training = TrainingConfig.model_validate(ctx.hparams)
    meta = ctx.checkpoint_meta
    ck = ctx._checkpoint
    start_epoch = ctx.start_epoch
    state = (meta.get("user_state") or {}).get("train_state") or meta.get("train_state")
    resume = TrainState.from_dict(state) if state is not None else None
    epochs, cycle, warmup = ctx.epochs, ctx.cycle_steps, ctx.warmup_steps
    if resume is not None or ck is None:  # a new run, or the same run from where it stopped
        cfg = training.train_config(
            epochs=epochs, lr=ctx.lr, warmup_steps=warmup, cycle_steps=cycle,
            device=str(ctx.device), seed=ctx.seed,
        )  # fmt: skip
    else:  # a checkpoint without the loop's state: the remaining epochs as a new run
        done = ctx.total_steps // epochs * start_epoch  # the first cycle's steps already taken
        cfg = training.train_config(
            epochs=epochs - start_epoch, lr=ctx.lr, warmup_steps=warmup, device=str(ctx.device),
            cycle_steps=cycle - done if cycle - done > warmup else 0, seed=ctx.seed + start_epoch,
        )  # fmt: skip
    exact = ck is None or resume is not None

    def on_epoch(res, model, optimizer) -> bool:  # type: ignore[no-untyped-def]
        values = {f"val_{k}": v for k, v in res.val.items()}
        values["train_loss"] = res.train_loss
        train_state = res.state.to_dict() if exact and res.state is not None else None
        return ctx.report(
            values, model=model, optimizer=optimizer, state={"train_state": train_state}
        )

    train(
        model, data, cfg, optimizer_state=None if ck is None else ck.optimizer_state,
        resume=resume, on_epoch=on_epoch, step_scale=ctx._step_scale, task=ctx.task,
    )  # fmt: skip


def load_fit(function: str) -> Any:
    """The user's ``fit(model, data, ctx)`` named by ``training.function``."""
    try:
        return load_factory(function)
    except GrowsearchError as e:
        raise ConfigError(f"training.function: {e}") from None


def _inputs(data: Dataset, n: int, device: torch.device, split: str = "train") -> torch.Tensor:
    """The first ``n`` inputs of a split, on ``device`` (a calibration or probe batch)."""
    return getattr(data, split).head(n)[0].to(device)


def _ray_node_id() -> str | None:
    """The id of the Ray node this trial runs on (None outside Ray)."""
    import ray

    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else None


def _ray_gpu_ids() -> list[Any]:
    """The GPU ids Ray assigned to this trial (empty without GPUs or outside Ray)."""
    import ray

    return list(ray.get_gpu_ids()) if ray.is_initialized() else []


__all__ = [
    "TrialSettings",
    "builtin_fit",
    "load_fit",
    "models_dir",
    "train_trial",
    "trial_device",
]
