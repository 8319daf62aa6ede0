"""Peers: growsearch's default search against what a user would pick instead, at equal training
FLOPs (issue 14).

Per dataset (MNIST-1D, MNIST 5k; the search-efficiency spaces, ``benchmarks/search_spaces/
efficiency_<dataset>.yaml``) and seed, four arms:

- ``growsearch``: ``growsearch.run`` with the space's default controller and warm-start recipe,
  every epoch of every trial counted as the peers' are (``training.test_every_epoch``); the same
  run counted once per trial, at its end, with all its FLOPs, is ``growsearch (trial ends)``;
- ``optuna tpe+hyperband``: Optuna's TPE sampler with a Hyperband pruner over the same stage
  depths and widths, every trial from scratch (the usual Optuna recipe), 2 trials at a time;
- ``ray asha random``: Ray Tune's random search with the ASHA scheduler, from scratch, 2 trials
  at a time;
- ``largest``: the largest architecture the space allows (every stage at its maximum depth and
  width, shrunk until it fits ``max_params``), trained for the whole budget.

The budget axis is training FLOPs: 3 × the forward FLOPs of one sample (forward + backward) ×
samples seen, summed over trials. The growsearch run's own total is the budget B every peer of
that dataset and seed gets. Peers sample one width per stage (growsearch may give the layers of
a stage different widths) from the widths growsearch can reach (the seed's × products of the
widen factors, up to ``max_width``), and one depth per stage up to ``max_layers_per_stage``;
an architecture over ``max_params`` is not trained (it costs nothing).

    .venv/bin/python benchmarks/peers.py --out results             # full: 2 datasets x 3 seeds
    .venv/bin/python benchmarks/peers.py --quick --out /tmp/peers  # smoke: tiny budget, 1 seed
    .venv/bin/python benchmarks/peers.py --arms growsearch \\
        --set training.new_entry_lr_factor=3 --out /tmp/k3   # a variant of the search

Writes ``peers.csv`` (``dataset, arm, seed, budget_fraction, best_test_acc``, one row per arm,
seed and budget point 1/4, 1/3, 1/2, 1, plus ``test_of_best_val``, the test accuracy of the
model with the best validation accuracy within the budget point, the one a user would keep,
and the FLOPs and wall-clock columns), ``peers.md``
(the table) and ``peers.png`` (best test accuracy against training FLOPs).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "benchmarks" / "search_spaces"
sys.path.insert(0, str(ROOT))

FRACTIONS = (0.25, 1 / 3, 0.5, 1.0)
ARMS = (
    "growsearch", "growsearch (trial ends)", "optuna tpe+hyperband", "ray asha random", "largest"
)  # fmt: skip
OURS = ARMS[:2]  # one growsearch run, counted two ways


# ---- the space, as a peer sees it ----------------------------------------------------------


def space_of(dataset: str) -> dict[str, Any]:
    """The search-efficiency space's YAML as a dict (the peers read its limits from it)."""
    return yaml.safe_load((SPACES / f"efficiency_{dataset}.yaml").read_text())


def choices(space: dict[str, Any]) -> list[tuple[list[int], list[int]]]:
    """Per stage: (depth choices, width choices: every width growsearch's widen ops reach from
    the stage's seed width)."""
    import growsearch

    mutations = growsearch.SearchSpace.from_dict(space).mutations
    depth = mutations.deepen.max_layers_per_stage
    out = []
    for stage in space["seed_model"]["stages"]:
        widths = list(mutations.width_choices(int(stage[0])))
        out.append((list(range(len(stage), depth + 1)), widths))
    return out


def arch_spec(space: dict[str, Any], data: Any, depths: list[int], widths: list[int]) -> Any:
    from growsearch.arch import ArchSpec

    sm = space["seed_model"]
    return ArchSpec.create(
        sm["family"], data.input_shape, data.num_classes,
        [[w] * d for d, w in zip(depths, widths)],
        kernel_size=sm.get("kernel_size", 3), batch_norm=sm.get("batch_norm", True),
    )  # fmt: skip


