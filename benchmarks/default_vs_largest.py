"""The default search beside the largest model at equal wall-clock (issue 14, part 3).

Arms, one after the other on the same machine (each waits for a quiet machine first):

- ``search``: ``make run``'s search, ``search_spaces/mnist1d_cnn.yaml`` as shipped (aging
  evolution, objectives ``[val_acc, params]``), through ``growsearch.run``. Its wall-clock W
  (space loaded to last trial recorded, Ray's start included) is the budget of the others.
- ``search, val_acc only`` (``--accuracy-only``): the same search with ``objectives:
  [val_acc]``, the default before the size objective.
- ``largest``: the largest uniform architecture the space allows (one depth for every stage,
  one width for every layer that every stage can reach by the widen factors; the most
  parameters within ``max_params``), trained from scratch with ``growsearch.train`` and the space's
  training settings for W: its epoch count is W over the time of one epoch (timed on a
  throwaway copy first), with ``cpus_per_trial × concurrency`` torch threads, the search's
  cores.

    .venv/bin/python benchmarks/default_vs_largest.py --out results --runs-dir /tmp/dvl-runs

Writes ``default_vs_largest.csv`` (one row per trained model: ``arm, seed, trial_id, arch,
params, flops, val_acc, test_acc, epochs, pareto, arm_wall_s, foreign_cores``: the CPU
other processes used during the arm, in cores) and
``default_vs_largest.md`` (the largest model against the search's Pareto front).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "mnist1d_cnn.yaml"
sys.path.insert(0, str(ROOT))

from benchmarks._machine import ForeignCPU, wait_idle  # noqa: E402

FIELDS = [
    "arm", "seed", "trial_id", "arch", "params", "flops", "val_acc", "test_acc", "epochs",
    "pareto", "arm_wall_s", "foreign_cores",
]  # fmt: skip


def largest_uniform(space: Any) -> Any:
    """The uniform architecture (one depth for every stage, one width for every layer, the
    width reachable from every stage's seed width by the widen factors) with the most
    parameters within ``max_params``."""
    from growsearch.arch import ArchSpec

    mut, seed = space.mutations, space.seed_arch
    widths = set.intersection(
        *(set(mut.width_choices(stage.layers[0].width)) for stage in seed.stages)
    )
    best, best_params = None, -1
    for depth in range(1, mut.deepen.max_layers_per_stage + 1):
        for w in sorted(widths):
            spec = ArchSpec.create(
                seed.family, seed.input_shape, seed.num_classes, [[w] * depth] * len(seed.stages),
                kernel_size=seed.kernel_size, batch_norm=seed.batch_norm,
            )  # fmt: skip
            n = mut.params(spec)
            if (mut.max_params is None or n <= mut.max_params) and n > best_params:
                best, best_params = spec, n
    if best is None:
        raise SystemExit("no uniform architecture fits max_params")
    return best


def run_search(
    seed: int, overrides: dict[str, Any], work: Path, arm: str
) -> tuple[list[dict], float]:
    import growsearch
    from growsearch.results import pareto_front

    space = growsearch.load_space(SPACE, {"seed": seed, **overrides})
    t0 = time.perf_counter()
    run = growsearch.run(space, name=f"{arm.replace(' ', '_').replace(',', '')}-s{seed}",
                         results_dir=work, progress=False)  # fmt: skip
    wall = time.perf_counter() - t0
    df = run.trials
    front = pareto_front(df, "params")
    rows = []
    for i, r in df.iterrows():
        if r["status"] == "failed":
            continue
        rows.append({
            "arm": arm, "seed": seed, "trial_id": r["trial_id"], "arch": r["arch_summary"],
            "params": int(r["params"]), "flops": int(r["flops"]), "val_acc": float(r["val_acc"]),
            "test_acc": float(r["test_acc"]), "epochs": int(r["epochs"]),
            "pareto": bool(front[i]), "arm_wall_s": round(wall, 1),
        })  # fmt: skip
    return rows, wall


def run_largest(seed: int, wall: float) -> dict:
    import copy

    import torch

    import growsearch
    from growsearch.arch import build, count_flops
    from growsearch.data import load_dataset
    from growsearch.train import evaluate, train

    space = growsearch.load_space(SPACE, {"seed": seed})
    threads = space.resources.cpus_per_trial * space.resources.concurrency
    torch.set_num_threads(int(max(1, threads)))
    spec = largest_uniform(space)
    data = load_dataset(space.dataset.name)
    tr = space.training
    model = build(spec, seed=seed)
    t0 = time.perf_counter()  # one epoch on a throwaway copy: the epoch's time
    train(copy.deepcopy(model), data, tr.train_config(epochs=1, device="cpu", seed=seed))
    per_epoch = time.perf_counter() - t0
    epochs = max(1, math.floor(wall / per_epoch))
    t0 = time.perf_counter()
    hist = train(model, data, tr.train_config(epochs=epochs, device="cpu", seed=seed))
    took = time.perf_counter() - t0
    return {
        "arm": "largest", "seed": seed, "trial_id": "-", "arch": spec.summary(),
        "params": space.mutations.params(spec), "flops": count_flops(spec),
        "val_acc": hist[-1].val_acc, "test_acc": evaluate(model, data.test)[1], "epochs": epochs,
        "pareto": "", "arm_wall_s": round(took + per_epoch, 1),
    }  # fmt: skip


def md(arch: str) -> str:
    """An architecture summary inside a Markdown table cell (its stage separator escaped)."""
    return arch.replace("|", "\\|")


def table(rows: list[dict]) -> str:
    """Per seed: the largest model, then every search's Pareto front, smallest first."""
    out = []
    for seed in sorted({r["seed"] for r in rows}):
        big = next(r for r in rows if r["seed"] == seed and r["arm"] == "largest")
        out += [
            f"### Seed {seed}\n",
            "| arm | model | params | × largest's params | val acc | test acc | Δ test vs largest (pts) | wall (min) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| largest | `{md(big['arch'])}` | {big['params']:,} | 1 | {big['val_acc']:.3f} | "
            f"{big['test_acc']:.3f} | 0 | {big['arm_wall_s'] / 60:.1f} |",
        ]
        for arm in dict.fromkeys(r["arm"] for r in rows if r["arm"] != "largest"):
            mine = [r for r in rows if r["seed"] == seed and r["arm"] == arm]
            best = max(mine, key=lambda r: (r["val_acc"], -r["params"]))
            front = sorted((r for r in mine if r["pareto"]), key=lambda r: r["params"])
            for r in front:
                tag = " (best val)" if r is best else ""
                out.append(
                    f"| {arm}: front{tag} | `{md(r['arch'])}` | {r['params']:,} | "
                    f"{r['params'] / big['params']:.2f} | {r['val_acc']:.3f} | {r['test_acc']:.3f} | "
                    f"{100 * (r['test_acc'] - big['test_acc']):+.1f} | {r['arm_wall_s'] / 60:.1f} |"
                )
            if best not in front:
                out.append(
                    f"| {arm}: best val | `{md(best['arch'])}` | {best['params']:,} | "
                    f"{best['params'] / big['params']:.2f} | {best['val_acc']:.3f} | "
                    f"{best['test_acc']:.3f} | {100 * (best['test_acc'] - big['test_acc']):+.1f} | "
                    f"{best['arm_wall_s'] / 60:.1f} |"
                )
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=1, help="search seeds (default 1: make run's)")
    p.add_argument("--accuracy-only", action="store_true", help="add the val_acc-only search")
    p.add_argument("--trials", type=int, default=None, help="override budget.trials (smoke)")
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument(
        "--runs-dir", type=Path, default=None,
        help="keep the searches' run folders here (default: a temporary folder)",
    )  # fmt: skip
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    args.out.mkdir(parents=True, exist_ok=True)
    extra = {"budget.trials": args.trials} if args.trials else {}
    arms = [("search", {})]
    if args.accuracy_only:
        arms.append(("search, val_acc only", {"objectives": ["val_acc"]}))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="default-vs-largest-") as tmp:
        runs = args.runs_dir or Path(tmp)
        for seed in range(args.seeds):
            walls = []
            for arm, overrides in arms:
                wait_idle("default-vs-largest")
                foreign = ForeignCPU()
                got, wall = run_search(seed, {**overrides, **extra}, runs, arm)
                load = round(foreign.stop()["foreign_cores"], 2)
                for r in got:
                    r["foreign_cores"] = load
                rows += got
                walls.append(wall)
                print(f"[default-vs-largest] {arm} seed {seed}: {len(got)} trials, {wall:.0f}s")
            wait_idle("default-vs-largest")
            foreign = ForeignCPU()
            big = run_largest(seed, walls[0])
            big["foreign_cores"] = round(foreign.stop()["foreign_cores"], 2)
            rows.append(big)
    with (args.out / "default_vs_largest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.5g}" if isinstance(v, float) else v) for k, v in r.items()})
    cmd = "python benchmarks/default_vs_largest.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    text = (
        f"<!-- {cmd} -->\n# The default search beside the largest model, at equal wall-clock\n\n"
        + table(rows)
    )
    (args.out / "default_vs_largest.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
