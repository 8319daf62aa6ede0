"""The Ray Tune trainable: one trial = (grow the parent | fresh init) → train → report.

Runs in a Ray worker process. Everything it needs arrives in the trial config: the proposal
(child spec, parent id, ops) and the run's settings as JSON, validated again here into the
search space's typed sections (:class:`TrialSettings`), once per worker.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from growsearch.arch import build, count_flops, count_params
from growsearch.checkpoint import load_checkpoint, save_checkpoint
from growsearch.controllers import Proposal
from growsearch.data import Dataset
from growsearch.exceptions import GrowsearchError
from growsearch.grow import child_step_scale, grow_child
from growsearch.runner._usercode import seed_weights
from growsearch.space import DatasetConfig, ResourcesConfig, TrainingConfig
from growsearch.storage import Location, location
from growsearch.train import (
    TrainState,
    evaluate,
    pick_device,
    precision_name,
    precision_plan,
    train,
)

PROBE_SIZE = 256
log = logging.getLogger("growsearch")
_warned_no_cuda = False


@functools.lru_cache(maxsize=4)
def _dataset(dataset: DatasetConfig, flat: bool) -> Dataset:
    # cached per worker process: with reuse_actors, later trials skip the data preparation
    return dataset.load(flat=flat)  # type: ignore[no-any-return]


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
    data = _dataset(settings.dataset, proposal.arch.family == "mlp")
    gpu_ids = list(_ray_gpu_ids())
    device, warning = trial_device("auto", gpu_ids)
    if warning is not None:
        _warn_once(warning)  # in the worker's log; the driver warns on its console (RecordCallback)
    bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else True
    seed = settings.seed * 100_003 + int(config.get("index", 0))
    spec = proposal.arch
    warm = settings.warm_start and proposal.parent_id is not None
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
    start_epoch, optimizer_state, resume = 0, None, None
    step_scale = None  # a warm child's per-entry step scale (recipe.new_entry_lr_factor)
    ck = None
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
        optimizer_state = ck.optimizer_state
        start_epoch = int(ck.meta.get("epoch", 0))
        info.update({k: v for k, v in ck.meta.get("info", {}).items() if k not in placement})
        info["restarts"] = int(info.get("restarts") or 0) + 1
        lr = float(info.get("lr", lr))
        warmup = int(info.get("warmup_steps") or 0)
        cycle = int(info.get("cycle_steps") or 0)
        if ck.meta.get("train_state") is not None:  # continue the interrupted run exactly
            resume = TrainState.from_dict(ck.meta["train_state"])
        recipe = training.recipe()
        if warm and recipe.new_entry_lr_factor != 1.0:  # rebuilt: spec + ops only
            parent_spec = load_checkpoint(
                models_dir(settings.run_dir) / str(proposal.parent_id)
            ).spec
            step_scale = child_step_scale(
                parent_spec, proposal.ops, recipe, seed=seed,
                calibration=data.train.head(PROBE_SIZE)[0].to(device),
            )  # fmt: skip
    elif warm:
        parent = load_checkpoint(models_dir(settings.run_dir) / str(proposal.parent_id))

        def after_morph(morphed: torch.nn.Module) -> None:  # before the recipe's perturbation
            info["acc_before"] = evaluate(morphed, data.val, device=device)[1]

        child = grow_child(
            parent.model(device), parent.spec, proposal.ops, training.recipe(),
            total_steps=steps, seed=seed, calibration=data.train.head(PROBE_SIZE)[0].to(device),
            probe=data.val.head(PROBE_SIZE)[0].to(device), after_morph=after_morph,
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
        info["parent_acc"] = float(parent.meta.get("metrics", {}).get("val_acc", float("nan")))
        info["acc_start"] = evaluate(model, data.val, device=device)[1]
        info["lr"], info["warmup_steps"], info["cycle_steps"] = lr, warmup, cycle
    else:
        model = build(spec, seed=seed).to(device)
        if spec.custom is not None and spec.custom.weights and proposal.parent_id is None:
            # the seed of a search over a user's model starts from the user's trained weights
            # (the run folder's copy: this worker may lack the user's file, see _usercode)
            weights = seed_weights(settings.run_dir, spec.custom.weights)
            model.load_state_dict(load_file(weights, device=str(device)), strict=True)

    if ck is not None and start_epoch >= epochs:  # it had finished before the search stopped
        tune.report(dict(ck.meta["metrics"]))
        return
    if resume is not None:  # the same run as before the interruption, from where it stopped
        cfg = training.train_config(
            epochs=epochs, lr=lr, warmup_steps=warmup, cycle_steps=cycle, device=str(device),
            seed=seed,
        )  # fmt: skip
    else:  # a checkpoint without the loop's state: the remaining epochs as a new run
        done = steps // epochs * start_epoch  # the first cycle's steps already taken
        cfg = training.train_config(
            epochs=epochs - start_epoch, lr=lr, warmup_steps=warmup, device=str(device),
            cycle_steps=cycle - done if cycle - done > warmup else 0, seed=seed + start_epoch,
        )  # fmt: skip
    cost = config.get("cost") or {}  # computed by the searcher in the driver (see its _cost)
    params = int(cost.get("params") or count_params(model))
    flops = int(cost.get("flops") or count_flops(model, spec.input_shape))
    lineage = {
        "trial_id": proposal.trial_id,
        "parent_id": proposal.parent_id,
        "ops": [op.to_dict() for op in proposal.ops],
    }
    t0 = time.perf_counter()
    first_step_unix = time.time()  # for the start-up benchmark: launch → first training step
    spent = float(info.get("train_seconds", 0.0))

    def on_epoch(res, model, optimizer) -> None:  # type: ignore[no-untyped-def]
        epoch = res.epoch if resume is not None else start_epoch + res.epoch
        seconds = spent + time.perf_counter() - t0
        metrics = {
            "epoch": epoch, "epochs_planned": epochs, "val_acc": res.val_acc, "val_loss": res.val_loss,
            "train_loss": res.train_loss,
            "params": params, "flops": flops, "train_seconds": seconds, "first_step_unix": first_step_unix,
            **{k: v for k, v in info.items() if v is not None and k != "train_seconds"},
            **placement, "ended_unix": time.time(),
        }  # fmt: skip
        # The test set is for reporting, not selection: evaluate it once, at the end — or every
        # epoch when a scheduler may stop the trial at any epoch, or when the space asks for it.
        if epoch >= epochs or settings.early_stopping or training.test_every_epoch:
            metrics["test_loss"], metrics["test_acc"] = evaluate(model, data.test, device=device)
        meta = {
            **lineage,
            "epoch": epoch,
            "metrics": metrics,
            "pid": os.getpid(),  # which worker process wrote it (tools, fault-injection tests)
            "node_id": node_id,  # which Ray node ran it (multi-node clusters)
            "info": {**info, "train_seconds": seconds, **placement},
            # only for a run that can be continued exactly (not one restarted without it)
            "train_state": res.state.to_dict() if start_epoch == 0 or resume else None,
        }
        save_checkpoint(
            models_dir(settings.run_dir) / proposal.trial_id, spec, model,
            optimizer_state=optimizer.state_dict(), meta=meta, overwrite=True,
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            path = save_checkpoint(
                Path(tmp) / "ck", spec, model, optimizer_state=optimizer.state_dict(), meta=meta
            )
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(path)))

    train(
        model, data, cfg, optimizer_state=optimizer_state, resume=resume, on_epoch=on_epoch,
        step_scale=step_scale,
    )  # fmt: skip


def _ray_node_id() -> str | None:
    """The id of the Ray node this trial runs on (None outside Ray)."""
    import ray

    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else None


def _ray_gpu_ids() -> list[Any]:
    """The GPU ids Ray assigned to this trial (empty without GPUs or outside Ray)."""
    import ray

    return list(ray.get_gpu_ids()) if ray.is_initialized() else []


__all__ = ["TrialSettings", "models_dir", "train_trial", "trial_device"]
