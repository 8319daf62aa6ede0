"""A trial interrupted mid-way (kill -9 of the driver) and resumed is the trial that was
interrupted: its schedule, warm-up, data order and random generators continue, so it ends
with the weights of the same trial run without interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

import growsearch
from tests.fixtures.spaces import tiny_space

pytestmark = pytest.mark.slow

# the seed (2 epochs), then one warm child long enough to be interrupted (warm-up, a warm
# restart of its learning rate half-way and its new entries' own step scale included: a resume
# must rebuild all three)
SPACE = tiny_space(
    trials=2,
    name="exact",
    seed=3,
    training=(
        "{epochs: 12, seed_epochs: 2, batch_size: 16, lr: 0.003, warmup_fraction: 0.2,"
        " cycle_fraction: 0.5, new_entry_lr_factor: 3}"
    ),
    resources="{cpus_per_trial: 1, concurrency: 1}",
)
CHILD = "t0001"


def _epoch(run_dir: Path, trial: str) -> int:
    try:
        return int(json.loads((run_dir / "models" / trial / "meta.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def test_a_trial_killed_mid_way_and_resumed_ends_with_the_uninterrupted_weights(
    tmp_path: Path,
) -> None:
    space = tmp_path / "exact.yaml"
    space.write_text(SPACE)
    straight = growsearch.run(space, results_dir=tmp_path / "a", progress=False)
    assert list(straight.trials["status"]) == ["completed", "completed"]

    run_dir = tmp_path / "b" / "exact"
    proc = subprocess.Popen(
        [sys.executable, "-m", "growsearch.cli", "run", str(space), "--results-dir", str(run_dir.parent)],
        stdout=open(tmp_path / "b.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    end = time.monotonic() + 300
    while _epoch(run_dir, CHILD) < 3:
        assert proc.poll() is None, (tmp_path / "b.log").read_text()[-2000:]
        assert time.monotonic() < end, "the child never reached epoch 3"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    stopped_at = _epoch(run_dir, CHILD)
    assert 3 <= stopped_at < 12, stopped_at

    resumed = growsearch.resume(run_dir, progress=False)
    row = resumed.trials.set_index("trial_id").loc[CHILD]
    assert row["status"] == "completed" and row["restarts"] == 1
    first = straight.trials.set_index("trial_id").loc[CHILD]
    assert row["cycle_steps"] == first["cycle_steps"] > first["warmup_steps"] > 0
    a = load_file(str(tmp_path / "a" / "exact" / "models" / CHILD / "model.safetensors"))
    b = load_file(str(run_dir / "models" / CHILD / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] == b[name]).all(), f"{name} differs after a resume from epoch {stopped_at}"
    assert row["val_acc"] == straight.trials.set_index("trial_id").loc[CHILD, "val_acc"]