def largest_spec(space: dict[str, Any], data: Any) -> Any:
    """Every stage at its maximum depth and width; the widest stage narrowed until it fits."""
    from growsearch.arch import count_params

    opts = choices(space)
    depths = [max(d) for d, _ in opts]
    idx = [len(w) - 1 for _, w in opts]
    limit = space["mutations"].get("max_params")
    while True:
        spec = arch_spec(space, data, depths, [opts[i][1][k] for i, k in enumerate(idx)])
        if limit is None or count_params(spec) <= limit:
            return spec
        i = max(range(len(idx)), key=lambda j: (opts[j][1][idx[j]], j))
        if idx[i] == 0:
            depths[i] = max(1, depths[i] - 1)
        else:
            idx[i] -= 1


# ---- one from-scratch trial, epoch by epoch ------------------------------------------------


class Ledger:
    """Training FLOPs spent so far, and (flops, test accuracy, wall-clock, validation accuracy)
    of every evaluated model."""

    def __init__(self, budget: float) -> None:
        self.budget, self.spent, self.points = budget, 0.0, []
        self.lock = threading.Lock()
        self.start = time.perf_counter()

    def add(
        self, flops: float, test_acc: float | None, val_acc: float, wall: float | None = None
    ) -> bool:
        """Count ``flops``; record ``test_acc`` and ``val_acc`` at the new total, with ``wall``
        (default: the seconds since this ledger began); False once the budget is spent."""
        with self.lock:
            if self.spent >= self.budget:
                return False
            self.spent += flops
            if test_acc is not None:
                wall = time.perf_counter() - self.start if wall is None else wall
                self.points.append((self.spent, float(test_acc), wall, float(val_acc)))
            return True


