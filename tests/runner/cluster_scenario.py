"""A 2-node Ray cluster on loopback, run inside a loopback-only network namespace (``unshare -n``).

Usage (as root): ``unshare -n python tests/runner/cluster_scenario.py WORKDIR``. Writes
``WORKDIR/scenario.json`` with what happened; tests/runner/test_cluster.py checks it.

1. start a head node (1 CPU) and a worker node (1 CPU) with ``ray start``;
2. run a search with ``--address``; while a trial runs on the worker node, kill that node
   (its raylet and every process under it, by PID); the search must still complete, with the
   trial that was running there retried from its checkpoint on the head node;
3. run a second search with ``--address``, kill -9 its driver mid-way, ``growsearch resume``
   it with ``--address``; it must complete;
4. stop the cluster (``ray stop`` would also stop other users' Rays: end only our PIDs).
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

PORT = 6390
WORKER_NM_PORT = 46391
SPACE = """
name: {name}
seed: 0
dataset: {{name: mnist1d}}
seed_model: {{family: cnn, stages: [[16], [32]], kernel_size: 5}}
mutations: {{widen: {{factors: [1.5, 2.0], max_width: 48}}, deepen: {{max_layers_per_stage: 3}}}}
controller: {{name: evolution, population: 4, sample: 2}}
training: {{epochs: 10, seed_epochs: 4, batch_size: 64, lr: 0.003}}
budget: {{trials: {trials}}}
resources: {{cpus_per_trial: 1, concurrency: 2}}
"""


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parent: dict[int, int] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
                parent[int(p.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, frontier = [], [pid]
    while frontier:
        cur = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == cur]
        out += kids
        frontier += kids
    return out


OUR_NETNS = os.readlink("/proc/self/ns/net")


def find(pattern: bytes) -> list[int]:
    """Processes with ``pattern`` in their command line, in this network namespace only:
    ``unshare -n`` isolates the network, not the process table, so without this check the
    clean-up below could end other people's Ray processes on the same machine."""
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (
                    pattern in (p / "cmdline").read_bytes()
                    and os.readlink(p / "ns" / "net") == OUR_NETNS
                ):
                    found.append(int(p.name))
            except OSError:
                continue
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


NODES = """
import json, ray
ray.init(address="127.0.0.1:{port}", logging_level="ERROR", log_to_driver=False)
print(json.dumps([{{"id": n["NodeID"], "alive": n["Alive"], "port": n["NodeManagerPort"]}} for n in ray.nodes()]))
"""


def nodes(env: dict) -> list[dict]:
    """The cluster's nodes as the GCS sees them (id, alive, node-manager port)."""
    done = sh([sys.executable, "-c", NODES.format(port=PORT)], env=env)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return [{"error": done.stderr[-500:]}]


def results(run_dir: Path) -> dict[str, dict]:
    """Each recorded trial's status and what its training produced (equal only if not re-run)."""
    import growsearch

    try:
        df = growsearch.load_results(run_dir)
    except Exception as e:
        return {"error": {"status": str(e)}}
    cols = ["status", "val_acc", "train_seconds", "epochs"]
    return df.set_index("trial_id")[cols].to_dict("index")


def mark(report: dict, phase: str) -> None:
    """Seconds since the scenario started, per phase: where a slow run spent its time."""
    report.setdefault("t", {})[phase] = round(time.monotonic() - T0, 1)


T0 = time.monotonic()


