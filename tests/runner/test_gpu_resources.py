"""The GPU code path: fractional GPUs per trial through a real Ray that declares one GPU (a
logical one on a CPU machine), the device recorded per trial (the GPU where torch reaches one,
else the CPU fallback), and a clear error (not a hang) when the cluster lacks what one trial
asks for. Real Ray, real training on digits; the same tests pass with and without CUDA."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import growsearch
from growsearch.cli import main
from growsearch.exceptions import ConfigError
from growsearch.runner._trainable import trial_device
from tests.fixtures.spaces import tiny_space

SPACE = tiny_space(
    trials=3,
    name="gpu",
    training="{epochs: 4, seed_epochs: 1, batch_size: 32, lr: 0.003, amp: bf16}",
    resources="{cpus_per_trial: 1, gpus_per_trial: 0.5, concurrency: 2}",
)


CUDA = torch.cuda.is_available()
"""Whether this machine's torch reaches a GPU: the tests below check the GPU path there, the
CPU fallback elsewhere."""
GPUS = torch.cuda.device_count() if CUDA else 0
"""The GPUs a local Ray started here declares."""


# ---- the device rule (no Ray) ------------------------------------------------------------------
def test_trial_device_rule() -> None:
    assert trial_device("auto", []) == (torch.device("cpu"), None)  # no GPU from Ray: the CPU
    assert trial_device("cpu", ["0"]) == (torch.device("cpu"), None)  # explicit: as given
    device, warning = trial_device("auto", ["0"])
    if CUDA:  # the GPU Ray assigned (CUDA_VISIBLE_DEVICES), without a warning
        assert device == torch.device("cuda") and warning is None
        assert trial_device("cuda", ["0"])[0].type == "cuda"
    else:  # a GPU from Ray that torch cannot reach: the CPU, and a warning
        assert device == torch.device("cpu")
        assert warning is not None and "GPU 0" in warning and "CUDA is not available" in warning
        with pytest.raises(ConfigError, match="CUDA is not available"):
            trial_device("cuda", ["0"])


def test_trial_device_rule_on_a_gpu_machine(monkeypatch) -> None:
    """The CUDA branch of the rule, on any machine (torch made to report a GPU)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert trial_device("auto", ["0"]) == (torch.device("cuda"), None)
    assert trial_device("auto", []) == (torch.device("cpu"), None)  # Ray reserved none


# ---- too few resources: one line, exit 2, nothing left behind ----------------------------------
RAY_NOTICE = "Token authentication is enabled for this Ray cluster"  # Ray's own log, at ray.init


def _error_line(stderr: str) -> str:
    """The one error line; anything else on stderr may only be Ray's start-up notice."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    ours = [line for line in lines if line.startswith("growsearch: error: ")]
    assert len(ours) == 1, stderr
    assert all(line in ours or RAY_NOTICE in line for line in lines), stderr
    return ours[0]


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("old", "new", "needles"),
    [
        (  # one more GPU than this machine has (0.5 of none on a machine without CUDA)
            "gpus_per_trial: 0.5",
            f"gpus_per_trial: {GPUS + 1 if GPUS else 0.5}",
            [
                "resources.gpus_per_trial",
                f"asks for {GPUS + 1 if GPUS else 0.5:g} GPU",
                f"the local Ray has {GPUS} GPU",
            ],
        ),
        (
            "cpus_per_trial: 1",
            "cpus_per_trial: 4096",
            ["resources.cpus_per_trial", "asks for 4096 CPU", f"has {os.cpu_count()} CPU"],
        ),
    ],
    ids=["gpus", "cpus"],
)
def test_cluster_too_small_is_one_line_exit_2(
    tmp_path: Path, capsys, old: str, new: str, needles: list[str]
) -> None:
    import ray

    assert not ray.is_initialized()  # the CLI starts its own local Ray (with this machine's GPUs)
    text = SPACE.replace(old, new)
    if "cpus_per_trial: 4096" in text:
        text = text.replace("gpus_per_trial: 0.5", "gpus_per_trial: 0")
    space = tmp_path / "space.yaml"
    space.write_text(text)
    results = tmp_path / "results"
    results.mkdir()
    code = main(["run", str(space), "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert code == 2, err
    line = _error_line(err)
    assert "space.yaml" in line
    for needle in needles:
        assert needle in line, line
    assert list(results.iterdir()) == []  # the half-made run folder was removed
    assert not ray.is_initialized()  # and the Ray it started was shut down


# ---- a real search with fractional GPUs --------------------------------------------------------
@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory) -> tuple[Path, str, list[tuple[float, float]]]:
    """A search with gpus_per_trial 0.5 and concurrency 2 on a Ray declaring 1 (logical) GPU;
    meanwhile, Ray's free GPU is sampled from the driver every 0.1 s."""
    from rich.console import Console

    from growsearch.runner import run_search  # importing growsearch sets Ray's defaults: first
    from growsearch.space import load_space

    # isort: split
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
        configure_logging=False,
    )  # fmt: skip
    free_gpu: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            free_gpu.append((time.time(), ray.available_resources().get("GPU", 0.0)))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        assert ray.cluster_resources().get("GPU") == 1.0
        path = tmp_path_factory.mktemp("space") / "gpu.yaml"
        path.write_text(SPACE)
        run_dir = tmp_path_factory.mktemp("runs") / "gpu"
        out = io.StringIO()
        sampler.start()
        run_search(load_space(path), run_dir, progress=False, console=Console(file=out, width=200))
    finally:
        done.set()
        if sampler.is_alive():
            sampler.join()
        ray.shutdown()
    return run_dir, out.getvalue(), free_gpu