def train_epochs(spec: Any, data: Any, space: dict[str, Any], epochs: int, seed: int, on_epoch):
    """Train ``spec`` from scratch; after each epoch call ``on_epoch(epoch, flops, val, test)``
    (FLOPs of that epoch); it returns False to stop."""
    from growsearch.arch import build, count_flops
    from growsearch.train import TrainConfig, evaluate, train

    tr = space["training"]
    model = build(spec, seed=seed)
    fwd = count_flops(spec)
    n = len(data.train.y)
    steps_per_epoch = math.ceil(n / tr["batch_size"])
    cfg = TrainConfig(
        epochs=epochs, batch_size=tr["batch_size"], lr=tr["lr"], optimizer="adam",
        weight_decay=tr.get("weight_decay", 0.0), device="cpu", amp=False, seed=seed,
    )  # fmt: skip

    class Stop(Exception):
        pass

    def on_eval(step: int, val_loss: float, val_acc: float) -> None:
        if step == 0:
            return
        test = evaluate(model, data.test)[1]
        if not on_epoch(step // steps_per_epoch, 3.0 * fwd * n, val_acc, test):
            raise Stop

    try:
        train(model, data, cfg, eval_every_steps=steps_per_epoch, on_eval=on_eval)
    except Stop:
        pass


# ---- the arms ------------------------------------------------------------------------------


def run_growsearch(
    dataset: str, seed: int, work: Path, budget_epochs: int | None, sets: dict[str, Any]
) -> tuple[Ledger, Ledger]:
    """The default search; its total training FLOPs become the budget of the peers.

    Two ledgers of the one run: every epoch of every trial, as the peers are counted (the
    search runs with ``training.test_every_epoch``, which changes no training, so each epoch's
    report carries its test accuracy), and each trial once, at its end, with all its FLOPs
    (``growsearch (trial ends)``). ``sets`` are further overrides of the space (``--set``), to
    measure a variant of the default search against the same peers."""
    from ray import tune

    import growsearch
    from growsearch.data import load_dataset

    data = load_dataset(dataset)
    n = len(data.train.y)
    overrides: dict[str, Any] = {"seed": seed, "training.test_every_epoch": True}
    if budget_epochs:
        overrides["budget.epochs"] = budget_epochs
    overrides.update(sets)
    space = growsearch.load_space(SPACES / f"efficiency_{dataset}.yaml", overrides)
    reports: list[tuple[str, float, float, float, float]] = []
    t0 = time.perf_counter()

    class Epochs(tune.Callback):
        """(trial, one epoch's training FLOPs, test, validation accuracy, wall-clock) of each
        report, in the order they reach the driver."""

        def on_trial_result(self, iteration, trials, trial, result, **info):  # type: ignore[no-untyped-def]
            trial_id = str(trial.config["proposal"]["trial_id"])
            flops = 3.0 * float(result["flops"]) * n
            reports.append((trial_id, flops, float(result["test_acc"]), float(result["val_acc"]),
                            time.perf_counter() - t0))  # fmt: skip

    df = growsearch.run(
        space, name=f"{dataset}-s{seed}", results_dir=work, progress=False, callbacks=[Epochs()]
    ).trials
    wall = time.perf_counter() - t0
    failed = set(df[df["status"] == "failed"]["trial_id"])
    every = Ledger(float("inf"))
    for trial_id, flops, test, val, at in reports:
        if trial_id not in failed:
            every.add(flops, test, val, wall=at)
    every.budget = every.spent
    ends = Ledger(float("inf"))
    for _, r in df.iterrows():  # completion order
        if r["status"] == "failed":
            continue
        flops = 3.0 * float(r["flops"]) * n * int(r["epochs"] or 0)
        ends.add(flops, float(r["test_acc"]), float(r["val_acc"]))
    ends.budget = ends.spent
    ends.points = [(f, a, wall * f / ends.spent, v) for f, a, _, v in ends.points]
    return every, ends


def run_optuna(dataset: str, seed: int, budget: float, max_epochs: int) -> Ledger:
    import optuna

    from growsearch.arch import count_params
    from growsearch.data import load_dataset

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, data = space_of(dataset), load_dataset(dataset)
    opts, limit = choices(space), space["mutations"].get("max_params")
    ledger = Ledger(budget)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs),
    )

    def objective(trial: optuna.Trial) -> float:
        depths = [trial.suggest_categorical(f"depth{i}", d) for i, (d, _) in enumerate(opts)]
        widths = [trial.suggest_categorical(f"width{i}", w) for i, (_, w) in enumerate(opts)]
        spec = arch_spec(space, data, depths, widths)
        if limit is not None and count_params(spec) > limit:
            raise optuna.TrialPruned  # outside the space: costs nothing
        best = [0.0]

        def on_epoch(epoch: int, flops: float, val: float, test: float) -> bool:
            best[0] = max(best[0], val)
            if not ledger.add(flops, test, val):
                return False
            trial.report(val, epoch)
            return not trial.should_prune()

        train_epochs(spec, data, space, max_epochs, seed * 1000 + trial.number, on_epoch)
        if ledger.spent >= budget:
            study.stop()
        return best[0]

    study.optimize(objective, n_jobs=2, n_trials=10_000)
    return ledger


