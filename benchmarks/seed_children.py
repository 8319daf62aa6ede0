"""Children of a search's seed, warm-started with recipe variants, side by side.

A diagnostic for ``benchmarks/search_efficiency.py``: in the first third of an MNIST 5k search
only children of the seed exist, so how good a warm child of the seed is decides whether a warm
search reaches the from-scratch search's final best with 1/3 of the compute. This trains the
seed of an efficiency space (``benchmarks/search_spaces/efficiency_<dataset>.yaml``) the way the
search does, draws the search's initial, spread-out children of it
(``mutations.random_descendant``), and trains each child once per variant, paired (same
architecture, same ops, same data order):

- ``warm`` — morphed from the seed with :class:`WarmStartRecipe` (``shrink`` resolved for the
  child's steps as in a search), trained the child's epochs; ``warm key=value ...`` replaces
  recipe fields (``warmup_fraction=0.1``, ``shrink=0.3``, ``lr_factor=2``, ...).
  Every field a variant does not name keeps the package default at the time of the run.
- ``scratch`` — the same architecture from a fresh init, the child's epochs; ``scratch
  epochs=N`` trains N epochs (``epochs=15`` on MNIST 5k: the seed's 10 + the child's 5, what
  a perfect transfer of the seed's training would be worth).

Usage::

    python benchmarks/seed_children.py --dataset mnist5k --seeds 0,1,2 --children 6 \\
        --variants 'warm warmup_fraction=0;warm warmup_fraction=0.1;scratch' --out results/seed_children

Writes ``<out>.csv`` (one row per child and variant) and ``<out>.md`` (per variant: mean test
accuracy, and the paired difference to the first variant with its wins). Two worker processes,
one thread each.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from growsearch.arch import ArchSpec, build, count_params  # noqa: E402
from growsearch.data import Dataset, load_dataset  # noqa: E402
from growsearch.grow import WarmStartRecipe, grow_child  # noqa: E402
from growsearch.space import load_space  # noqa: E402
from growsearch.train import TrainConfig, evaluate, train  # noqa: E402

SPACES = Path(__file__).resolve().parent / "search_spaces"
CALIBRATION = 256  # inputs for the BatchNorm re-estimate, as in a search's trainable
_cache: dict[Any, Any] = {}


def parse_variant(name: str) -> tuple[str, dict[str, Any]]:
    """``"warm shrink=0.3 warmup_fraction=0.1"`` -> ``("warm", {"shrink": 0.3, ...})``."""
    kind, *pairs = name.split()
    if kind not in ("warm", "scratch"):
        raise SystemExit(f"--variants: {name!r}: must start with 'warm' or 'scratch'")
    fields: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(WarmStartRecipe)} | {"epochs"}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in known or (kind == "scratch" and key != "epochs"):
            raise SystemExit(f"--variants: {name!r}: cannot set {pair!r}")
        try:
            fields[key] = int(value) if key == "epochs" else float(value)
        except ValueError:
            fields[key] = value  # a string field (init, shrink_scope, shrink="auto")
    return kind, fields


def _data(name: str) -> Dataset:
    if ("data", name) not in _cache:
        _cache[("data", name)] = load_dataset(name)
    return _cache[("data", name)]


def _config(training: Any, epochs: int, seed: int, lr: float, **overrides: int) -> TrainConfig:
    """How a search's trial trains (``training`` is the space's section), on the CPU; a warm
    child's ``warmup_steps`` and ``cycle_steps`` in ``overrides``."""
    return training.train_config(epochs=epochs, device="cpu", seed=seed, lr=lr, **overrides)  # type: ignore[no-any-return]


def _seed_model(dataset: str, seed: int) -> tuple[Any, ArchSpec, torch.nn.Module, float]:
    """The space, its seed architecture and the seed trained as a search trains it."""
    if ("seed", dataset, seed) not in _cache:
        space = load_space(SPACES / f"efficiency_{dataset}.yaml")
        spec = space.seed_arch
        tseed = seed * 100_003  # the trainable's seed for trial index 0 of search seed ``seed``
        model = build(spec, seed=tseed)
        t = space.training
        train(model, _data(dataset), _config(t, t.seed_epochs, tseed, t.lr))
        _cache[("seed", dataset, seed)] = (
            space,
            spec,
            model,
            evaluate(model, _data(dataset).test)[1],
        )
    return _cache[("seed", dataset, seed)]