def main(work: Path) -> None:
    # Inside this namespace only loopback exists, so a multi-node Ray can only be reached from
    # this machine; RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 would refuse the second node. A token of
    # our own keeps auth on without racing other Rays on this machine over ~/.ray/auth_token.
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "10",
           "RAY_health_check_initial_delay_ms": "1000"}  # fmt: skip
    os.environ.update(env)
    report: dict = {"steps": []}
    sh(["ip", "link", "set", "lo", "up"])
    ray = str(Path(sys.executable).with_name("ray"))
    cli = [sys.executable, "-m", "growsearch.cli"]
    before = set(find(b"ray"))
    # the cluster's Ray session (its worker node uses the head's): a short path of its own, as
    # Ray's socket paths must fit 107 bytes and pytest's folders (per xdist worker) are long
    ray_tmp = tempfile.mkdtemp(prefix="gsc")
    head = sh([ray, "start", "--head", f"--port={PORT}", "--num-cpus=1", "--include-dashboard=false",
               "--node-ip-address=127.0.0.1", f"--temp-dir={ray_tmp}"], env=env)  # fmt: skip
    report["steps"].append(["head", head.returncode, head.stderr[-500:]])
    worker = sh([ray, "start", f"--address=127.0.0.1:{PORT}", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                 f"--node-manager-port={WORKER_NM_PORT}"], env=env)  # fmt: skip
    report["steps"].append(["worker", worker.returncode, worker.stderr[-500:]])
    mark(report, "nodes started")
    ours = set(find(b"ray")) - before
    try:
        worker_raylet = [
            p
            for p in find(f"--node_manager_port={WORKER_NM_PORT}".encode())
            if b"raylet" in cmdline(p)
        ]
        report["worker_raylet"] = worker_raylet
        # the worker node must be registered and alive before the search starts
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            report["nodes_before"] = nodes(env)
            alive = [
                n
                for n in report["nodes_before"]
                if n.get("alive") and n.get("port") == WORKER_NM_PORT
            ]
            if alive:
                break
            time.sleep(1)
        worker_node = alive[0]["id"] if alive else None
        mark(report, "worker alive")
        # 1. kill the worker node in the middle of a trial
        (work / "a.yaml").write_text(SPACE.format(name="cluster_a", trials=4))
        log_a = open(work / "a.log", "w")
        search = subprocess.Popen([*cli, "run", str(work / "a.yaml"), "--results-dir", str(work / "runs"),
                                   "--address", f"127.0.0.1:{PORT}", "--retries", "2"],
                                  stdout=log_a, stderr=subprocess.STDOUT, env=env)  # fmt: skip
        killed_during = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and search.poll() is None and worker_raylet:
            under = set(children(worker_raylet[0]))
            mid_trial = []
            for meta_file in (work / "runs" / "cluster_a" / "models").glob("t*/meta.json"):
                try:
                    meta = json.loads(meta_file.read_text())
                except (OSError, ValueError):
                    continue
                planned = meta["metrics"]["epochs_planned"]
                on_worker = meta.get("pid") in under or (
                    worker_node and meta.get("node_id") == worker_node
                )
                if on_worker and 2 <= meta["epoch"] <= planned - 3:
                    mid_trial.append(meta["trial_id"])
            if mid_trial:  # a trial on the worker node has checkpointed and has epochs to go
                victims = [worker_raylet[0], *children(worker_raylet[0])]
                for pid in victims:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                killed_during = {"victims": victims, "trials": mid_trial}
                break
            time.sleep(0.2)
        report["killed"] = killed_during
        mark(report, "worker killed")
        report["search_a_rc"] = search.wait(timeout=600)
        mark(report, "search a done")
        if killed_during is None:  # say why: where each trial ran, and whether the node was alive
            report["nodes_after"] = nodes(env)
            report["trial_nodes"] = {
                f.parent.name: json.loads(f.read_text()).get("node_id")
                for f in (work / "runs" / "cluster_a" / "models").glob("t*/meta.json")
            }
        # 2. kill -9 the driver of a second search, then resume it on the same cluster
        (work / "b.yaml").write_text(SPACE.format(name="cluster_b", trials=3))
        search = subprocess.Popen([*cli, "run", str(work / "b.yaml"), "--results-dir", str(work / "runs"),
                                   "--address", f"127.0.0.1:{PORT}"],
                                  stdout=open(work / "b.log", "w"), stderr=subprocess.STDOUT, env=env)  # fmt: skip
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and search.poll() is None:
            if (work / "runs" / "cluster_b" / "trials.parquet").exists():
                break
            time.sleep(0.2)
        os.kill(search.pid, signal.SIGKILL)
        # -9: the kill ended a running driver (one that had already exited says 0 or 1)
        report["b_exit_at_kill"] = search.wait()
        report["b_at_kill"] = results(work / "runs" / "cluster_b")  # what it had recorded
        mark(report, "driver b killed")
        resumed = sh(
            [*cli, "resume", str(work / "runs" / "cluster_b"), "--address", f"127.0.0.1:{PORT}"],
            env=env,
        )
        report["resume_b_rc"] = resumed.returncode
        report["resume_b_err"] = resumed.stderr[-1000:]
        mark(report, "b resumed")
    finally:
        leftover = (set(find(b"ray")) - before) | ours
        for pid in leftover:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(ray_tmp, ignore_errors=True)
        (work / "scenario.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