def run_ray(dataset: str, seed: int, budget: float, max_epochs: int, work: Path) -> Ledger:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    space = space_of(dataset)
    opts = choices(space)

    def trainable(config: dict[str, Any]) -> None:
        import torch

        from growsearch.arch import count_params
        from growsearch.data import load_dataset

        torch.set_num_threads(1)
        data = load_dataset(dataset)
        depths = [config[f"depth{i}"] for i in range(len(opts))]
        widths = [config[f"width{i}"] for i in range(len(opts))]
        spec = arch_spec(space, data, depths, widths)
        limit = space["mutations"].get("max_params")
        if limit is not None and count_params(spec) > limit:
            tune.report({"val_acc": 0.0, "test_acc": 0.0, "flops": 0.0, "outside": 1})
            return

        def on_epoch(epoch: int, flops: float, val: float, test: float) -> bool:
            tune.report({"val_acc": val, "test_acc": test, "flops": flops, "outside": 0})
            return True

        train_epochs(spec, data, space, max_epochs, config["seed"], on_epoch)

    class Budget(tune.Stopper):
        """Stops every trial once the reported FLOPs reach the budget (no lock: it is pickled)."""

        def __init__(self, budget: float) -> None:
            self.budget, self.spent = budget, 0.0

        def __call__(self, trial_id: str, result: dict) -> bool:
            self.spent += float(result.get("flops", 0.0))
            return False

        def stop_all(self) -> bool:
            return self.spent >= self.budget

    param_space: dict[str, Any] = {"seed": tune.randint(0, 10**6)}
    for i, (d, w) in enumerate(opts):
        param_space[f"depth{i}"], param_space[f"width{i}"] = tune.choice(d), tune.choice(w)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="val_acc", mode="max", num_samples=10_000, max_concurrent_trials=2,
            scheduler=ASHAScheduler(max_t=max_epochs, grace_period=1, reduction_factor=2),
            search_alg=tune.search.BasicVariantGenerator(random_state=seed),
        ),
        run_config=tune.RunConfig(
            stop=Budget(budget), storage_path=str(work), name=f"ray-{dataset}-s{seed}", verbose=0
        ),
    )  # fmt: skip
    t0 = time.time()
    grid = tuner.fit()
    ledger = Ledger(budget)
    import pandas as pd

    frames = [r.metrics_dataframe for r in grid if r.metrics_dataframe is not None]
    hist = pd.concat(frames).sort_values("timestamp") if frames else pd.DataFrame()
    for _, r in hist.iterrows():  # reports in the order they arrived, all trials together
        if r.get("outside", 0):
            continue
        wall = float(r["timestamp"]) - t0  # wall clock of the report
        if not ledger.add(float(r["flops"]), float(r["test_acc"]), float(r["val_acc"]), wall):
            break
    return ledger


