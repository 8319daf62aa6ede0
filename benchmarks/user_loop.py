"""A user's own training loop: what does it lose if it ignores ``ctx.scale_steps`` / ``ctx.warmup``?

A search space's ``training.function: file.py:fit`` hands each trial's model to the user's
``fit(model, data, ctx)``; the warm-start recipe then reaches the model only through two calls the
loop may or may not make: ``ctx.warmup(optimizer)`` (the recipe's linear learning-rate warm-up)
and ``ctx.scale_steps(optimizer)`` (the entries the morph added step ``new_entry_lr_factor``
times as far). This benchmark measures each of them in the replication's *wider* setting
(``benchmarks/net2net_replication.py``: the same teachers, widen ops and student budget), outside
a search, with the same pieces as public functions:

* the teacher: :func:`_common.train_teacher` (the replication's teacher, trained to convergence);
* the child: :func:`growsearch.grow.grow_child` with the default :class:`WarmStartRecipe`, every
  conv layer ×2; its peak learning rate and warm-up from :meth:`GrownChild.train_overrides`;
* the loop, as a user writes it: plain Adam at a constant learning rate (the child's), seeded
  batches (the same batches in the same order for every arm of a seed), cross-entropy; the
  warm-up as ``ctx.warmup`` builds it (a ``LambdaLR`` stepped after every optimizer step), the
  step scale by :func:`growsearch.train.scale_steps` (what ``ctx.scale_steps`` calls).

Arms: ``both`` (warm-up + step scale, what ``search_spaces/own_loop/fit.py`` does), ``warmup
only``, ``scale_steps only``, ``neither``; and ``scratch``, the from-scratch student (the child's
architecture freshly initialised, ``init="scratch"``) under the same loop at the base learning
rate, the reference. Per arm and seed: the final validation and test accuracy, and the fraction
of the steps at which the arm's validation accuracy first reaches the same seed's ``scratch``
final validation accuracy (NaN if it never does; evaluated every ``--eval-every`` steps).

    .venv/bin/python benchmarks/user_loop.py                          # mnist1d + digits, 3 seeds
    .venv/bin/python benchmarks/user_loop.py --quick --out /tmp/ul    # a smoke run, < 1 min

Appends one row per dataset × arm × seed to ``<out>/user_loop.csv`` (``run``: the invocation's
name, ``--run``; ``command``: its command line) and prints a table of medians over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as C  # noqa: E402
from _machine import ForeignCPU, wait_idle  # noqa: E402 (benchmarks/_machine.py)
from _tables_io import add_output_args, append_csv, command_line  # noqa: E402 (benchmarks/_tables_io.py)

from growsearch.arch import build  # noqa: E402
from growsearch.grow import WarmStartRecipe, grow_child  # noqa: E402
from growsearch.train import evaluate, scale_steps, set_seed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARMS: dict[str, tuple[bool, bool]] = {  # name: (the recipe's warm-up, the per-entry step scale)
    "both": (True, True),
    "warmup only": (True, False),
    "scale_steps only": (False, True),
    "neither": (False, False),
}
REFERENCE = "scratch"
FIELDS = [
    "run", "dataset", "experiment", "arm", "seed", "steps", "lr", "warmup_steps", "step_scaled",
    "new_entry_lr_factor", "teacher_val_acc", "teacher_test_acc", "val_acc_step0",
    "val_acc_quarter", "val_acc_best", "val_acc", "test_acc", "target_val_acc",
    "steps_to_target", "fraction_to_target", "seconds", "foreign_cores", "command",
]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke mode: mnist1d, 1 seed, few steps")
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    p.add_argument("--steps", type=int, default=2400, help="student steps (default 2400)")
    p.add_argument("--eval-every", type=int, default=50, help="evaluate val every N steps")
    p.add_argument(
        "--teacher-steps", type=int, default=None, help="teacher steps (default per dataset)"
    )
    p.add_argument(
        "--datasets",
        nargs="+",
        default=["mnist1d", "digits"],
        choices=["mnist1d", "digits"],
        help="replication settings (default: mnist1d digits)",
    )
    p.add_argument(
        "--arms",
        nargs="+",
        default=[*ARMS, REFERENCE],
        choices=[*ARMS, REFERENCE],
        help="arms (default all; scratch is the reference of fraction_to_target)",
    )
    p.add_argument("--workers", type=int, default=2, help="processes (one thread each; default 2)")
    add_output_args(p)
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds = ["mnist1d"], 1
        args.steps, args.eval_every = min(args.steps, 200), 25
        args.teacher_steps = args.teacher_steps or 300
    if args.run is None:
        args.run = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ("-quick" if args.quick else "")
    return args


def fit_child(
    name: str,
    arm: str,
    seed: int,
    teacher_state: dict[str, torch.Tensor],
    steps: int,
    eval_every: int,
) -> dict[str, Any]:
    """Grow the replication's wider student of ``name``'s teacher (or build it from scratch) and
    train it ``steps`` steps with a user-style loop; returns its val curve and accuracies."""
    setting = C.SETTINGS[name]
    data = C.dataset(setting.dataset)
    spec = setting.teacher_spec(data)
    teacher = build(spec)
    teacher.load_state_dict(teacher_state)
    teacher.eval()
    recipe = WarmStartRecipe()
    if arm == REFERENCE:
        recipe = dataclasses.replace(recipe, init="scratch")
    child = grow_child(
        teacher, spec, C.student_ops(spec, "wider"), recipe,
        calibration=data.train.x[: setting.calibration_size], seed=seed, total_steps=steps,
        probe=data.val.head(C.PROBE_SIZE)[0],
    )  # fmt: skip
    use_warmup, use_scale = ARMS.get(arm, (True, True))  # scratch: nothing to warm or scale
    over = child.train_overrides(setting.lr)
    model = child.model
    start = time.perf_counter()
    curve = _user_loop(
        model, data, lr=over["lr"], warmup_steps=int(over["warmup_steps"]) if use_warmup else 0,
        step_scale=child.step_scale if use_scale else None, steps=steps,
        batch_size=setting.batch_size, seed=seed, eval_every=eval_every,
    )  # fmt: skip
    return {
        "dataset": name,
        "experiment": "wider",
        "arm": arm,
        "seed": seed,
        "steps": steps,
        "lr": over["lr"],
        "warmup_steps": int(over["warmup_steps"]) if use_warmup else 0,
        "step_scaled": bool(use_scale and child.step_scale),
        "new_entry_lr_factor": child.recipe.new_entry_lr_factor,
        "curve": curve,
        "test_acc": evaluate(model, data.test)[1],
        "seconds": time.perf_counter() - start,
    }


def _user_loop(
    model: torch.nn.Module,
    data: Any,
    *,
    lr: float,
    warmup_steps: int,
    step_scale: dict[str, torch.Tensor] | None,
    steps: int,
    batch_size: int,
    seed: int,
    eval_every: int,
) -> dict[int, float]:
    """The loop a user writes in ``fit``: Adam at a constant ``lr``, the warm-up as
    ``ctx.warmup`` builds it (a no-op LambdaLR when ``warmup_steps`` is 0), the step scale as
    ``ctx.scale_steps`` attaches it. Returns step → validation accuracy."""
    set_seed(seed)  # in-model randomness; the batches come from their own generator
    x, y = data.train.x, data.train.y
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    n_warm = max(0, warmup_steps)
    warmup = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 1.0 if n_warm == 0 else min(1.0, (step + 1) / n_warm)
    )
    generator = torch.Generator().manual_seed(seed)
    curve = {0: evaluate(model, data.val)[1]}
    step = 0
    with scale_steps(optimizer, model, step_scale):
        while step < steps:
            model.train()
            order = torch.randperm(len(x), generator=generator)
            for i in range(0, len(x) - batch_size + 1, batch_size):
                idx = order[i : i + batch_size]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                warmup.step()
                step += 1
                if step % eval_every == 0 or step == steps:
                    curve[step] = evaluate(model, data.val)[1]
                if step >= steps:
                    break
    return curve


def _teacher_job(job: tuple[str, int, int | None]) -> dict[str, Any]:
    return C.train_teacher(*job)


def _arm_job(job: tuple) -> dict[str, Any]:
    return fit_child(*job)


def summarise(results: list[dict[str, Any]], teachers: dict, run: str, command: str) -> list[dict]:
    """One CSV row per result: the curve reduced to its numbers, the target from the same
    seed's scratch student (its final validation accuracy)."""
    target = {
        (r["dataset"], r["seed"]): r["curve"][r["steps"]] for r in results if r["arm"] == REFERENCE
    }
    rows = []
    for r in results:
        curve, steps = r["curve"], r["steps"]
        t = target.get((r["dataset"], r["seed"]), math.nan)
        reach = next((s for s, v in sorted(curve.items()) if v >= t - 1e-9), None)
        teacher = teachers[(r["dataset"], r["seed"])]
        quarter = max(s for s in curve if s <= steps // 4)
        rows.append(
            {
                "run": run,
                **{k: r[k] for k in ("dataset", "experiment", "arm", "seed", "steps", "lr")},
                "warmup_steps": r["warmup_steps"],
                "step_scaled": r["step_scaled"],
                "new_entry_lr_factor": r["new_entry_lr_factor"],
                "teacher_val_acc": teacher["val_acc"],
                "teacher_test_acc": teacher["test_acc"],
                "val_acc_step0": curve[0],
                "val_acc_quarter": curve[quarter],
                "val_acc_best": max(curve.values()),
                "val_acc": curve[steps],
                "test_acc": r["test_acc"],
                "target_val_acc": t,
                "steps_to_target": math.nan if reach is None else reach,
                "fraction_to_target": math.nan if reach is None else reach / steps,
                "seconds": r["seconds"],
                "foreign_cores": math.nan,
                "command": command,
            }
        )
    return rows


def table(rows: list[dict[str, Any]], datasets: list[str], arms: list[str]) -> str:
    """Medians over seeds per dataset × arm (fraction: median of the seeds that reach the
    target, with how many did)."""
    lines = [
        "| dataset | arm | seeds | lr | warm-up steps | val acc. at 0 | val acc. at 1/4 | "
        "final val acc. | final test acc. | fraction of steps to scratch's final val (reached) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for d in datasets:
        for a in arms:
            g = [r for r in rows if r["dataset"] == d and r["arm"] == a]
            if not g:
                continue

            def med(key: str, g: list[dict[str, Any]] = g) -> float:
                return statistics.median(float(r[key]) for r in g)

            reached = [
                r["fraction_to_target"] for r in g if not math.isnan(r["fraction_to_target"])
            ]
            frac = f"{statistics.median(reached):.3f}" if reached else "never"
            lines.append(
                f"| {d} | {a} | {len(g)} | {med('lr'):.4g} | {med('warmup_steps'):.0f} | "
                f"{med('val_acc_step0'):.3f} | {med('val_acc_quarter'):.3f} | {med('val_acc'):.3f} "
                f"| {med('test_acc'):.3f} | {frac} ({len(reached)}/{len(g)}) |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    C.env_threads()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    command = command_line(__file__, argv)
    if not (args.quick or args.no_wait):
        wait_idle("user_loop")
    monitor = ForeignCPU()
    start = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=C.init_worker) as pool:
        teacher_jobs = [(d, s, args.teacher_steps) for d in args.datasets for s in seeds]
        teachers = {(t["dataset"], t["seed"]): t for t in pool.map(_teacher_job, teacher_jobs)}
        for (d, s), t in sorted(teachers.items()):
            print(f"teacher {d} seed {s}: val {t['val_acc']:.3f}, test {t['test_acc']:.3f} "
                  f"({t['seconds']:.0f}s)", flush=True)  # fmt: skip
        jobs = [
            (d, a, s, teachers[(d, s)]["state"], args.steps, args.eval_every)
            for d in args.datasets
            for s in seeds
            for a in args.arms
        ]
        results = list(pool.map(_arm_job, jobs))
    foreign = monitor.stop()
    rows = summarise(results, teachers, args.run, command)
    for r in rows:
        r["foreign_cores"] = foreign["foreign_cores"]
    path = args.out / "user_loop.csv"
    append_csv(rows, path, FIELDS, ".5f")
    print(table(rows, args.datasets, args.arms))
    print(f"appended {len(rows)} rows (run {args.run!r}) to {path} in "
          f"{time.perf_counter() - start:.0f}s; other processes used "
          f"{foreign['foreign_cores']:.2f} cores ({foreign['foreign_top'] or 'nothing notable'})")  # fmt: skip
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