def run_one(job: tuple[str, int, int, str]) -> dict[str, Any]:
    """Train child ``k`` of search seed ``seed`` with ``variant``."""
    dataset, seed, k, variant = job
    torch.set_num_threads(1)
    space, spec, parent, seed_test = _seed_model(dataset, seed)
    data, t = _data(dataset), space.training
    drawn = space.mutations.random_descendant(spec, random.Random(1000 * seed + k))
    if drawn is None:
        raise SystemExit(f"the seed of efficiency_{dataset}.yaml cannot grow")
    arch, ops = drawn
    tseed = seed * 100_003 + k + 1
    kind, fields = parse_variant(variant)
    epochs = int(fields.pop("epochs", t.epochs))
    steps = max(1, len(data.train) // t.batch_size) * epochs  # as the trainable counts them
    t0 = time.perf_counter()
    shrink = None
    if kind == "scratch":
        model = build(arch, seed=tseed)
        train(model, data, _config(t, epochs, tseed, t.lr))
    else:
        recipe = dataclasses.replace(WarmStartRecipe(), **fields)
        child = grow_child(
            parent, spec, ops, recipe, calibration=data.train.x[:CALIBRATION], seed=tseed,
            total_steps=steps,
        )  # fmt: skip
        model, shrink = child.model, float(child.recipe.shrink)
        o = child.train_overrides(t.lr)
        train(model, data, _config(t, epochs, tseed, **o), step_scale=child.step_scale)
    return {
        "dataset": dataset, "seed": seed, "child": k, "variant": variant, "arch": arch.summary(),
        "params": count_params(model), "epochs": epochs, "shrink": shrink,
        "test_acc": evaluate(model, data.test)[1], "val_acc": evaluate(model, data.val)[1],
        "seed_test_acc": seed_test, "seconds": time.perf_counter() - t0,
    }  # fmt: skip


def summarize(df: pd.DataFrame, variants: list[str]) -> str:
    """Per variant: mean test accuracy; paired against the first variant."""
    lines = []
    for dataset, d in df.groupby("dataset", sort=False):
        p = d.pivot_table(index=["seed", "child"], columns="variant", values="test_acc")
        base = variants[0]
        lines += [
            f"## {dataset} ({len(p)} children of {d.seed.nunique()} seeds; seed test "
            f"{100 * d.groupby('seed').seed_test_acc.first().mean():.2f}%)",
            "",
            f"| variant | mean test % | − `{base}` (pp, mean) | median | higher / same / lower |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for v in variants:
            if v not in p:
                continue
            diff = (p[v] - p[base]).dropna()
            if v == base:
                paired = median = counts = "—"
            else:
                paired, median = f"{100 * diff.mean():+.2f}", f"{100 * diff.median():+.2f}"
                counts = f"{(diff > 0).sum()} / {(diff == 0).sum()} / {(diff < 0).sum()}"
            lines.append(f"| `{v}` | {100 * p[v].mean():.2f} | {paired} | {median} | {counts} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mnist5k", choices=["mnist1d", "mnist5k", "digits"])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--children", type=int, default=6, help="children of the seed per seed")
    ap.add_argument("--variants", default="warm;scratch", help="';'-separated (see the docstring)")
    ap.add_argument("--out", default="results/seed_children")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--from-csv", help="only redo the table from this run's CSV (no training)")
    args = ap.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(";") if v.strip()]
    for v in variants:
        parse_variant(v)  # a typo fails here, not in a worker
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(args.dataset, s, k, v) for s in seeds for k in range(args.children) for v in variants]
    t0 = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.from_csv:
        df = pd.read_csv(args.from_csv)
    else:
        with ProcessPoolExecutor(args.workers) as ex:
            df = pd.DataFrame(list(ex.map(run_one, jobs)))
    df.to_csv(out.with_suffix(".csv"), index=False)
    command = "python benchmarks/seed_children.py " + " ".join(
        f"'{a}'" if " " in a or ";" in a else a
        for a in (argv if argv is not None else sys.argv[1:])
    )
    md = [
        "# Children of the seed: warm-start variants, paired",
        "",
        f"Command: `{command}` "
        + (
            "(the table only, from the run's CSV). "
            if args.from_csv
            else f"({(time.perf_counter() - t0) / 60:.1f} min wall, {args.workers} workers). "
        )
        + f"Rows: `{out.with_suffix('.csv').name}`.",
        "",
        "Each child is drawn as a search draws its initial, spread-out children of the seed "
        "(`mutations.random_descendant`) and trained once per variant on the same architecture "
        "and data order; the seed is trained as in the "
        "search. `warm k=v`: the package's `WarmStartRecipe` with those fields replaced (the rest "
        "are the defaults at the time of the run), `shrink` resolved for the child's steps; "
        "`scratch epochs=N`: a fresh init trained N epochs.",
        "",
        summarize(df, variants),
    ]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