def run_largest(dataset: str, seed: int, budget: float) -> Ledger:
    from growsearch.arch import count_flops
    from growsearch.data import load_dataset

    space, data = space_of(dataset), load_dataset(dataset)
    spec = largest_spec(space, data)
    per_epoch = 3.0 * count_flops(spec) * len(data.train.y)
    epochs = max(1, int(budget // per_epoch))
    ledger = Ledger(float("inf"))

    def on_epoch(epoch: int, flops: float, val: float, test: float) -> bool:
        ledger.add(flops, test, val)
        return True

    train_epochs(spec, data, space, epochs, seed, on_epoch)
    ledger.budget = budget
    return ledger


# ---- tables --------------------------------------------------------------------------------


def rows_of(dataset: str, arm: str, seed: int, ledger: Ledger, budget: float) -> list[dict]:
    """One row per budget point: the best test accuracy of a model evaluated within it, and the
    test accuracy of the model a user would pick there, the first with the best validation
    accuracy (no selection on the test set)."""
    rows = []
    for f in FRACTIONS:
        inside = [(a, w, v) for x, a, w, v in ledger.points if x <= f * budget * (1 + 1e-9)]
        picked = max(inside, key=lambda p: p[2], default=None)
        rows.append({
            "dataset": dataset, "arm": arm, "seed": seed, "budget_fraction": round(f, 4),
            "best_test_acc": max((a for a, _, _ in inside), default=float("nan")),
            "test_of_best_val": picked[0] if picked else float("nan"),
            "budget_flops": budget, "wall_s": max((w for _, w, _ in inside), default=float("nan")),
        })  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    import pandas as pd

    df = pd.DataFrame(rows)
    lines = ["| dataset | arm | seeds | " + " | ".join(_frac(f) for f in FRACTIONS)
             + " | wall at full budget (s) |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in FRACTIONS) + " | ---: |"]  # fmt: skip
    for (d, arm), g in df.groupby(["dataset", "arm"], sort=False):
        cells = []
        for f in FRACTIONS:
            v = g[g.budget_fraction == round(f, 4)]["best_test_acc"]
            cells.append(f"{100 * v.mean():.2f}% ± {100 * v.std(ddof=1):.2f}" if len(v) > 1
                         else f"{100 * v.mean():.2f}%")  # fmt: skip
        wall = g[g.budget_fraction == 1.0]["wall_s"].mean()
        lines.append(f"| {d} | {arm} | {g.seed.nunique()} | " + " | ".join(cells)
                     + f" | {wall:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _frac(f: float) -> str:
    return {0.25: "1/4", 0.3333: "1/3", 0.5: "1/2", 1.0: "1"}[round(f, 4)]


def plot(ledgers: dict[tuple[str, str, int], Ledger], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({d for d, _, _ in ledgers})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.2), squeeze=False)
    for ax, d in zip(axes.flat, datasets):
        for i, arm in enumerate(ARMS):
            for (dd, a, s), led in sorted(ledgers.items()):
                if dd != d or a != arm or not led.points:
                    continue
                xs = [x for x, _, _, _ in led.points]
                best = [max(a for _, a, _, _ in led.points[: k + 1]) for k in range(len(xs))]
                ax.step(xs, best, where="post", color=f"C{i}", alpha=0.8,
                        label=arm if s == min(ss for (d2, a2, ss) in ledgers if d2 == d and a2 == arm) else None)  # fmt: skip
        ax.set_title(d)
        ax.set_xlabel("training FLOPs")
        ax.set_ylabel("best test accuracy so far")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["mnist1d", "mnist5k"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--quick", action="store_true", help="smoke: budget.epochs 6, 1 seed")
    p.add_argument("--budget-epochs", type=int, default=None, help="growsearch's budget.epochs")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a key of growsearch's space (e.g. training.new_entry_lr_factor=3)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    sets: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--set {item!r}: expected KEY=VALUE")
        sets[key] = yaml.safe_load(value)
    if args.quick:
        args.seeds, args.budget_epochs = 1, args.budget_epochs or 6
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    ledgers: dict[tuple[str, str, int], Ledger] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        work = Path(tmp)
        for d in args.datasets:
            max_epochs = int(space_of(d)["training"]["epochs"])
            for seed in range(args.seeds):
                every, ends = run_growsearch(d, seed, work, args.budget_epochs, sets)
                budget = every.budget
                ledgers[(d, OURS[0], seed)], ledgers[(d, OURS[1], seed)] = every, ends
                for arm in args.arms:
                    if arm in OURS:
                        continue
                    if arm == "optuna tpe+hyperband":
                        led = run_optuna(d, seed, budget, max_epochs)
                    elif arm == "ray asha random":
                        led = run_ray(d, seed, budget, max_epochs, work)
                    else:
                        led = run_largest(d, seed, budget)
                    ledgers[(d, arm, seed)] = led
                for arm in args.arms:
                    rows += rows_of(d, arm, seed, ledgers[(d, arm, seed)], budget)
                print(f"[peers] {d} seed {seed} done ({time.perf_counter() - start:.0f}s)")
    fields = [
        "dataset",
        "arm",
        "seed",
        "budget_fraction",
        "best_test_acc",
        "test_of_best_val",
        "budget_flops",
        "wall_s",
    ]
    with (args.out / "peers.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.5g}" if isinstance(v, float) else v) for k, v in r.items()})
    cmd = "python benchmarks/peers.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = (
        f"<!-- {cmd} ; {time.perf_counter() - start:.0f}s wall -->\n# Peers at equal training FLOPs\n\n"
        "Best test accuracy of any model trained within each fraction of the budget (mean ± sd "
        "over seeds); the budget is the growsearch run's own training FLOPs.\n\n"
        + table(rows) + "\n![best test accuracy against training FLOPs](peers.png)\n"
    )  # fmt: skip
    (args.out / "peers.md").write_text(text)
    plot(ledgers, args.out / "peers.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
