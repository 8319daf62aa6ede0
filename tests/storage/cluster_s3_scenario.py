"""A 2-node Ray cluster on loopback whose nodes share no disk: the run folder is on S3.

Usage (as root): ``unshare -n python tests/storage/cluster_s3_scenario.py WORKDIR``. Writes
``WORKDIR/scenario.json``; tests/storage/test_cluster_s3.py checks it.

1. in a loopback-only network namespace, start moto's S3 server and create a bucket;
2. start a head node (1 CPU) and a worker node (1 CPU); the worker node runs in a mount
   namespace of its own where WORKDIR is an empty tmpfs, so it cannot see the driver's files
   (WORKDIR: the driver's scratch folder, the search spaces), nor the head's Ray session;
3. run a search with ``--address`` and ``--results-dir s3://...``, then kill -9 a second
   search's driver and resume it from the URI;
4. stop everything we started, by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.runner.cluster_scenario import find, mark, nodes, sh  # noqa: E402
from tests.storage.s3server import S3Server  # noqa: E402

PORT = 6391
BUCKET = "cluster"
SPACE = """
name: {name}
seed: 0
dataset: {{name: digits}}
seed_model: {{family: cnn, stages: [[8], [16]], kernel_size: 3}}
mutations: {{widen: {{factors: [1.5, 2.0], max_width: 64}}, deepen: {{max_layers_per_stage: 3}}}}
controller: {{name: evolution, population: 4, sample: 2}}
training: {{epochs: {epochs}, seed_epochs: 3, batch_size: {batch}, lr: 0.003}}
budget: {{trials: {trials}}}
resources: {{cpus_per_trial: 1, concurrency: 2}}
"""


def main(work: Path) -> None:
    report: dict = {"steps": []}
    sh(["ip", "link", "set", "lo", "up"])
    s3 = S3Server(work / "moto.log")
    s3.create_bucket(BUCKET)
    mark(report, "s3 up")
    env = {**os.environ, **s3.env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "GROWSEARCH_SCRATCH": str(work / "scratch")}  # fmt: skip
    os.environ.update(env)
    ray = str(Path(sys.executable).with_name("ray"))
    cli = [sys.executable, "-m", "growsearch.cli"]
    (work / "driver-only.marker").write_text("the worker node must not see this")
    before = set(find(b"ray"))
    # the nodes' Ray sessions, outside WORKDIR, with short paths: Ray's socket paths must fit
    # 107 bytes, and pytest's folders (per xdist worker) are long
    head_tmp = tempfile.mkdtemp(prefix="gsh")
    worker_tmp = tempfile.mkdtemp(prefix="gsw")
    try:
        head = sh([ray, "start", "--head", f"--port={PORT}", "--num-cpus=1",
                   "--include-dashboard=false", "--node-ip-address=127.0.0.1",
                   f"--temp-dir={head_tmp}"], env=env)  # fmt: skip
        report["steps"].append(["head", head.returncode, head.stderr[-500:]])
        # the worker node: its own mount namespace, where empty tmpfs hide WORKDIR (the
        # driver's files, its scratch folder) and the head's Ray session; not all of /tmp,
        # which may hold the checkout and its virtual environment
        private = (
            f"mount -t tmpfs tmpfs {work} && mount -t tmpfs tmpfs {head_tmp} && "
            f"if [ -e {work / 'driver-only.marker'} ]; then echo SHARED; else echo PRIVATE; fi && "
            f"exec {ray} start --address=127.0.0.1:{PORT} --num-cpus=1 --node-ip-address=127.0.0.1 "
            f"--temp-dir={worker_tmp}"  # short: Ray's socket paths are limited to 107 bytes
        )
        worker = sh(["unshare", "-m", "--propagation", "private", "sh", "-c", private], env=env)
        report["steps"].append(["worker", worker.returncode, worker.stderr[-500:]])
        report["worker_tmp"] = worker.stdout.strip().splitlines()[0] if worker.stdout else ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alive = [n for n in nodes_at(env) if n.get("alive")]
            if len(alive) >= 2:
                break
            time.sleep(1)
        report["nodes"] = alive
        mark(report, "nodes alive")

        # 1. a search on the cluster, its run folder on S3
        # children long enough (hundreds of steps) that two run at once: with one CPU per node,
        # the second takes the other node, so both nodes train and some child's parent was
        # trained on the other node (the first child on a node grows from the other's trial)
        (work / "a.yaml").write_text(
            SPACE.format(name="s3_cluster_a", trials=6, epochs=8, batch=16)
        )
        a = subprocess.run([*cli, "run", str(work / "a.yaml"), "--results-dir", f"s3://{BUCKET}/runs",
                            "--address", f"127.0.0.1:{PORT}"],
                           capture_output=True, text=True, env=env, timeout=900)  # fmt: skip
        report["search_a_rc"] = a.returncode
        report["search_a_out"] = (a.stdout + a.stderr)[-3000:]
        report["metas_a"] = metas(f"s3://{BUCKET}/runs/s3_cluster_a")
        mark(report, "search a done")

        # 2. kill -9 the driver of a second search mid-way, resume it from the URI
        (work / "b.yaml").write_text(
            SPACE.format(name="s3_cluster_b", trials=5, epochs=4, batch=64)
        )
        b = subprocess.Popen([*cli, "run", str(work / "b.yaml"), "--results-dir", f"s3://{BUCKET}/runs",
                              "--address", f"127.0.0.1:{PORT}"],
                             stdout=open(work / "b.log", "w"), stderr=subprocess.STDOUT, env=env)  # fmt: skip
        deadline = time.monotonic() + 300
        uri_b = f"s3://{BUCKET}/runs/s3_cluster_b"
        while time.monotonic() < deadline and b.poll() is None and rows(uri_b) < 2:
            time.sleep(0.5)
        report["b_rows_at_kill"] = rows(uri_b)
        os.kill(b.pid, signal.SIGKILL)
        # -9: the kill ended a running driver (one that had already exited says 0 or 1)
        report["b_exit_at_kill"] = b.wait()
        report["b_at_kill"] = results(uri_b)  # what the dead driver had recorded
        mark(report, "driver b killed")
        resumed = subprocess.run([*cli, "resume", uri_b, "--address", f"127.0.0.1:{PORT}"],
                                 capture_output=True, text=True, env=env, timeout=900)  # fmt: skip
        report["resume_b_rc"] = resumed.returncode
        report["resume_b_out"] = (resumed.stdout + resumed.stderr)[-3000:]
        report["b_final"] = statuses(uri_b)
        report["b_after"] = results(uri_b)
        mark(report, "b resumed")
    finally:
        for pid in set(find(b"ray")) - before:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        s3.stop()
        shutil.rmtree(worker_tmp, ignore_errors=True)
        shutil.rmtree(head_tmp, ignore_errors=True)
        (work / "scenario.json").write_text(json.dumps(report, indent=2))


def nodes_at(env: dict) -> list[dict]:
    import tests.runner.cluster_scenario as cs

    cs.PORT = PORT  # its helper asks the GCS at its module's PORT
    return nodes(env)


def rows(uri: str) -> int:
    import io

    import pandas as pd

    from growsearch.storage import location

    try:
        return len(pd.read_parquet(io.BytesIO((location(uri) / "trials.parquet").read_bytes())))
    except (OSError, ValueError):
        return 0


def statuses(uri: str) -> dict[str, str]:
    import growsearch

    try:
        df = growsearch.load_results(uri)
    except Exception as e:
        return {"error": str(e)}
    return dict(zip(df["trial_id"], df["status"]))


def results(uri: str) -> dict[str, dict]:
    """Each recorded trial's status and what its training produced (equal only if not re-run)."""
    import growsearch

    try:
        df = growsearch.load_results(uri)
    except Exception as e:
        return {"error": {"status": str(e)}}
    cols = ["status", "val_acc", "train_seconds", "epochs"]
    return df.set_index("trial_id")[cols].to_dict("index")


def metas(uri: str) -> dict[str, dict]:
    """Each trial's lineage and the node it trained on, from its checkpoint on S3."""
    from growsearch.storage import location

    out = {}
    models = location(uri) / "models"
    for name in models.listdir():
        try:
            meta = json.loads((models / name / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        out[name] = {k: meta.get(k) for k in ("trial_id", "parent_id", "node_id", "epoch")}
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
