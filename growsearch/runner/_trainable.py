"""The Ray Tune trainable: one trial = (morph the parent's weights | fresh init) → train → report.

Runs in a Ray worker process. Everything it needs arrives in the trial config: the proposal
(child spec, parent id, ops) and the run's settings (plain JSON: dataset, training, paths).
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from growsearch.arch import build, count_flops, count_params
from growsearch.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from growsearch.controllers import Proposal
from growsearch.data import Dataset, load_dataset
from growsearch.exceptions import GrowsearchError
from growsearch.morph import apply_ops, perturb_student, student_train_overrides
from growsearch.runner._usercode import seed_weights
from growsearch.space import TrainingConfig as TrainingConfig_
from growsearch.train import (
    TrainConfig,
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
def _dataset(name: str, root: str | None, flat: bool) -> Dataset:
    # cached per worker process: with reuse_actors, later trials skip the data preparation
    return load_dataset(name, root=root, flat=flat)


def models_dir(run_dir: str | Path) -> Path:
    """Where every trial's latest weights live, read by its children (shared storage on a cluster)."""
    return Path(run_dir) / "models"


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

    settings = config["settings"]
    proposal = Proposal.from_dict(config["proposal"])
    threads = max(1, int(settings["resources"]["cpus_per_trial"]))
    torch.set_num_threads(threads)
    ds = settings["dataset"]
    data = _dataset(ds["name"], ds.get("root"), proposal.arch.family == "mlp")  # custom: as is
    training = settings["training"]
    gpu_ids = list(_ray_gpu_ids())
    device, warning = trial_device(training.get("device", "auto"), gpu_ids)
    if warning is not None:
        _warn_once(warning)  # in the worker's log; the driver warns on its console (RecordCallback)
    amp = training.get("amp", "auto")
    bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else True
    seed = int(settings["seed"]) * 100_003 + int(config.get("index", 0))
    spec = proposal.arch
    warm = bool(settings["warm_start"]) and proposal.parent_id is not None
    recipe = TrainingConfig_(**training).recipe()
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
        "precision": precision_name(precision_plan(amp, device.type, bf16)[0]),
    }

    node_id = _ray_node_id()
    resumed = tune.get_checkpoint()
    own = models_dir(settings["run_dir"]) / proposal.trial_id
    start_epoch, optimizer_state = 0, None
    ck = None
    if resumed is not None:  # Tune restarted this trial (e.g. its worker or node died)
        with resumed.as_directory() as d:
            ck = load_checkpoint(d)
    elif own.is_dir():  # the search was resumed: continue from this trial's last epoch
        ck = load_checkpoint(own)
    epochs = int(training["epochs"] if proposal.parent_id is not None else training["seed_epochs"])
    steps = max(1, len(data.train) // int(training["batch_size"])) * epochs
    if ck is not None:
        model = ck.model(device).train()
        optimizer_state = ck.optimizer_state
        start_epoch = int(ck.meta.get("epoch", 0))
        info.update({k: v for k, v in ck.meta.get("info", {}).items() if k not in placement})
        info["restarts"] = int(info.get("restarts") or 0) + 1
    elif warm:
        recipe = recipe.for_steps(steps)  # shrink "auto" depends on the child's length
        info["shrink"] = float(recipe.shrink) if recipe.init != "scratch" else None
        parent = load_checkpoint(models_dir(settings["run_dir"]) / str(proposal.parent_id))
        parent_model = parent.model(device)
        probe = data.val.x[:PROBE_SIZE].to(device)
        calibration = data.train.x[:PROBE_SIZE].to(device)
        model, child_spec = apply_ops(
            parent_model, parent.spec, proposal.ops, init=recipe.init, calibration=calibration,
            seed=seed, split_std=recipe.split_std,
        )  # fmt: skip
        if child_spec != spec:
            raise GrowsearchError(
                f"trial {proposal.trial_id}: ops {[str(o) for o in proposal.ops]} on "
                f"{parent.spec.summary()} give {child_spec.summary()}, not {spec.summary()}"
            )
        model.eval()
        parent_model.eval()
        with torch.no_grad():
            a, b = parent_model(probe), model(probe)
        info["preserve_err"] = float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))
        info["parent_acc"] = float(parent.meta.get("metrics", {}).get("val_acc", float("nan")))
        info["acc_before"] = evaluate(model, data.val, device=device)[1]
        # then the recipe's deliberate, non-exact step (shrink-and-perturb); see WarmStartRecipe
        model = perturb_student(model, child_spec, recipe, calibration=calibration, seed=seed)
        info["acc_start"] = evaluate(model, data.val, device=device)[1]
    else:
        model = build(spec, seed=seed).to(device)
        if spec.custom is not None and spec.custom.weights and proposal.parent_id is None:
            # the seed of a search over a user's model starts from the user's trained weights
            # (the run folder's copy: this worker may lack the user's file, see _usercode)
            weights = seed_weights(settings["run_dir"], spec.custom.weights)
            model.load_state_dict(load_file(weights, device=str(device)), strict=True)

    if ck is not None and start_epoch >= epochs:  # it had finished before the search stopped
        tune.report(dict(ck.meta["metrics"]))
        return
    lr, warmup = float(training["lr"]), 0
    if warm:
        overrides = student_train_overrides(recipe, base_lr=lr, total_steps=steps)
        lr, warmup = overrides["lr"], overrides["warmup_steps"]
        info.setdefault("warmup_steps", warmup)  # a resumed trial keeps its first start's
    cfg = TrainConfig(
        epochs=epochs - start_epoch, batch_size=int(training["batch_size"]), lr=lr,
        optimizer=training.get("optimizer", "adam"), weight_decay=float(training.get("weight_decay", 0.0)),
        warmup_steps=warmup, label_smoothing=float(training.get("label_smoothing", 0.0)),
        schedule=training.get("schedule", "cosine"), grad_clip=training.get("grad_clip"),
        device=str(device), amp=amp, seed=seed + start_epoch,
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

    early_stopping = settings.get("scheduler") is not None

    def on_epoch(res, model, optimizer) -> None:  # type: ignore[no-untyped-def]
        epoch = start_epoch + res.epoch
        seconds = spent + time.perf_counter() - t0
        metrics = {
            "epoch": epoch, "epochs_planned": epochs, "val_acc": res.val_acc, "val_loss": res.val_loss,
            "train_loss": res.train_loss,
            "params": params, "flops": flops, "train_seconds": seconds, "first_step_unix": first_step_unix,
            **{k: v for k, v in info.items() if v is not None and k != "train_seconds"},
            **placement, "ended_unix": time.time(),
        }  # fmt: skip
        # The test set is for reporting, not selection: evaluate it once, at the end — or every
        # epoch when a scheduler may stop the trial at any epoch (~7% of a small trial's time).
        if epoch >= epochs or early_stopping:
            metrics["test_loss"], metrics["test_acc"] = evaluate(model, data.test, device=device)
        meta = {
            **lineage,
            "epoch": epoch,
            "metrics": metrics,
            "pid": os.getpid(),  # which worker process wrote it (tools, fault-injection tests)
            "node_id": node_id,  # which Ray node ran it (multi-node clusters)
            "info": {**info, "train_seconds": seconds, **placement},
        }
        save_checkpoint(
            models_dir(settings["run_dir"]) / proposal.trial_id, spec, model,
            optimizer_state=optimizer.state_dict(), meta=meta, overwrite=True,
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            path = save_checkpoint(
                Path(tmp) / "ck", spec, model, optimizer_state=optimizer.state_dict(), meta=meta
            )
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(path)))

    train(model, data, cfg, optimizer_state=optimizer_state, on_epoch=on_epoch)


def _ray_node_id() -> str | None:
    """The id of the Ray node this trial runs on (None outside Ray)."""
    import ray

    return str(ray.get_runtime_context().get_node_id()) if ray.is_initialized() else None


def _ray_gpu_ids() -> list[Any]:
    """The GPU ids Ray assigned to this trial (empty without GPUs or outside Ray)."""
    import ray

    return list(ray.get_gpu_ids()) if ray.is_initialized() else []


def read_parent(run_dir: str | Path, trial_id: str) -> Checkpoint:
    """The latest checkpoint of a trial in a run (for tools and tests)."""
    return load_checkpoint(models_dir(run_dir) / trial_id)


__all__ = ["models_dir", "read_parent", "train_trial", "trial_device"]
