"""Shared machinery of the Net2Net replication benchmark: settings, teachers, students, summaries.

Kept apart from the script so that worker processes (spawned, one thread each) import it by name.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from growsearch.arch import ArchSpec, Deepen, Op, Widen, build
from growsearch.data import Dataset, load_dataset
from growsearch.grow import WarmStartRecipe, grow_child
from growsearch.train import TrainConfig, evaluate, train

PROBE_SIZE = 256  # = growsearch.runner's probe: the labelled batch grow_child checks the child on
ARMS = ("net2net", "net2net-noise", "zero", "random-pad", "scratch")
EXPERIMENTS = ("wider", "deeper")
# the custom-model setting's user model, named by file path as a user would (any worker loads it)
CUSTOM_FACTORY = f"{Path(__file__).resolve().parent / '_custom_model.py'}:resnet1d"


@dataclass(frozen=True)
class Setting:
    """One dataset of the benchmark: the teacher's architecture and the shared training setup.

    Teachers are chosen clearly below what the doubled width reaches, so there is something for
    a student to gain (MNIST-1D CNN widths 8→16: ~93.5% → ~96%; digits 2-D CNN 4,8 → 8,16:
    ~96% → ~98.5%, measured with the settings below). ``batch_norm=False`` builds the CNN
    without BatchNorm (issue 14's setting: widths 24 → 48, Adam 1e-2); ``factory`` makes the
    teacher a user's model grown through the custom-model path (widths: from the model).
    """

    dataset: str
    teacher_widths: tuple[int, ...]
    lr: float = 3e-3
    batch_size: int = 128
    teacher_steps: int = 3000
    calibration_size: int = 512
    batch_norm: bool = True
    factory: str | None = None

    def teacher_spec(self, data: Dataset) -> ArchSpec:
        if self.factory is not None:
            return ArchSpec.from_user_model(
                self.factory, None, data.input_shape, data.num_classes
            )  # fmt: skip
        return ArchSpec.create(
            "cnn", data.input_shape, data.num_classes, list(self.teacher_widths),
            batch_norm=self.batch_norm,
        )  # fmt: skip

    def config(self, steps: int, seed: int, **overrides: Any) -> TrainConfig:
        """The training configuration every arm shares (Adam, cosine, same batches per seed)."""
        base = TrainConfig(
            epochs=10**6,
            max_steps=steps,
            batch_size=self.batch_size,
            lr=self.lr,
            optimizer="adam",
            schedule="cosine",
            device="cpu",
            amp=False,
            seed=seed,
        )
        return dataclasses.replace(base, **overrides)


SETTINGS = {
    "mnist1d": Setting("mnist1d", (8, 8, 8)),
    "digits": Setting("digits", (4, 8)),
    # issue 14: a 3-conv ReLU CNN without BatchNorm, 24 → 48 channels per conv, Adam 1e-2
    "mnist1d-nobn": Setting("mnist1d", (24, 24, 24), lr=1e-2, batch_norm=False),
    # a user's residual 1-D CNN without normalisation (benchmarks/_custom_model.py)
    "mnist1d-custom": Setting("mnist1d", (), factory=CUSTOM_FACTORY),
}


def student_ops(spec: ArchSpec, experiment: str) -> list[Op]:
    """``wider``: every conv layer ×2; ``deeper``: one identity layer inserted in every stage
    (a user's model: every width group ×2, and a zero-initialised residual block after each of
    its residual blocks)."""
    if experiment == "wider":
        return [Widen(layer.name, 2 * layer.width) for layer in spec.layers]
    if experiment == "deeper" and spec.custom is not None:
        ops = []
        cur = spec
        for site in ("block1", "block2"):
            op = Deepen(site, cur.new_layer_name(site))
            ops.append(op)
            cur = cur.apply(op)
        return ops
    if experiment == "deeper":
        ops: list[Op] = []
        cur = spec
        for stage in spec.stages:
            last = stage.layers[-1].name
            op = Deepen(last, cur.new_layer_name(last))
            ops.append(op)
            cur = cur.apply(op)
        return ops
    raise ValueError(f"experiment: expected one of {list(EXPERIMENTS)}, got {experiment!r}")


@functools.lru_cache(maxsize=4)
def dataset(name: str) -> Dataset:
    return load_dataset(name)


def init_worker() -> None:
    """One intra-op thread per process: the machine's cores are shared."""
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


def train_teacher(name: str, seed: int, steps: int | None = None) -> dict[str, Any]:
    """Train the dataset's teacher to convergence; returns its weights and accuracies."""
    setting = SETTINGS[name]
    data = dataset(setting.dataset)
    spec = setting.teacher_spec(data)
    model = build(spec, seed=seed)
    start = time.perf_counter()
    train(model, data, setting.config(steps or setting.teacher_steps, seed))
    return {
        "dataset": name,
        "seed": seed,
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "val_acc": evaluate(model, data.val)[1],
        "test_acc": evaluate(model, data.test)[1],
        "seconds": time.perf_counter() - start,
    }


def run_student(
    name: str,
    experiment: str,
    arm: str,
    seed: int,
    teacher_state: dict[str, torch.Tensor],
    recipe: WarmStartRecipe,
    steps: int,
    eval_every: int,
    variant: str = "",
) -> list[dict[str, Any]]:
    """Grow the teacher by ``experiment`` with ``recipe`` (its init replaced by ``arm``), train
    the student for ``steps`` steps, and return one row per evaluation (val and test accuracy).

    Every arm of a seed trains on the same batches in the same order (TrainConfig.seed) for the
    same number of steps; warm-started arms use the recipe's learning rate and warm-up, scratch
    the base ones: :func:`growsearch.grow.grow_child`, as in a search.
    """
    setting = SETTINGS[name]
    data = dataset(setting.dataset)
    spec = setting.teacher_spec(data)
    teacher = build(spec)
    teacher.load_state_dict(teacher_state)
    teacher.eval()
    teacher_acc = evaluate(teacher, data.test)[1]
    ops = student_ops(spec, experiment)
    arm_recipe = dataclasses.replace(recipe, init=arm)
    calibration = data.train.x[: setting.calibration_size]
    child = grow_child(
        teacher, spec, ops, arm_recipe, calibration=calibration, seed=seed, total_steps=steps,
        probe=data.val.head(PROBE_SIZE)[0],  # as the search's trainable does
    )  # fmt: skip
    student = child.model
    cfg = setting.config(steps, seed, **child.train_overrides(setting.lr))
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()

    def on_eval(step: int, val_loss: float, val_acc: float) -> None:
        test_loss, test_acc = evaluate(student, data.test)
        rows.append(
            {
                "dataset": name,
                "experiment": experiment,
                "arm": arm,
                "variant": variant,
                "seed": seed,
                "step": step,
                "val_acc": val_acc,
                "test_acc": test_acc,
                "test_loss": test_loss,
                "teacher_test_acc": teacher_acc,
            }
        )

    train(
        student, data, cfg, eval_every_steps=eval_every, on_eval=on_eval,
        step_scale=child.step_scale,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    for r in rows:
        r["seconds"] = seconds
    return rows


# ---- summaries ---------------------------------------------------------------------------------


def mean_curve(rows: Iterable[dict[str, Any]], metric: str = "test_acc") -> dict[int, float]:
    """Step → mean of ``metric`` over seeds."""
    acc: dict[int, list[float]] = {}
    for r in rows:
        acc.setdefault(int(r["step"]), []).append(float(r[metric]))
    return {s: sum(v) / len(v) for s, v in sorted(acc.items())}


def steps_to_reach(curve: dict[int, float], target: float) -> int | None:
    """The first evaluated step whose mean accuracy reaches ``target`` (None: never)."""
    for step, value in curve.items():
        if value >= target - 1e-9:
            return step
    return None


def final_stats(rows: list[dict[str, Any]], metric: str = "test_acc") -> tuple[float, float]:
    """Mean and standard deviation over seeds of ``metric`` at the last evaluated step."""
    last = max(int(r["step"]) for r in rows)
    vals = [float(r[metric]) for r in rows if int(r["step"]) == last]
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return mean, std


def env_threads() -> None:
    """Keep BLAS/OpenMP in spawned workers at one thread as well."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
