"""Search efficiency: does warm start (Net2Net children of trained parents) find good networks with
less training compute than the same search from scratch?

Same search space, same budget of cumulative training epochs (``budget.epochs``), per dataset
(MNIST-1D, scikit-learn digits and MNIST 5k), for every arm and seed:

    evolution warm | evolution scratch | hillclimb warm | hillclimb scratch |
    optuna (TPE) warm | optuna (TPE) scratch | random scratch

("scratch" = ``warm_start: False``: the controller's proposals trained from fresh weights.)
Each search is a real ``growsearch.run`` (concurrency 2) on one local Ray started once for all.

Per search, trials are taken in ``trials.parquet`` order (completion order); the x axis is the
cumulative number of training epochs actually run (the ``epochs`` column); the curve is the best
test accuracy so far. Per arm: the mean over seeds of the per-seed curves (band: min–max).
Table: for each arm, the compute at which its mean curve first reaches the final best of the
``evolution scratch`` mean curve, and its best accuracy at the full budget (mean ± sd over seeds).

    .venv/bin/python benchmarks/search_efficiency.py           # full: 2 datasets x 7 arms x 3 seeds
    .venv/bin/python benchmarks/search_efficiency.py --quick   # smoke: digits, 3 arms, 1 seed
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import ForeignCPU, wait_idle  # benchmarks/_machine.py (run as a script)

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "benchmarks" / "search_spaces"
ARMS = {  # name: (controller, warm_start)
    "evolution warm": ("evolution", True),
    "evolution scratch": ("evolution", False),
    "hillclimb warm": ("hillclimb", True),
    "hillclimb scratch": ("hillclimb", False),
    "optuna warm": ("optuna", True),
    "optuna scratch": ("optuna", False),
    "random scratch": ("random", False),
}
# Diagnostic arms (not in the default set): the warm search with other warm-start recipes. Each
# pins every recipe field that differed from the default when its rows in results/ were made, so
# they stay reproducible: "shrink all" is net2net init + the whole-network shrink (the default
# of the time; the name dates from runs made while the scale-invariant shrink + logit
# temperature was the default), "zero init" alone is zero init + that scale-invariant shrink.
# Every arm measured before the default shrink became "auto" (0.6 for children of up to 135
# steps, 0.3 from 270: see growsearch.grow.auto_shrink) pins the 0.3 it had then.
SHRINK_03 = {"training.shrink": 0.3}
SHRINK_ALL = {"training.shrink_scope": "all", "training.logit_scale": 1.0, **SHRINK_03}
SCALE_INVARIANT = {
    "training.shrink_scope": "scale-invariant", "training.logit_scale": 0.09, **SHRINK_03
}  # fmt: skip
NET2NET_SHRINK_ALL = {"training.init": "net2net", **SHRINK_ALL}
ZERO_SHRINK_ALL = {"training.init": "zero", **SHRINK_ALL}
# Evolution and hillclimb arms measured before their first proposals were spread over the space
# (controller option ``initial``, default 4) pin ``initial: 0``: their children of the seed are
# 1-2-op mutations, as when their rows were made.
CREEP = {"controller.initial": 0}
SPREAD = {"controller.initial": 4}
BEFORE_DEFAULTS = {
    "training.shrink_scope": "all",
    "training.warmup_fraction": 0.0,
    "training.cycle_fraction": 0.0,
    "training.new_entry_lr_factor": 1.0,
}
WARMUP_01 = {"training.warmup_fraction": 0.1}
EXTRA_ARMS = {  # name: (controller, warm_start, search-space overrides)
    "evolution warm (shrink all)": ("evolution", True, {**NET2NET_SHRINK_ALL, **CREEP}),
    "optuna warm (shrink all)": ("optuna", True, NET2NET_SHRINK_ALL),
    "hillclimb warm (shrink all)": ("hillclimb", True, {**NET2NET_SHRINK_ALL, **CREEP}),
    # new units with fresh incoming / zero outgoing weights instead of net2net's copies
    "evolution warm (zero init)": (
        "evolution", True, {"training.init": "zero", **SCALE_INVARIANT, **CREEP}
    ),
    "evolution warm (zero init + shrink all)": ("evolution", True, {**ZERO_SHRINK_ALL, **CREEP}),
    "hillclimb warm (zero init + shrink all)": ("hillclimb", True, {**ZERO_SHRINK_ALL, **CREEP}),
    "optuna warm (zero init + shrink all)": ("optuna", True, ZERO_SHRINK_ALL),
    # a milder shrink: does the default's shrink 0.3 cost short (5-epoch) children too much?
    "evolution warm (shrink 0.6)": (
        "evolution", True, {**ZERO_SHRINK_ALL, "training.shrink": 0.6, **CREEP}
    ),
    "hillclimb warm (shrink 0.6)": (
        "hillclimb", True, {**ZERO_SHRINK_ALL, "training.shrink": 0.6, **CREEP}
    ),
    # the same milder shrink with the spread-out start (``initial: 4``, the default since);
    # and TPE with it
    "evolution warm (shrink 0.6 + spread)": (
        "evolution", True, {**ZERO_SHRINK_ALL, "training.shrink": 0.6, **SPREAD}
    ),
    "hillclimb warm (shrink 0.6 + spread)": (
        "hillclimb", True, {**ZERO_SHRINK_ALL, "training.shrink": 0.6, **SPREAD}
    ),
    "optuna warm (shrink 0.6)": ("optuna", True, {**ZERO_SHRINK_ALL, "training.shrink": 0.6}),
    # does the better shrink follow the child's length or the dataset? The same evolution
    # search with children of the other dataset's length (MNIST-1D 5 epochs = 135 steps, MNIST
    # 5k 10 epochs = 270 steps), with shrink 0.3 (the default) and 0.6
    "evolution warm (5-epoch children)": (
        "evolution", True, {"training.epochs": 5, **SHRINK_03, **SPREAD}
    ),
    "evolution warm (5-epoch children + shrink 0.6)": (
        "evolution", True, {"training.epochs": 5, "training.shrink": 0.6, **SPREAD}
    ),
    "evolution warm (10-epoch children)": (
        "evolution", True, {"training.epochs": 10, **SHRINK_03, **SPREAD}
    ),
    "evolution warm (10-epoch children + shrink 0.6)": (
        "evolution", True, {"training.epochs": 10, "training.shrink": 0.6, **SPREAD}
    ),
    # between the two measured lengths: 7-epoch children (189 steps), where shrink "auto"
    # interpolates (λ 0.45), against both ends
    "evolution warm (7-epoch children)": ("evolution", True, {"training.epochs": 7, **SPREAD}),
    "evolution warm (7-epoch children + shrink 0.3)": (
        "evolution", True, {"training.epochs": 7, **SHRINK_03, **SPREAD}
    ),
    "evolution warm (7-epoch children + shrink 0.6)": (
        "evolution", True, {"training.epochs": 7, "training.shrink": 0.6, **SPREAD}
    ),
    # the default warm searches as they were before shrink "auto": 0.3 for every child
    "evolution warm (shrink 0.3)": ("evolution", True, {**SHRINK_03, **SPREAD}),
    "hillclimb warm (shrink 0.3)": ("hillclimb", True, {**SHRINK_03, **SPREAD}),
    "optuna warm (shrink 0.3)": ("optuna", True, SHRINK_03),
    # the default warm searches as they were before shrink_scope "auto", the restart of the
    # child's schedule and the new entries' 3x steps: the warm-up 0.1 (the default since), the
    # whole-network shrink, one cosine cycle, the new entries at the learning rate of the rest
    "evolution warm (scope all + one cycle + entries × 1)": ("evolution", True, WARMUP_01),
    "hillclimb warm (scope all + one cycle + entries × 1)": ("hillclimb", True, WARMUP_01),
    "optuna warm (scope all + one cycle + entries × 1)": ("optuna", True, WARMUP_01),
    # the evolution search of search_efficiency_auto_scope.csv: shrink_scope "auto" with the
    # warm-up 0.1, one cosine cycle, the new entries at the learning rate of the rest
    "evolution warm (auto scope + one cycle + entries × 1)": (
        "evolution", True, {"training.shrink_scope": "auto", **WARMUP_01}
    ),
    # the default warm searches as they were before the warm-up (shrink "auto", no warm-up)
    "evolution warm (no warm-up)": ("evolution", True, {}),
    "hillclimb warm (no warm-up)": ("hillclimb", True, {}),
    "optuna warm (no warm-up)": ("optuna", True, {}),
    # the searches as they were before ``initial`` (children of the seed creep out of it)
    "evolution warm (initial 0)": ("evolution", True, {**CREEP, **SHRINK_03}),
    "evolution scratch (initial 0)": ("evolution", False, CREEP),
    "hillclimb warm (initial 0)": ("hillclimb", True, {**CREEP, **SHRINK_03}),
    "hillclimb scratch (initial 0)": ("hillclimb", False, CREEP),
}  # fmt: skip
# Every warm arm here was measured before shrink_scope "auto", the restart of the child's
# schedule and the new entries' 3x steps became the default (``shrink_scope`` "auto",
# ``cycle_fraction`` 0.2, ``new_entry_lr_factor`` 3), and every one that does not
# set its own warm-up before the children's warm-up did (``warmup_fraction`` 0.1): each
# pins what it had (the whole-network shrink unless it sets its own scope, one cycle, factor 1,
# no warm-up), so its rows stay reproducible.
EXTRA_ARMS = {
    name: (c, w, {**BEFORE_DEFAULTS, **extra} if w else extra)
    for name, (c, w, extra) in EXTRA_ARMS.items()
}
REFERENCE = "evolution scratch"
BUDGETS = {"mnist1d": 200, "digits": 200, "mnist5k": 60}  # cumulative training epochs per search
COLORS = {
    "evolution warm": "#c0392b", "evolution scratch": "#e6a19a",
    "hillclimb warm": "#1f5fa8", "hillclimb scratch": "#93b6de",
    "optuna warm": "#2e8b3e", "optuna scratch": "#9fd3a8", "random scratch": "#777777",
    "evolution warm (shrink all)": "#7d3c98", "optuna warm (shrink all)": "#b9770e",
    "evolution warm (zero init)": "#17a589", "hillclimb warm (shrink all)": "#5d6d7e",
    "evolution warm (zero init + shrink all)": "#e67e22",
    "hillclimb warm (zero init + shrink all)": "#f1c40f",
    "optuna warm (zero init + shrink all)": "#a93226",
    "evolution warm (shrink 0.6)": "#e67e22", "hillclimb warm (shrink 0.6)": "#f1c40f",
    "evolution warm (shrink 0.6 + spread)": "#e67e22", "hillclimb warm (shrink 0.6 + spread)": "#f1c40f",
    "optuna warm (shrink 0.6)": "#c71585",
    "evolution warm (shrink 0.3)": "#8e44ad", "hillclimb warm (shrink 0.3)": "#16a085",
    "optuna warm (shrink 0.3)": "#7f8c8d",
    "evolution warm (scope all + one cycle + entries × 1)": "#d35400", "hillclimb warm (scope all + one cycle + entries × 1)": "#2874a6",
    "optuna warm (scope all + one cycle + entries × 1)": "#1e8449",
    "evolution warm (no warm-up)": "#8e44ad", "hillclimb warm (no warm-up)": "#16a085",
    "optuna warm (no warm-up)": "#7f8c8d",
    "evolution warm (5-epoch children)": "#c0392b", "evolution warm (5-epoch children + shrink 0.6)": "#e67e22",
    "evolution warm (10-epoch children)": "#c0392b", "evolution warm (10-epoch children + shrink 0.6)": "#e67e22",
    "evolution warm (7-epoch children)": "#c0392b", "evolution warm (7-epoch children + shrink 0.3)": "#8e44ad",
    "evolution warm (7-epoch children + shrink 0.6)": "#e67e22",
    "evolution warm (initial 0)": "#c0392b", "evolution scratch (initial 0)": "#e6a19a",
    "hillclimb warm (initial 0)": "#1f5fa8", "hillclimb scratch (initial 0)": "#93b6de",
}  # fmt: skip


def run_one(dataset: str, arm: str, seed: int, budget: int, work: Path, attempt: int = 1):
    """One search; returns (trials DataFrame with the arm's columns, wall seconds)."""
    import growsearch

    controller, warm, extra = (*ARMS[arm], {}) if arm in ARMS else EXTRA_ARMS[arm]
    space = growsearch.load_space(
        SPACES / f"efficiency_{dataset}.yaml",
        {
            "controller.name": controller,
            "warm_start": warm,
            "seed": seed,
            "budget.epochs": budget,
            **extra,
        },
    )
    run_dir = work / f"{dataset}-{arm.replace(' ', '_')}-s{seed}-a{attempt}"
    t0 = time.perf_counter()
    df = growsearch.run(space, name=run_dir.name, results_dir=run_dir.parent, progress=False).trials
    # a controller that can no longer propose ends its search before the budget is spent
    # (e.g. hillclimb at a best that cannot grow): the searcher records it as ``converged``
    state = json.loads((run_dir / "search_state.json").read_text())
    stalled = bool(state.get("converged", False))
    if stalled:
        print(
            f"[efficiency] {run_dir.name}: the controller stopped proposing (stalled)", flush=True
        )
    wall = time.perf_counter() - t0
    df = df.reset_index(drop=True).copy()
    df["dataset"], df["arm"], df["seed"], df["order"] = dataset, arm, seed, np.arange(len(df))
    df["epochs"] = df["epochs"].fillna(0).astype(int)
    df["cum_epochs"] = df["epochs"].cumsum()
    test = df["test_acc"].astype(float).where(df["status"] != "failed")
    df["best_test_so_far"] = test.cummax()
    # the honest variant: test accuracy of the best-on-validation trial so far
    val = df["val_acc"].astype(float).where(df["status"] != "failed").fillna(-1.0)
    best_idx = [int(val[: i + 1].idxmax()) for i in range(len(val))]
    df["test_of_best_val_so_far"] = [test.iloc[i] for i in best_idx]
    # parent's val accuracy (for the diagnosis: does a child beat its parent?)
    by_id = df.set_index("trial_id")["val_acc"].astype(float).to_dict()
    df["parent_val_acc"] = df["parent_id"].map(lambda p: by_id.get(p, np.nan) if p else np.nan)
    df["search_wall_s"] = wall
    df["stalled"] = stalled
    keep = ["dataset", "arm", "seed", "order", "trial_id", "parent_id", "ops", "arch_summary",
            "params", "epochs", "cum_epochs", "val_acc", "test_acc", "best_test_so_far",
            "test_of_best_val_so_far", "parent_val_acc", "status", "warm_start", "parent_acc",
            "acc_before", "acc_start", "preserve_err", "train_seconds", "search_wall_s", "stalled"]  # fmt: skip
    return df[[c for c in keep if c in df.columns]], wall


def curve_on_grid(sub, grid: np.ndarray, col: str = "best_test_so_far") -> np.ndarray:
    """A search's step curve (value after each trial ends) on a grid of cumulative epochs;
    0 before the first trial ends, the final value beyond the last one."""
    xs, ys = sub["cum_epochs"].to_numpy(), sub[col].fillna(0.0).to_numpy()
    idx = np.searchsorted(xs, grid, side="right") - 1
    return np.where(idx >= 0, ys[np.clip(idx, 0, None)], 0.0)


def _seed_children_pairs(d) -> list[str]:
    """Markdown: warm children of the seed against their from-scratch twins (same controller
    and seed, same trial id and architecture), per warm arm of a controller (the default arm and
    any recipe variant of it in ``d``), in test accuracy."""
    out = []
    warm_arms = [
        (ctrl, arm)
        for ctrl in ("evolution", "hillclimb")
        for arm in dict.fromkeys(d["arm"])
        if arm == f"{ctrl} warm" or arm.startswith(f"{ctrl} warm (")
    ]
    for ctrl, arm in warm_arms:
        diffs = []
        for seed in sorted(set(d["seed"])):
            w = d[(d.arm == arm) & (d.seed == seed)]
            sc = d[(d.arm == f"{ctrl} scratch") & (d.seed == seed)].set_index("trial_id")
            if w.empty or sc.empty:
                continue
            root = w.loc[w["parent_id"].isna(), "trial_id"].iloc[0]
            for _, r in w[w["parent_id"] == root].iterrows():
                if r.trial_id in sc.index and sc.loc[r.trial_id, "arch_summary"] == r.arch_summary:
                    diffs.append(float(r.test_acc) - float(sc.loc[r.trial_id, "test_acc"]))
        if diffs:
            out.append(
                f"- {arm}: its children of the seed vs the same architectures from scratch: "
                f"{100 * np.mean(diffs):+.2f} points on average, warm higher in "
                f"{sum(x > 0 for x in diffs)} of {len(diffs)} pairs."
            )
    return [*out, ""] if out else []


def _generations(sub, children) -> dict:
    """Children of the seed vs later children (of children) of one arm: count per search, mean
    validation gain over the parent, mean test accuracy."""
    seeds = set(sub.loc[sub["parent_id"].isna(), "trial_id"])
    of_seed = children[children["parent_id"].isin(seeds)]
    later = children[~children["parent_id"].isin(seeds)]
    searches = max(1, sub["seed"].nunique())
    out = {}
    for name, g in (("seed_children", of_seed), ("later_children", later)):
        gain = g["val_acc"].astype(float) - g["parent_val_acc"]
        out[f"{name}_n"] = len(g) / searches
        out[f"{name}_gain"] = float(gain.mean()) if len(g) else float("nan")
        out[f"{name}_test"] = float(g["test_acc"].astype(float).mean()) if len(g) else float("nan")
    return out


def summarise(
    df,
    budgets: dict,
    arms: list[str],
    command: str,
    out: Path,
    wall: float,
    waited: float,
    seeds: list[int],
) -> None:  # noqa: E501
    import pandas as pd

    rows, curves = [], {}
    for dataset in [d for d in budgets if d in set(df["dataset"])]:
        d = df[df.dataset == dataset]
        budget = budgets[dataset]
        top = int(d["cum_epochs"].max())
        grid = np.arange(0, top + 1)
        for arm in arms:
            per_seed = [curve_on_grid(d[(d.arm == arm) & (d.seed == s)], grid) for s in seeds
                        if ((d.arm == arm) & (d.seed == s)).any()]  # fmt: skip
            if per_seed:
                curves[(dataset, arm)] = (grid, np.array(per_seed))
        if (dataset, REFERENCE) not in curves:
            continue
        ref_grid, ref = curves[(dataset, REFERENCE)]
        target = float(ref.mean(0)[-1])  # final best of the scratch evolution search (seed mean)
        # when the reference itself first reaches it (its own compute)
        ref_reach = int(ref_grid[np.argmax(ref.mean(0) >= target - 1e-12)])
        for arm in arms:
            if (dataset, arm) not in curves:
                continue
            g, c = curves[(dataset, arm)]
            mean = c.mean(0)
            reached = np.nonzero(mean >= target - 1e-12)[0]
            x = int(g[reached[0]]) if len(reached) else None
            finals = c[:, -1]
            sub = d[d.arm == arm]
            val_finals = [
                float(sub[sub.seed == s]["test_of_best_val_so_far"].iloc[-1])
                for s in sorted(set(sub.seed))
            ]
            children = sub[sub["parent_id"].notna() & (sub["status"] != "failed")]
            third = int(np.searchsorted(g, budget / 3, side="right")) - 1  # last point <= 1/3
            rows.append({
                "dataset": dataset, "arm": arm, "budget_epochs": budget,
                "seeds": len(finals), "target_acc": target,
                "epochs_to_target": x, "fraction_of_budget": None if x is None else x / budget,
                "reference_epochs_to_target": ref_reach,
                "final_best_test_mean": float(finals.mean()), "final_best_test_sd": float(finals.std(ddof=1)) if len(finals) > 1 else float("nan"),
                "final_best_test_min": float(finals.min()), "final_best_test_max": float(finals.max()),
                "final_test_of_best_val_mean": float(np.mean(val_finals)),
                "final_test_of_best_val_sd": float(np.std(val_finals, ddof=1)) if len(val_finals) > 1 else float("nan"),
                "trials_mean": float(sub.groupby("seed").size().mean()),
                "epochs_run_mean": float(sub.groupby("seed")["epochs"].sum().mean()),
                "failed": int((sub["status"] == "failed").sum()),
                "child_minus_parent_val_mean": float((children["val_acc"].astype(float) - children["parent_val_acc"]).mean()),
                "child_beats_parent_frac": float((children["val_acc"].astype(float) > children["parent_val_acc"]).mean()),
                **_generations(sub, children),
                "params_mean": float(sub["params"].mean()),
                "acc_start_mean": float(children["acc_start"].astype(float).mean()) if "acc_start" in children else float("nan"),
                "acc_before_mean": float(children["acc_before"].astype(float).mean()),
                "best_at_third_mean": float(mean[third]),
                "best_at_third_per_seed": " ".join(f"{100 * v:.1f}" for v in c[:, third]),
                # trials that repeat an architecture already trained in the same search
                "repeats_mean": float(sub.groupby("seed")["arch_summary"].agg(lambda a: len(a) - a.nunique()).mean()),
                "search_wall_s_mean": float(sub.groupby("seed")["search_wall_s"].first().mean()),
                # trial training time, summed per search (1 thread per trial: ~CPU-seconds)
                "train_seconds_mean": float(sub.groupby("seed")["train_seconds"].sum().mean()),
                "stalled_searches": int(
                    sub.groupby("seed")["stalled"].first().fillna(False).astype(bool).sum()
                )
                if "stalled" in sub
                else 0,
            })  # fmt: skip
    summary = pd.DataFrame(rows)
    summary.to_csv(out.with_name(out.name + "_summary.csv"), index=False)

    md = [
        "# Search efficiency: warm-started vs from-scratch search at equal training compute",
        "",
        f"Command: `{command}`",
        "",
        "Spaces: `benchmarks/search_spaces/efficiency_{"
        + ",".join(budgets)
        + "}.yaml`; budgets "
        + ", ".join(f"{k}: {v} cumulative training epochs" for k, v in budgets.items())
        + f"; seeds {seeds}; concurrency 2 on a {os.cpu_count()}-core machine; total wall "
        f"{wall / 60:.1f} min (waited {waited:.0f} s for other benchmarks first). Warm-start recipe: "
        "the package defaults at the time of the run (`WarmStartRecipe`).",
        "",
        "Curves: best-so-far **test** accuracy after each trial ends (trials in `trials.parquet` "
        "order), against the cumulative epochs actually trained; mean over seeds. *Epochs to "
        f"target*: first point where the arm's mean curve reaches the final value of the "
        f"`{REFERENCE}` mean curve (the target). *Final*: best test accuracy over the whole "
        "search (mean ± sd over seeds; the last trial can overshoot the budget by one trial's "
        "epochs, see `epochs run`). *Test of best-val*: test accuracy of the trial chosen on "
        "validation (the number one would report). *Training min*: the trials' training time "
        "summed per search (one thread each, so about CPU-minutes; mean over seeds): an epoch "
        "of a larger network costs more, which the epoch budget does not show. *Best at 1/3*: the "
        "mean curve (and each seed's) at 1/3 of the budget. *Repeats*: trials per search whose "
        "architecture an earlier trial of the same search already had (mean over seeds).",
        "",
    ]
    for dataset in [d for d in budgets if d in set(summary.get("dataset", []))]:
        s = summary[summary.dataset == dataset]
        t = float(s["target_acc"].iloc[0])
        ref_x = int(s["reference_epochs_to_target"].iloc[0])
        md += [
            f"## {dataset} (budget {budgets[dataset]} epochs; target = {REFERENCE} final mean best = "
            f"{100 * t:.2f}%, which {REFERENCE} itself first reaches at {ref_x} epochs)",
            "",
            "| arm | epochs to target | fraction of budget | best at 1/3 % (per seed) | final best test % (mean ± sd) | min–max | test of best-val % | trials | repeats | epochs run | training min | stalled | child − parent val (pp) | child > parent |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for _, r in s.iterrows():
            x = "not reached" if pd.isna(r["epochs_to_target"]) else f"{int(r['epochs_to_target'])}"
            f = "—" if pd.isna(r["fraction_of_budget"]) else f"{r['fraction_of_budget']:.2f}"
            md.append(
                f"| {r['arm']} | {x} | {f} | {100 * r['best_at_third_mean']:.2f} ({r['best_at_third_per_seed']}) "
                f"| {100 * r['final_best_test_mean']:.2f} ± {100 * r['final_best_test_sd']:.2f} "
                f"| {100 * r['final_best_test_min']:.1f}–{100 * r['final_best_test_max']:.1f} "
                f"| {100 * r['final_test_of_best_val_mean']:.2f} ± {100 * r['final_test_of_best_val_sd']:.2f} "
                f"| {r['trials_mean']:.1f} | {r['repeats_mean']:.1f} | {r['epochs_run_mean']:.0f} | {r['train_seconds_mean'] / 60:.1f} | {r['stalled_searches']} "
                f"| {100 * r['child_minus_parent_val_mean']:+.2f} | {r['child_beats_parent_frac']:.2f} |"
            )  # fmt: skip
        md += [
            "",
            "Children of the seed and later children (children of children), per arm: how many "
            "(per search), their validation accuracy minus their parent's (pp), and their mean "
            "test accuracy (%).",
            "",
            "| arm | seed's children | gain over parent | test | later children | gain over parent | test |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for _, r in s.iterrows():
            md.append(
                f"| {r['arm']} | {r['seed_children_n']:.1f} | {100 * r['seed_children_gain']:+.2f} "
                f"| {100 * r['seed_children_test']:.2f} | {r['later_children_n']:.1f} "
                f"| {100 * r['later_children_gain']:+.2f} | {100 * r['later_children_test']:.2f} |"
            )
        md.append("")
        verdicts = []
        for ctrl in ("evolution", "hillclimb", "optuna"):
            w, sc = s[s.arm == f"{ctrl} warm"], s[s.arm == f"{ctrl} scratch"]
            if w.empty or sc.empty:
                continue
            w, sc = w.iloc[0], sc.iloc[0]
            third = not pd.isna(w["fraction_of_budget"]) and w["fraction_of_budget"] <= 1 / 3
            better = w["final_best_test_mean"] > sc["final_best_test_mean"]
            verdicts.append(
                f"- **{ctrl}**: warm reaches the target with "
                + ("— (never)" if pd.isna(w["epochs_to_target"]) else f"{w['fraction_of_budget']:.2f} of the budget")
                + f" (≤ 1/3: {'yes' if third else 'no'}); final {100 * w['final_best_test_mean']:.2f}% vs "
                f"scratch {100 * sc['final_best_test_mean']:.2f}% (strictly better: {'yes' if better else 'no'})."
            )  # fmt: skip
        md += [
            "Targets (warm reaches the scratch-evolution final with ≤ 1/3 of the compute; ends strictly better):",
            "",
            *verdicts,
            "",
            *_seed_children_pairs(df[df.dataset == dataset]),
        ]
    md += [f"Per-trial rows: `{os.path.relpath(out.with_suffix('.csv'), ROOT)}`; table: "
           f"`{os.path.relpath(out.with_name(out.name + '_summary.csv'), ROOT)}`.", ""]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in budgets if any(k[0] == d for k in curves)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        lo_all, hi_all = [], []
        for arm in arms:
            if (dataset, arm) not in curves:
                continue
            g, c = curves[(dataset, arm)]
            ok = c.min(0) > 0  # every seed has a finished trial
            mean = np.where(ok, c.mean(0), np.nan)
            ls = "-" if "warm" in arm else "--"
            ax.plot(g, 100 * mean, ls, color=COLORS[arm], label=arm, lw=1.6, drawstyle="steps-post")
            ax.fill_between(
                g, 100 * c.min(0), 100 * c.max(0), where=ok, color=COLORS[arm], alpha=0.12, lw=0
            )
            lo_all.append(np.nanmin(mean))
            hi_all.append(c.max())
        if (dataset, REFERENCE) in curves:
            target = curves[(dataset, REFERENCE)][1].mean(0)[-1]
            ax.axhline(100 * target, color="k", lw=0.8, ls=":", label=f"target ({REFERENCE} final)")
        ax.axvline(budgets[dataset], color="k", lw=0.6, alpha=0.5)
        ax.axvline(budgets[dataset] / 3, color="k", lw=0.6, alpha=0.3, ls="-.")
        if lo_all:
            ax.set_ylim(100 * max(0.0, min(lo_all) - 0.01), min(100.0, 100 * max(hi_all) + 0.5))
        ax.set_xlabel("cumulative training epochs (trials in completion order)")
        ax.set_ylabel("best-so-far test accuracy %\n(mean over seeds; band: min–max)")
        ax.set_title(f"{dataset}: budget {budgets[dataset]} epochs (dash-dot: 1/3)")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke: digits, 3 arms, 1 seed, 40 epochs")
    ap.add_argument("--datasets", default="mnist1d,mnist5k", help="of mnist1d, digits, mnist5k")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget-mnist1d", type=int, default=BUDGETS["mnist1d"])
    ap.add_argument("--budget-digits", type=int, default=BUDGETS["digits"])
    ap.add_argument("--budget-mnist5k", type=int, default=BUDGETS["mnist5k"])
    ap.add_argument("--out", default=str(ROOT / "results" / "search_efficiency"))
    ap.add_argument("--no-wait", action="store_true", help="do not wait for net2net_replication")
    ap.add_argument("--from-csv", help="only redo the table and figure from a per-trial CSV")
    ap.add_argument("--resume-csv", help="keep the searches in this per-trial CSV; run the rest")
    args = ap.parse_args()
    if args.quick:
        args.datasets, args.seeds = "digits", "0"
        args.arms = "evolution warm,evolution scratch,random scratch"
        args.budget_digits = 40
        if args.out == str(ROOT / "results" / "search_efficiency"):
            args.out = str(ROOT / "results" / "search_efficiency_quick")
    command = (
        "cd "
        + str(ROOT)
        + " && .venv/bin/python "
        + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    )
    datasets = [d for d in args.datasets.split(",") if d]
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS and a not in EXTRA_ARMS]
    if unknown:
        raise SystemExit(f"--arms: unknown {unknown}; known: {[*ARMS, *EXTRA_ARMS]}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    budgets = {
        "mnist1d": args.budget_mnist1d,
        "digits": args.budget_digits,
        "mnist5k": args.budget_mnist5k,
    }
    budgets = {d: budgets[d] for d in datasets}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    import pandas as pd

    if args.from_csv:
        df = pd.read_csv(args.from_csv)
        summarise(df, budgets, arms, command, out, float("nan"), 0.0, seeds)
        return
    idle = (
        {"waited_s": 0.0, "idle_cores_at_start": float("nan")}
        if (args.quick or args.no_wait)
        else wait_idle("efficiency", max_wait_s=300.0)
    )
    waited = idle["waited_s"]
    monitor = ForeignCPU()

    import growsearch  # noqa: F401, I001 (its loopback-only Ray default, before ray)
    import ray

    ray_kwargs = {"num_cpus": 2, "include_dashboard": False, "log_to_driver": False,
                  "configure_logging": False}  # fmt: skip
    ray.init(**ray_kwargs)
    work = Path(tempfile.mkdtemp(prefix="gs-efficiency-"))
    t_start = time.perf_counter()
    frames, errors, done = [], [], set()
    if args.resume_csv:
        prev = pd.read_csv(args.resume_csv)
        frames.append(prev)
        done = set(zip(prev["dataset"], prev["arm"], prev["seed"], strict=True))
    try:
        for seed in seeds:
            for dataset in datasets:
                for arm in arms:
                    if (dataset, arm, seed) in done:
                        continue
                    df = None
                    for attempt in (1, 2):
                        try:
                            df, wall = run_one(dataset, arm, seed, budgets[dataset], work, attempt)
                            break
                        except Exception as e:  # record it, restart Ray, retry once
                            errors.append(
                                f"{dataset} / {arm} / seed {seed} (attempt {attempt}): "
                                f"{type(e).__name__}: {str(e)[:300]}"
                            )
                            print(f"[efficiency] FAILED {errors[-1]}", flush=True)
                            ray.shutdown()
                            ray.init(**ray_kwargs)
                    if df is None:
                        continue
                    frames.append(df)
                    best = df["best_test_so_far"].iloc[-1]
                    print(f"[efficiency] {dataset:8s} {arm:18s} seed {seed}: {len(df)} trials, "
                          f"{df['epochs'].sum()} epochs, best test {best:.4f}, {wall:.0f} s "
                          f"(total {(time.perf_counter() - t_start) / 60:.1f} min)", flush=True)  # fmt: skip
                    pd.concat(frames).to_csv(out.with_suffix(".csv"), index=False)
    finally:
        ray.shutdown()
    wall = time.perf_counter() - t_start
    foreign = monitor.stop()
    print(f"[efficiency] other processes used {foreign['foreign_cores']:.2f} cores on average "
          f"({foreign['foreign_top']})", flush=True)  # fmt: skip
    df = pd.concat(frames, ignore_index=True)
    df.to_csv(out.with_suffix(".csv"), index=False)
    summarise(df, budgets, arms, command, out, wall, waited, seeds)
    with open(out.with_suffix(".md"), "a") as f:
        f.write(
            f"\nOther processes on the machine used {foreign['foreign_cores']:.2f} cores on average "
            f"during the run ({foreign['foreign_top'] or 'nothing notable'}); this affects wall "
            "times only, not accuracies or epochs.\n"
        )
    if errors:
        with open(out.with_suffix(".md"), "a") as f:
            f.write("\nSearches that failed:\n\n" + "\n".join(f"- {e}" for e in errors) + "\n")
        print("\n".join(errors))
    print(f"[efficiency] run folders kept under {work}")


if __name__ == "__main__":
    main()
