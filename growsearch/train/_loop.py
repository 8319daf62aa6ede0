"""A plain supervised training loop over in-memory tensors (or streamed batches).

One call of :func:`train` runs ``cfg.epochs`` epochs (or ``cfg.max_steps`` optimizer steps) with
seeded shuffling, a cosine (or constant) learning rate with optional linear warm-up, optional
mixed precision (by default on CUDA only; explicitly ``"bf16"``/``"fp16"`` on any device, CPU
included), optional augmentation of training batches, and validation after every epoch.

Data held in memory is indexed batch by batch (on a GPU, where it is moved once when it fits);
a :class:`~growsearch.data.StreamedSplit` is read through a ``DataLoader`` in the same order.
"""

from __future__ import annotations

import base64
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from growsearch.data import AnySplit, Dataset, Split, StreamedSplit, check_batch
from growsearch.exceptions import ConfigError, DataError, TrainingError
from growsearch.tasks import Classification, Task, measure, model_device
from growsearch.train._augment import Augment

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "constant")
AMP_MODES = ("auto", "off", "bf16", "fp16")
"""Values of :attr:`TrainConfig.amp` (``True`` means ``"auto"``, ``False`` means ``"off"``)."""


@dataclass
class TrainConfig:
    """How to train one model.

    Attributes:
        epochs: Passes over the training split.
        batch_size: Samples per optimizer step.
        lr: Peak learning rate.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (momentum 0.9, Nesterov).
        weight_decay: Weight decay (decoupled for AdamW, L2 for Adam and SGD).
        schedule: ``"cosine"`` (decay to 0 over the run) or ``"constant"``.
        warmup_steps: Linear warm-up from 0 over this many steps, e.g. to re-warm a
            warm-started child.
        cycle_steps: With ``"cosine"``: the first cosine cycle ends (the learning rate reaches
            0) after this many steps, warm-up included; the schedule then restarts at ``lr``
            and decays to 0 again over the remaining steps (a warm restart, Loshchilov &
            Hutter's SGDR). A warm-started child reaches an annealed accuracy early this way.
            0: one cycle over the whole run.
        max_steps: Stop after this many optimizer steps in total (counted across epochs);
            the cosine schedule then spans ``min(epochs * steps_per_epoch, max_steps)``.
        label_smoothing: Label smoothing of the cross-entropy loss.
        grad_clip: Clip the global gradient norm to this value.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        amp: Mixed precision. ``True``/``"auto"``: on CUDA only, bf16 where the GPU supports it,
            else fp16 with a gradient scaler (full precision on CPU). ``False``/``"off"``: full
            precision. ``"bf16"``/``"fp16"``: autocast to that dtype on any device, CPU included
            (fp16 with a gradient scaler). The weights stay float32 either way.
        seed: Seeds the shuffling and the global RNGs (dropout etc.) at the start of training.
        augment: Random crop / flip of each training batch (never of evaluation batches), or
            None.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    cycle_steps: int = 0
    max_steps: int | None = None
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    device: str = "auto"
    amp: bool | str = True
    seed: int = 0
    augment: Augment | None = None

    def __post_init__(self) -> None:
        def check(ok: bool, field: str, expected: str) -> None:
            if not ok:
                raise ConfigError(
                    f"TrainConfig.{field}: expected {expected}, got {getattr(self, field)!r}"
                )

        check(self.epochs >= 1, "epochs", "an integer >= 1")
        check(self.batch_size >= 1, "batch_size", "an integer >= 1")
        check(self.lr > 0, "lr", "a number > 0")
        check(self.optimizer in OPTIMIZERS, "optimizer", f"one of {list(OPTIMIZERS)}")
        check(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        check(self.schedule in SCHEDULES, "schedule", f"one of {list(SCHEDULES)}")
        check(self.warmup_steps >= 0, "warmup_steps", "an integer >= 0")
        check(
            self.cycle_steps == 0 or self.cycle_steps > self.warmup_steps,
            "cycle_steps",
            "0 or an integer > warmup_steps",
        )
        check(self.max_steps is None or self.max_steps >= 1, "max_steps", "None or an integer >= 1")
        check(0 <= self.label_smoothing < 1, "label_smoothing", "a number in [0, 1)")
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "None or a number > 0")
        check(
            isinstance(self.amp, bool) or self.amp in AMP_MODES,
            "amp",
            f"True, False or one of {list(AMP_MODES)}",
        )


@dataclass
class EpochResult:
    """What one epoch (possibly cut short by ``max_steps``) produced.

    Attributes:
        epoch: 1-based epoch number.
        step: Optimizer steps taken so far (counting those before a ``resume``).
        train_loss: Mean training loss over the epoch's batches (sample-weighted).
        val_loss: Mean loss on the validation split after the epoch.
        val_acc: Accuracy on the validation split after the epoch (NaN for a task without
            ``acc``).
        seconds: Wall-clock time of the epoch, its evaluations included.
        lr: Learning rate of the epoch's last step.
        state: Where the run stands after this epoch: pass it back as ``train(resume=...)``
            (with the optimizer's state) to continue exactly as if it had not stopped.
        val: Every metric of the task on the validation split, by name (``loss``, ``acc``,
            ``mse``...).
    """

    epoch: int
    step: int
    train_loss: float
    val_loss: float
    val_acc: float
    seconds: float
    lr: float
    state: TrainState | None = None
    val: dict[str, float] = field(default_factory=dict)


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


@dataclass(frozen=True)
class TrainState:
    """Everything besides the weights and the optimizer that a run of :func:`train` needs to
    continue exactly after an epoch: the position in the learning-rate schedule, the data
    order's generator, the global random generators (dropout...) and the fp16 gradient
    scaler. Plain JSON (:meth:`to_dict`), so a checkpoint can hold it without pickle.

    Attributes:
        epoch: Epochs completed.
        step: Optimizer steps taken.
        shuffle: State of the generator that draws each epoch's order (base64).
        rng: Global generator states: ``torch``, ``cuda`` (one per device), ``numpy``, ``python``.
        scaler: The gradient scaler's state (fp16 only).
        augment: State of the generator that draws the augmentation (base64), if any.
    """

    epoch: int
    step: int
    shuffle: str
    rng: dict[str, Any] = field(default_factory=dict)
    scaler: dict[str, Any] | None = None
    augment: str | None = None

    @classmethod
    def capture(
        cls,
        epoch: int,
        step: int,
        shuffle: torch.Generator,
        scaler: torch.amp.GradScaler,
        augment: torch.Generator | None = None,
    ) -> TrainState:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, mt, py_gauss = random.getstate()
        rng = {
            "torch": _b64(torch.get_rng_state()),
            "cuda": [_b64(s) for s in torch.cuda.get_rng_state_all()]
            if torch.cuda.is_available() and torch.cuda.is_initialized()
            else [],
            "numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(mt), py_gauss],
        }
        return cls(
            epoch=epoch,
            step=step,
            shuffle=_b64(shuffle.get_state()),
            rng=rng,
            scaler=scaler.state_dict() if scaler.is_enabled() else None,
            augment=None if augment is None else _b64(augment.get_state()),
        )

    def restore(
        self,
        shuffle: torch.Generator,
        scaler: torch.amp.GradScaler,
        augment: torch.Generator | None = None,
    ) -> None:
        """Put the generators (and the scaler) back where they were."""
        shuffle.set_state(_unb64(self.shuffle))
        if augment is not None and self.augment is not None:
            augment.set_state(_unb64(self.augment))
        torch.set_rng_state(_unb64(self.rng["torch"]))
        cuda = self.rng.get("cuda") or []
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([_unb64(s) for s in cuda])
        kind, keys, pos, has_gauss, gauss = self.rng["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        version, mt, py_gauss = self.rng["python"]
        random.setstate((version, tuple(mt), py_gauss))
        if self.scaler is not None and scaler.is_enabled():
            scaler.load_state_dict(self.scaler)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "shuffle": self.shuffle,
            "rng": self.rng,
            "scaler": self.scaler,
            "augment": self.augment,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        return cls(
            epoch=int(data["epoch"]),
            step=int(data["step"]),
            shuffle=str(data["shuffle"]),
            rng=dict(data["rng"]),
            scaler=data.get("scaler"),
            augment=data.get("augment"),
        )


EpochCallback = Callable[[EpochResult, nn.Module, torch.optim.Optimizer], bool | None]
"""``on_epoch(result, model, optimizer)``; returning True stops training."""


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global random generators (CUDA included).

    Args:
        seed: The seed.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(device: str = "auto") -> torch.device:
    """Resolve a device name.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU) or any torch device string.

    Returns:
        The device.

    Raises:
        ConfigError: The name is invalid, or CUDA is asked for but not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"device: expected 'auto', 'cpu', 'cuda'..., got {device!r}") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} was asked for but CUDA is not available")
    return resolved