@pytest.mark.slow
def test_trials_got_gpus_and_fell_back_to_cpu(gpu_run) -> None:
    run_dir, console, _ = gpu_run
    df = growsearch.load_results(run_dir)
    assert len(df) == 3 and (df["status"] == "completed").all(), df[["status", "error"]]
    # every trial got Ray's one GPU, shared at 0.5 each. With CUDA each trained on it; without,
    # on the CPU, and the driver warned once, on its console. Either way in bf16 (autocast), as
    # the space asks.
    device = "cuda" if CUDA else "cpu"
    assert list(df["gpu_ids"]) == ["0"] * 3
    assert list(df["device"]) == [device] * 3
    assert list(df["precision"]) == ["bf16"] * 3
    assert (df["val_acc"] > 0.5).all() and (df["test_acc"] > 0.5).all()  # chance is 0.1
    for trial_id in df["trial_id"]:
        meta = json.loads((run_dir / "models" / trial_id / "meta.json").read_text())
        assert meta["info"]["device"] == device and meta["info"]["gpu_ids"] == "0"
        assert meta["metrics"]["precision"] == "bf16"
    assert console.count("CUDA is not available") == (0 if CUDA else 1), console


@pytest.mark.slow
def test_two_trials_held_half_the_gpu_each_at_the_same_time(gpu_run) -> None:
    """The seed trains alone (every child grows from it); then Ray runs the two children at
    once, each holding half of the one GPU: Ray's free GPU went to 0 (no other task asks for
    GPUs), and back to 1 at the end. (When their training spans overlap depends on how fast a
    fresh worker process starts on a loaded machine; the scheduling does not.)"""
    run_dir, _, free_gpu = gpu_run
    df = growsearch.load_results(run_dir)
    levels = [free for _, free in free_gpu]
    assert len(levels) > 10 and set(levels) <= {0.0, 0.5, 1.0}, levels
    assert 0.5 in levels and 0.0 in levels, levels  # one trial with half of it, then two at once
    spans = {}
    for trial_id in df["trial_id"]:
        m = json.loads((run_dir / "models" / trial_id / "meta.json").read_text())["metrics"]
        spans[trial_id] = (m["first_step_unix"], m["ended_unix"])
    seed = df.loc[df["parent_id"].isna(), "trial_id"].item()
    # while the seed trained, only it held a GPU share
    during_seed = [free for t, free in free_gpu if spans[seed][0] < t < spans[seed][1]]
    assert during_seed and set(during_seed) == {0.5}, during_seed
    # both halves were taken only after the seed had finished
    both = [t for t, free in free_gpu if free == 0.0]
    assert min(both) > spans[seed][1]
    children = [spans[t] for t in df["trial_id"] if t != seed]
    assert min(both) < max(end for _, end in children)


@pytest.mark.slow
def test_resume_on_a_cluster_without_gpus_fails_cleanly(gpu_run, tmp_path: Path) -> None:
    """The run asks 0.5 GPU per trial; resuming it (one more trial in its budget) on a local
    Ray without GPUs (this machine's GPUs, if any, hidden from it) is refused in one line, the
    run left as it was."""
    run_dir = tmp_path / "gpu"
    shutil.copytree(gpu_run[0], run_dir)
    space = json.loads((run_dir / "space.json").read_text())
    space["budget"]["trials"] = 4
    (run_dir / "space.json").write_text(json.dumps(space, indent=2, sort_keys=True))
    (run_dir / "ray_session.json").unlink(missing_ok=True)
    skip = (".lock", "ray_session.json", "ray_driver.log")  # what starting Ray writes
    before = {k: v for k, v in _tree(run_dir).items() if k not in skip}
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # Ray and torch see no GPU, on a GPU machine too
    done = subprocess.run(
        [sys.executable, "-m", "growsearch.cli", "resume", str(run_dir)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    line = _error_line(done.stderr)
    assert "space.json: resources.gpus_per_trial: a trial asks for 0.5 GPU" in line
    after = _tree(run_dir)
    # only Ray's session record (which processes to clean up after a crash), its driver log
    # and the lock file
    assert {k: v for k, v in after.items() if k not in skip} == before
    from growsearch.runner._lock import run_lock

    with run_lock(run_dir):  # not left locked
        pass
