"""A per-entry learning rate for what the morph added (issue 14's "per-layer learning rates").

On ``mnist1d-nobn`` (``benchmarks/_common.py``) the default recipe's children keep their
teacher's accuracy at step 0 but do not reach the scratch student's final accuracy in 1/4 of
the steps. One explanation: the child's new units (fresh incoming weights, zero outgoing ones)
and inserted layers learn at the same rate as the inherited weights, which sit near a minimum.
This gives the morph's new entries a learning rate K times the rest's and measures it against
K = 1 (the default recipe) and scratch, on the same teachers, batches and steps, on any of the
replication's settings (``--settings``, default ``mnist1d-nobn``).

The new entries come from the morph itself (:func:`growsearch.grow.new_entries`: the same ops
with the same seed, applied to a copy of the teacher whose parameters all hold one marker
value, keep it where they copied the teacher). After every optimizer step ``p = p_old + m * (p_new - p_old)``
with ``m = K`` on new entries and 1 elsewhere (the recipe's ``new_entry_lr_factor``, applied
through ``step_scale`` of :func:`growsearch.train.train`): under Adam a gradient scaled per
entry would be normalised away, this scales the step itself.

    python benchmarks/new_entry_lr.py --seeds 0,1,2 --k 1,3 --out results/new_entry_lr
    python benchmarks/new_entry_lr.py --settings mnist1d,mnist1d-custom --k 1,3 --out <folder>

Writes ``<out>.csv`` (one row per evaluation: setting (``dataset``), experiment, variant, seed,
step, accuracies) and ``<out>.md`` (per setting, experiment and variant: accuracy at step 0, steps to scratch's final, final
mean ± sd). Two worker processes, one thread each.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import multiprocessing as mp
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import _common as C  # noqa: E402

from growsearch.grow import WarmStartRecipe  # noqa: E402

STEPS, EVAL_EVERY = 2400, 100  # as net2net_replication.py; --quick: 100, 50 (teachers 200)


def student(job: tuple[str, str, int, float, dict, int, int]) -> list[dict[str, Any]]:
    """The default recipe's child, its new entries' steps × K (K = 0: scratch)."""
    name, experiment, seed, k, teacher_state, steps, eval_every = job
    recipe = WarmStartRecipe()
    if k == 0:
        return C.run_student(
            name, experiment, "scratch", seed, teacher_state, recipe, steps, eval_every,
            variant="scratch",
        )  # fmt: skip
    return C.run_student(
        name, experiment, "zero", seed, teacher_state,
        dataclasses.replace(recipe, new_entry_lr_factor=k), steps, eval_every,
        variant=f"new entries lr x {k:g}",
    )  # fmt: skip


def table(
    rows: list[dict[str, Any]],
    names: list[str],
    experiments: list[str],
    ks: list[float],
    steps: int,
) -> str:
    lines = [
        "| setting | experiment | variant | step 0 | steps to scratch's final | final test acc |",
        "|---|---|---|---|---|---|",
    ]
    for d, e in [(d, e) for d in names for e in experiments]:
        here = [r for r in rows if r["dataset"] == d and r["experiment"] == e]
        target, _ = C.final_stats([r for r in here if r["variant"] == "scratch"])
        for v in ["scratch"] + [f"new entries lr x {k:g}" for k in ks]:
            rr = [r for r in here if r["variant"] == v]
            curve = C.mean_curve(rr)
            mean, sd = C.final_stats(rr)
            reach = C.steps_to_reach(curve, target)
            at = "never" if reach is None else f"{reach} ({reach / steps:.2f})"
            lines.append(f"| {d} | {e} | {v} | {curve[0]:.3f} | {at} | {mean:.4f} ± {sd:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--k", default="1,3", help="factors for the new entries' steps")
    p.add_argument("--experiments", default="wider,deeper")
    p.add_argument("--settings", default="mnist1d-nobn", help="of benchmarks/_common.py")
    p.add_argument("--quick", action="store_true", help="smoke: 100 steps, 1 seed")
    p.add_argument("--out", type=Path, required=True, help="output stem (.csv and .md added)")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    ks = [float(k) for k in args.k.split(",")]
    experiments = args.experiments.split(",")
    names = args.settings.split(",")
    steps, eval_every, teacher_steps = (100, 50, 200) if args.quick else (STEPS, EVAL_EVERY, None)
    seeds = seeds[:1] if args.quick else seeds
    with mp.get_context("spawn").Pool(2, initializer=C.init_worker) as pool:
        teachers = pool.starmap(
            C.train_teacher, [(d, s, teacher_steps) for d in names for s in seeds]
        )
        jobs = [(t["dataset"], e, t["seed"], k, t["state"], steps, eval_every)
                for t in teachers for e in experiments for k in [0.0, *ks]]  # fmt: skip
        rows = [r for rs in pool.map(student, jobs) for r in rs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    keys = [
        "dataset",
        "experiment",
        "variant",
        "seed",
        "step",
        "val_acc",
        "test_acc",
        "teacher_test_acc",
    ]
    with open(args.out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    command = "python benchmarks/new_entry_lr.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    text = (
        f"# New entries' learning rate ({len(seeds)} seeds, {steps} steps)\n\n"
        f"`{command}`\n\n" + table(rows, names, experiments, ks, steps) + "\n"
    )
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