def evaluate(
    model: nn.Module,
    split: AnySplit,
    *,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    task: Task | None = None,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``split``, in eval mode (the task's ``loss`` and
    ``acc``; by default classification's cross-entropy and accuracy). For every metric of a
    task by name, use :func:`growsearch.tasks.measure`.

    Args:
        model: By default a classifier returning logits of shape ``(N, num_classes)``.
        split: The samples to evaluate on.
        batch_size: Samples per forward pass.
        device: Where to run; by default the device of the model's parameters.
        task: The task that scores the outputs (default: classification).

    Returns:
        ``(loss, accuracy)``; accuracy is NaN for a task without ``acc``.

    Raises:
        DataError: The split is empty.
    """
    if len(split) == 0:
        raise DataError("evaluate: the split is empty")
    if task is None:
        task = Classification(_num_outputs(model, split, device))
    m = measure(model, split, task, batch_size=batch_size, device=device)
    return m["loss"], m.get("acc", float("nan"))


@torch.no_grad()
def _num_outputs(model: nn.Module, split: AnySplit, device: torch.device | str | None) -> int:
    """The width of ``model``'s output on one sample of ``split`` (its number of classes)."""
    device = torch.device(device) if device is not None else model_device(model)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        return int(model(split.head(1)[0].to(device)).shape[1])
    finally:
        for module, training in modes.items():
            module.training = training


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Build the optimizer ``cfg`` names over all of ``model``'s parameters.

    Args:
        model: The model to train.
        cfg: Supplies ``optimizer``, ``lr`` and ``weight_decay``.

    Returns:
        The optimizer.
    """
    params, lr, wd = model.parameters(), cfg.lr, cfg.weight_decay
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    raise ConfigError(f"optimizer: must be one of {list(OPTIMIZERS)}, got {cfg.optimizer!r}")


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Learning rate for 0-based optimizer step ``step`` of ``total_steps``.

    Args:
        step: The step about to be taken.
        total_steps: Steps in the whole run.
        cfg: Supplies ``lr``, ``schedule``, ``warmup_steps`` and ``cycle_steps``.

    Returns:
        The learning rate.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    start, end = cfg.warmup_steps, total_steps
    if 0 < cfg.cycle_steps < total_steps:
        if step < cfg.cycle_steps:
            end = cfg.cycle_steps
        else:
            start = cfg.cycle_steps
    progress = (step - start) / max(1, end - start)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _step_scales(
    model: nn.Module, step_scale: Mapping[str, torch.Tensor], caller: str = "train"
) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """(parameter, scale on its device) for each entry of ``step_scale`` that is not all ones."""
    params = dict(model.named_parameters())
    out = []
    for name, scale in step_scale.items():
        if name not in params:
            raise ConfigError(f"{caller}: step_scale names {name!r}, which is not a parameter")
        p = params[name]
        if tuple(scale.shape) != tuple(p.shape):
            raise ConfigError(
                f"{caller}: step_scale[{name!r}] has shape {tuple(scale.shape)}, "
                f"the parameter {tuple(p.shape)}"
            )
        if not bool((scale == 1).all()):
            out.append((p, scale.detach().to(device=p.device, dtype=p.dtype)))
    return out


class StepScaling:
    """What :func:`scale_steps` attached to an optimizer; :meth:`remove` detaches it."""

    def __init__(self, handles: list[Any]) -> None:
        self._handles = handles

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> StepScaling:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def scale_steps(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    step_scale: Mapping[str, torch.Tensor] | None,
) -> StepScaling:
    """Make every ``optimizer.step()`` move ``model``'s entries ``step_scale`` times as far.

    For a training loop of one's own: what :func:`train`'s ``step_scale`` does, as optimizer
    step hooks (``p = p_before + scale * (p_after - p_before)`` after each step, so it holds
    under Adam, whose normalisation would undo a scaled gradient, and under a ``GradScaler``,
    whose skipped steps never call the optimizer). ``step_scale`` is e.g.
    :attr:`growsearch.grow.GrownChild.step_scale`; ``None`` or all ones attach nothing.

    Returns:
        A handle whose ``remove()`` (or the end of a ``with`` block) detaches the hooks.

    Raises:
        ConfigError: ``step_scale`` names a tensor that is not a parameter of ``model``, or
            has another shape.
    """
    return _attach(optimizer, _step_scales(model, step_scale or {}, "scale_steps"))


def _attach(
    optimizer: torch.optim.Optimizer, scaled: list[tuple[nn.Parameter, torch.Tensor]]
) -> StepScaling:
    """The step hooks of :func:`scale_steps` for already checked ``(parameter, scale)`` pairs."""
    if not scaled:
        return StepScaling([])
    before: list[torch.Tensor] = []

    def pre(*_: object) -> None:
        before[:] = [p.detach().clone() for p, _ in scaled]

    def post(*_: object) -> None:
        with torch.no_grad():
            for (p, scale), b in zip(scaled, before, strict=True):
                p.sub_(b).mul_(scale).add_(b)
        before.clear()

    return StepScaling(
        [optimizer.register_step_pre_hook(pre), optimizer.register_step_post_hook(post)]
    )


def train(
    model: nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    *,
    optimizer_state: dict | None = None,
    resume: TrainState | None = None,
    on_epoch: EpochCallback | None = None,
    eval_every_steps: int | None = None,
    on_eval: Callable[[int, float, float], None] | None = None,
    step_scale: Mapping[str, torch.Tensor] | None = None,
    task: Task | None = None,
) -> list[EpochResult]:
    """Train ``model`` in place on ``data.train``, validating on ``data.val`` after each epoch.

    Each epoch visits the training split in a fresh seeded order in batches of
    ``cfg.batch_size``; the last incomplete batch is dropped (so a BatchNorm layer never sees
    a batch of one) unless the split is smaller than one batch. Same seed, same model
    initialisation, same device: same weights.

    Args:
        model: The classifier to train; moved to the chosen device.
        data: The dataset.
        cfg: The training configuration.
        optimizer_state: A state dict saved from the optimizer of an earlier run, to resume
            its moments.
        resume: The :attr:`EpochResult.state` of an earlier, interrupted call with the same
            ``cfg`` (and ``optimizer_state`` from the same epoch): training continues from
            there — schedule, warm-up, data order and random generators — and ends with the
            weights an uninterrupted call would have. Without it the schedule starts at step 0.
        on_epoch: Called after every epoch with the result, the model and the optimizer
            (e.g. to report or checkpoint); returning True stops training.
        eval_every_steps: Evaluate on the validation split at step 0 (before any update) and
            after every this many steps; needs ``on_eval``.
        on_eval: Receives ``(step, val_loss, val_acc)`` for each of those evaluations.
        step_scale: Parameter name -> a tensor of its shape that multiplies each entry's
            update after every optimizer step (``p = p_before + scale * (p_after - p_before)``):
            a per-entry learning rate that works under Adam too, whose normalisation would undo
            a scaled gradient; e.g. the entries a morph added (:func:`growsearch.grow.new_entries`)
            stepped K times as far. A resumed call needs the same ``step_scale``.
        task: What the model is trained for: its ``loss`` is minimised and its metrics are
            measured on the validation split after every epoch. Default: classification with
            ``cfg.label_smoothing``.

    Returns:
        One :class:`EpochResult` per epoch run.

    Raises:
        TrainingError: The training loss became NaN or infinite.
        ConfigError: Invalid ``eval_every_steps``/``on_eval``, device or ``step_scale``.
    """
    if (eval_every_steps is None) != (on_eval is None):
        raise ConfigError("train: eval_every_steps and on_eval must be given together")
    if eval_every_steps is not None and eval_every_steps < 1:
        raise ConfigError(f"train: eval_every_steps must be >= 1, got {eval_every_steps}")
    n = len(data.train)
    if n == 0:
        raise DataError(f"train: the training split of {data.name!r} is empty")

    device = pick_device(cfg.device)
    if task is None:
        task = Classification(data.num_classes, label_smoothing=cfg.label_smoothing)
    augment = cfg.augment if cfg.augment is not None and cfg.augment.enabled else None
    if augment is not None:
        augment.check_shape(data.input_shape)
    set_seed(cfg.seed)  # dropout and other in-model randomness
    shuffle_rng = torch.Generator().manual_seed(cfg.seed)
    # its own generator, so the data order is the same with and without augmentation
    augment_rng = None if augment is None else torch.Generator().manual_seed(cfg.seed + 1)
    model.to(device)
    scaled = _step_scales(model, step_scale or {})
    optimizer = make_optimizer(model, cfg)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    _attach(optimizer, scaled)  # lives as long as this optimizer: the call
    autocast_dtype, scaler = _mixed_precision(cfg, device)
    if resume is not None:
        resume.restore(shuffle_rng, scaler, augment_rng)
    # data in memory goes to the GPU once (when it fits), not batch by batch
    train_split, val_split = _resident(data.train, device), _resident(data.val, device)
    streamed = isinstance(train_split, StreamedSplit)

    batch_size = min(cfg.batch_size, n)
    steps_per_epoch = n // batch_size
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)

    def maybe_eval(step: int) -> None:
        if on_eval is not None and eval_every_steps is not None and step % eval_every_steps == 0:
            on_eval(step, *evaluate(model, val_split, device=device, task=task))

    results: list[EpochResult] = []
    first, step = (1, 0) if resume is None else (resume.epoch + 1, resume.step)
    lr = lr_at(step, total_steps, cfg)
    if resume is None:
        maybe_eval(step)
    for epoch in range(first, cfg.epochs + 1):
        if step >= total_steps:
            break
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=shuffle_rng)
        loss_sum, seen = 0.0, 0
        batches = _batches(train_split, batch_size, order, device)
        for x, y in batches:
            if step >= total_steps:
                break
            if streamed:
                check_batch(x, y, data.input_shape, data.num_classes if data.labels else None)
            if augment is not None and augment_rng is not None:
                x = augment(x, augment_rng)

            lr = lr_at(step, total_steps, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(
                device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
            ):
                output = model(x)
            loss = task.loss(output, y)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TrainingError(
                    f"training loss is {loss_value} at epoch {epoch}, step {step + 1} "
                    f"(lr {lr:.3g}); lower the learning rate or clip gradients"
                )

            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)  # step_scale's hooks run inside the optimizer's step
            scaler.update()

            step += 1
            loss_sum += loss_value * len(y)
            seen += len(y)
            maybe_eval(step)

        val = measure(model, val_split, task, device=device)
        result = EpochResult(
            epoch=epoch,
            step=step,
            train_loss=loss_sum / seen,
            val_loss=val["loss"],
            val_acc=val.get("acc", float("nan")),
            seconds=time.perf_counter() - start,
            lr=lr,
            state=TrainState.capture(epoch, step, shuffle_rng, scaler, augment_rng),
            val=val,
        )
        results.append(result)
        if on_epoch is not None and on_epoch(result, model, optimizer):
            break
        if step >= total_steps:
            break
    return results


def _batches(
    split: AnySplit,
    batch_size: int,
    order: torch.Tensor,
    device: torch.device,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training's ``(x, y)`` batches on ``device``, in ``order``, the last incomplete batch
    dropped (evaluation reads splits through :func:`growsearch.tasks.measure`).

    A streamed split reads the same batches as one in memory would. Its workers' seeds (for a
    Dataset that draws random numbers) come from the epoch's order, so they repeat on a resume
    and no generator of the run is disturbed."""
    if isinstance(split, StreamedSplit):
        seed = int(order[0]) * 1_000_003 + int(order[-1])
        loader = split.loader(
            batch_size,
            order.tolist(),
            drop_last=True,
            generator=torch.Generator().manual_seed(seed),
        )
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return
    order = order.to(split.x.device)
    for batch in range(len(order) // batch_size):
        idx = order[batch * batch_size : (batch + 1) * batch_size]
        yield split.x[idx].to(device, non_blocking=True), split.y[idx].to(device, non_blocking=True)


def _resident(split: AnySplit, device: torch.device) -> AnySplit:
    """An in-memory split on ``device`` when that is a GPU with room for it (half its free
    memory at most), so batches are sliced there; otherwise the split as it is."""
    if device.type != "cuda" or not isinstance(split, Split):
        return split
    free, _ = torch.cuda.mem_get_info(device)
    return split.to(device) if split.nbytes <= free // 2 else split


def amp_mode(amp: bool | str) -> str:
    """``TrainConfig.amp`` as one of :data:`AMP_MODES` (``True`` → ``"auto"``, ``False`` → ``"off"``).

    Raises:
        ConfigError: Not a valid value.
    """
    if isinstance(amp, bool):
        return "auto" if amp else "off"
    if amp not in AMP_MODES:
        raise ConfigError(f"amp: expected true, false or one of {list(AMP_MODES)}, got {amp!r}")
    return amp


def precision_plan(
    amp: bool | str, device_type: str, bf16_supported: bool
) -> tuple[torch.dtype | None, bool]:
    """What mixed precision does on a device: ``(autocast dtype or None, gradient scaler on)``.

    A pure function of the setting, the device type (``"cpu"``, ``"cuda"``...) and whether the
    device computes in bfloat16, so the CUDA choice can be checked without a GPU.

    * ``"off"`` (``False``): full precision everywhere.
    * ``"auto"`` (``True``): CUDA only: bf16 where supported (fp32's exponent range, so no
      scaling), else fp16 with a gradient scaler; full precision on any other device.
    * ``"bf16"``: bf16 on any device; ConfigError on a CUDA device without bf16.
    * ``"fp16"``: fp16 with a gradient scaler, on any device.

    Raises:
        ConfigError: An invalid ``amp``, or ``"bf16"`` on a CUDA device without bf16 support.
    """
    mode = amp_mode(amp)
    if mode == "off" or (mode == "auto" and device_type != "cuda"):
        return None, False
    if mode == "auto":
        return (torch.bfloat16, False) if bf16_supported else (torch.float16, True)
    if mode == "bf16":
        if device_type == "cuda" and not bf16_supported:
            raise ConfigError("amp: 'bf16' was asked for but this GPU does not support bfloat16")
        return torch.bfloat16, False
    return torch.float16, True


def precision_name(dtype: torch.dtype | None) -> str:
    """``"bf16"``, ``"fp16"`` or ``"fp32"`` (no autocast): what a trial records."""
    if dtype is None:
        return "fp32"
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def _mixed_precision(
    cfg: TrainConfig, device: torch.device
) -> tuple[torch.dtype | None, torch.amp.GradScaler]:
    """Autocast dtype (None: full precision) and a gradient scaler (a no-op unless fp16)."""
    bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else True
    dtype, scale = precision_plan(cfg.amp, device.type, bf16)
    return dtype, torch.amp.GradScaler(device.type, enabled=scale)
