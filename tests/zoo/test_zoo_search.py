"""Every zoo model grows: train it briefly, save its weights, and run a real search through the CLI.

One Ray instance serves the whole module (started here, handed to each ``growsearch run`` with
``--address``, shut down at the end), so each search pays only its own trials' start-up.
Each search: the user's trained model as the seed, default mutation settings except
``ops_per_child: [1, 2]``, 6 trials of 1 epoch, 2 at a time, evolution with its default
initial population (random points of the space, ``mutations.random_descendant``, then 1-2 op
mutations). Asserted: every trial completed, every warm child computed its parent's function
(``preserve_err <= 1e-5``), and ``best/`` loads with :func:`growsearch.load_model` and scores the
test accuracy the run recorded for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from safetensors.torch import save_file

import growsearch
from growsearch.data import load_dataset
from growsearch.results import ranked
from growsearch.train import TrainConfig, evaluate, train
from tests.fixtures.zoo import SEARCHABLE, ZOO, make_model

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GROWSEARCH = Path(sys.executable).parent / "growsearch"  # the venv's console script
TRIALS = 6
TIMINGS: dict[str, float] = {}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray (2 CPUs, loopback only) shared by every search of this module."""
    import ray

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()  # stops exactly the processes this init started
        if TIMINGS:
            print("\nzoo search times: " + ", ".join(f"{k} {v:.0f}s" for k, v in TIMINGS.items()))


def _space(name: str, factory: str, dataset: str, weights: Path) -> str:
    return f"""
name: zoo_{name}
dataset: {{name: {dataset}}}
seed_model: {{factory: '{factory}', weights: '{weights}'}}
mutations: {{ops_per_child: [1, 2]}}
controller: {{name: evolution, population: 3, sample: 2}}
training: {{epochs: 1, seed_epochs: 1, batch_size: 64, lr: 0.003}}
budget: {{trials: {TRIALS}}}
resources: {{cpus_per_trial: 1, concurrency: 2}}
"""


@pytest.mark.parametrize("name", SEARCHABLE)
def test_zoo_model_grows_through_the_cli(name: str, tmp_path: Path, ray_address: str) -> None:
    factory, dataset, _ = ZOO[name]
    assert dataset is not None
    data = load_dataset(dataset)
    user = make_model(factory)
    # the user's own training: a couple of epochs (at most a few hundred steps)
    train(user, data, TrainConfig(epochs=2, lr=3e-3, batch_size=64, seed=0, amp=False))
    weights = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in user.state_dict().items()}, str(weights))
    space = tmp_path / "space.yaml"
    space.write_text(_space(name, factory, dataset, weights))

    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(GROWSEARCH), "run", str(space), "--results-dir", str(tmp_path / "runs"),
         "--address", ray_address],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    TIMINGS[name] = time.perf_counter() - t0
    run_dir = tmp_path / "runs" / f"zoo_{name}"
    table = run_dir / "trials.parquet"
    assert proc.returncode == 0 and table.is_file(), (
        f"growsearch run exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
        f"\n--- stderr\n{proc.stderr[-6000:]}"
    )

    df = pd.read_parquet(table)
    failed = df[df["status"] != "completed"]
    assert failed.empty, "trials that did not complete:\n" + "\n\n".join(
        f"{r.trial_id} {r.status} ops={r.ops}: {r.error}" for r in failed.itertuples()
    )
    assert len(df) == TRIALS, df[["trial_id", "status", "arch_summary"]]
    children = df[df["parent_id"].notna()]
    assert len(children) == TRIALS - 1
    # every child is warm (warm_start is the default) and its morph preserved the function
    bad = children[~(children["preserve_err"] <= 1e-5)]
    assert bad.empty, bad[["trial_id", "parent_id", "ops", "preserve_err"]].to_string()
    by_id = df.set_index("trial_id")
    for _, child in children.iterrows():
        assert child["acc_before"] == pytest.approx(
            by_id.loc[child["parent_id"], "val_acc"], abs=1e-9
        )

    best = growsearch.load_model(run_dir / "best")
    top = ranked(df).iloc[0]
    assert evaluate(best, data.test)[1] == pytest.approx(top["test_acc"], abs=1e-9)
    print(
        f"\n{name}: {len(df)} trials completed in {TIMINGS[name]:.0f}s, best {top['arch_summary']}"
    )
    for c in children.itertuples():
        print(f"  {c.trial_id} <- {c.parent_id}: preserve_err {c.preserve_err:.2e}  {c.ops}")
