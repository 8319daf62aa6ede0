"""Throughput of a search: trials per hour at concurrency 1 and 2 on this machine, and on a 2-node
Ray cluster on loopback (1 CPU per node, in a loopback-only network namespace, ``unshare -n``).

The same search space (``benchmarks/search_spaces/scaling_mnist1d.yaml``: aging evolution with
warm start, N trials of a small MNIST-1D CNN) runs as three arms, each in a fresh process and in a
rotating order over the repeats:

* ``local-c1``  — a local Ray with 2 CPUs, ``resources.concurrency: 1``;
* ``local-c2``  — the same, ``resources.concurrency: 2``;
* ``cluster-c2``— a head node and a worker node (``ray start``, 1 CPU each) on 127.0.0.1 inside
                  ``unshare -n``, the search connected to it, ``resources.concurrency: 2``.

In every arm Ray is started (or connected to) *before* ``run_search`` and timed apart, so the
search's wall time is the same quantity everywhere: scheduling + the trials. Trials per hour =
trials / that wall time; speed-ups are ratios of medians measured in the same run (the median of
the per-repeat ratios is given too). The end-to-end figure (Ray / cluster start-up included) is
reported apart.

    .venv/bin/python benchmarks/scaling.py            # full: 8 trials, 2 repeats per arm
    .venv/bin/python benchmarks/scaling.py --quick    # smoke: 3 trials of 2 epochs, 1 repeat

On a GPU machine: ``--gpus-per-trial 0.5`` (fractional: two trials share a GPU; sets
``resources.gpus_per_trial``), ``--device cuda`` (fail unless every trial really trained on CUDA,
as recorded in its ``device`` column), ``--amp bf16|fp16|off|auto`` (``training.amp``) and
``--ray-gpus N`` (GPUs the local Ray declares; default: what Ray detects). The cluster arm is
skipped when trials ask for GPUs. A CPU-only smoke test of the GPU path (logical GPUs, trials fall
back to the CPU): ``--quick --arms local-c2 --ray-gpus 1 --gpus-per-trial 0.5 --device cpu``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import ForeignCPU, wait_idle  # benchmarks/_machine.py (run as a script)

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "benchmarks" / "search_spaces" / "scaling_mnist1d.yaml"
ARMS = ("local-c1", "local-c2", "cluster-c2")
PORT = 6391


# ---- one arm, in its own process ---------------------------------------------------------------
def _same_netns_pids() -> list[int]:
    """Every process in this process's network namespace (created by our ``unshare -n``)."""
    mine = os.readlink("/proc/self/ns/net")
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                if os.readlink(p / "ns/net") == mine:
                    pids.append(int(p.name))
            except OSError:
                continue
    return pids


def _start_cluster(work: Path, env: dict) -> float:
    ray_cli = str(Path(sys.executable).with_name("ray"))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    t0 = time.perf_counter()
    head = subprocess.run(
        [ray_cli, "start", "--head", f"--port={PORT}", "--num-cpus=1", "--include-dashboard=false",
         "--node-ip-address=127.0.0.1", f"--temp-dir={work / 'ray'}"],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    worker = subprocess.run(
        [ray_cli, "start", f"--address=127.0.0.1:{PORT}", "--num-cpus=1",
         "--node-ip-address=127.0.0.1", "--node-manager-port=46392"],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    if head.returncode or worker.returncode:
        raise RuntimeError(f"ray start failed: {head.stderr[-800:]} {worker.stderr[-800:]}")
    return seconds


def run_arm(arm: str, trials: int, epochs: int, out_json: Path, gpu: dict | None = None) -> None:
    gpu = gpu or {}
    work = Path(tempfile.mkdtemp(prefix=f"gs-scaling-{arm}-"))
    info: dict = {"arm": arm}
    cluster = arm.startswith("cluster")
    if cluster:
        if os.readlink("/proc/self/ns/net") == os.environ.get("GS_BENCH_PARENT_NETNS"):
            raise SystemExit(
                "the cluster arm must run inside its own network namespace (unshare -n)"
            )
        # as tests/runner/cluster_scenario.py: a second node needs this inside the namespace, and a
        # token of our own keeps auth on without touching ~/.ray/auth_token
        env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1", "RAY_USAGE_STATS_ENABLED": "0",
               "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # fmt: skip
        os.environ.update(env)
        info["cluster_start_s"] = _start_cluster(work, dict(os.environ))
    try:
        # growsearch sets its loopback-only Ray default: import it before ray
        import growsearch  # noqa: I001
        import ray

        concurrency = 1 if arm.endswith("c1") else 2
        overrides = {"budget.trials": trials, "training.epochs": epochs,
                     "training.seed_epochs": epochs, "resources.concurrency": concurrency,
                     "resources.gpus_per_trial": gpu.get("gpus_per_trial", 0.0)}  # fmt: skip
        if gpu.get("amp"):
            overrides["training.amp"] = gpu["amp"]
        space = growsearch.load_space(SPACE, overrides)
        kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        t0 = time.perf_counter()
        if cluster:
            ray.init(address=f"127.0.0.1:{PORT}", **kwargs)
        else:
            ray_gpus = gpu.get("ray_gpus")
            ray.init(num_cpus=2, **({} if ray_gpus is None else {"num_gpus": ray_gpus}), **kwargs)
        info["ray_start_s"] = time.perf_counter() - t0
        info["nodes"] = sum(1 for n in ray.nodes() if n["Alive"])
        info["cpus"] = ray.cluster_resources().get("CPU", 0)
        info["gpus"] = ray.cluster_resources().get("GPU", 0)
        t0 = time.perf_counter()
        df = growsearch.run(space, name="run", results_dir=work, progress=False).trials
        info["search_s"] = time.perf_counter() - t0
        ray.shutdown()
        info["trials"] = int((df["status"] == "completed").sum())
        info["failed"] = int((df["status"] == "failed").sum())
        info["train_seconds_sum"] = float(df["train_seconds"].sum())
        info["params_mean"] = float(df["params"].mean())
        info["best_test_acc"] = float(df["test_acc"].max())
        seed = df[df["parent_id"].isna()]
        info["seed_train_seconds"] = float(seed["train_seconds"].sum())
        info["concurrency"] = concurrency
        info["gpus_per_trial"] = float(space.resources.gpus_per_trial)
        info["device"] = ",".join(sorted(set(df["device"].dropna().astype(str))))
        info["precision"] = ",".join(sorted(set(df["precision"].dropna().astype(str))))
        want = gpu.get("device", "auto")
        if want != "auto" and info["device"] != want:
            raise SystemExit(f"--device {want}: the trials trained on {info['device'] or '?'}")
    finally:
        if cluster:
            for pid in _same_netns_pids():  # only our namespace's processes: our cluster
                if pid in (os.getpid(), os.getppid()):
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    out_json.write_text(json.dumps(info))


# ---- the benchmark -----------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="smoke mode: 3 trials × 2 epochs, 1 repeat"
    )
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=15, help="epochs of every trial")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--out", default=str(ROOT / "results" / "scaling"))
    ap.add_argument("--no-wait", action="store_true", help="do not wait for net2net_replication")
    ap.add_argument(
        "--gpus-per-trial",
        type=float,
        default=0.0,
        help="resources.gpus_per_trial (0.5: 2 per GPU)",
    )
    ap.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto",
        help="require every trial to have trained on this device (recorded per trial)",
    )  # fmt: skip
    ap.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), help="training.amp")
    ap.add_argument("--ray-gpus", type=float, help="GPUs the local Ray declares (default: detect)")
    ap.add_argument("--_arm", help=argparse.SUPPRESS)
    ap.add_argument("--_json", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.trials, args.epochs, args.repeats = 3, 2, 1
        if args.out == str(ROOT / "results" / "scaling"):
            args.out = str(ROOT / "results" / "scaling_quick")
    gpu = {"gpus_per_trial": args.gpus_per_trial, "device": args.device, "amp": args.amp,
           "ray_gpus": args.ray_gpus}  # fmt: skip
    if args._arm:
        run_arm(args._arm, args.trials, args.epochs, Path(args._json), gpu)
        return
    command = (
        "cd "
        + str(ROOT)
        + " && .venv/bin/python "
        + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    )
    arms = [a for a in args.arms.split(",") if a]
    if "cluster-c2" in arms and (os.geteuid() != 0 or not Path("/usr/bin/unshare").exists()):
        print("[scaling] no root or no unshare: the cluster arm is skipped", flush=True)
        arms.remove("cluster-c2")
    if "cluster-c2" in arms and args.gpus_per_trial > 0:
        print("[scaling] trials ask for GPUs: the loopback cluster arm is skipped", flush=True)
        arms.remove("cluster-c2")
    idle = (
        {"waited_s": 0.0, "idle_cores_at_start": float("nan")}
        if (args.quick or args.no_wait)
        else wait_idle("scaling")
    )
    monitor = ForeignCPU()

    import pandas as pd

    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="gs-scaling-"))
    for r in range(args.repeats):
        order = arms[r % len(arms) :] + arms[: r % len(arms)]
        for arm in order:
            print(f"[scaling] repeat {r + 1}/{args.repeats}: {arm}", flush=True)
            out_json = tmp / f"{arm}-{r}.json"
            cmd = [sys.executable, __file__, "--_arm", arm, "--_json", str(out_json),
                   "--trials", str(args.trials), "--epochs", str(args.epochs),
                   "--gpus-per-trial", str(args.gpus_per_trial), "--device", args.device]  # fmt: skip
            if args.amp:
                cmd += ["--amp", args.amp]
            if args.ray_gpus is not None:
                cmd += ["--ray-gpus", str(args.ray_gpus)]
            if arm.startswith("cluster"):
                cmd = ["unshare", "-n", *cmd]
            env = {**os.environ, "GS_BENCH_PARENT_NETNS": os.readlink("/proc/self/ns/net")}
            t0 = time.perf_counter()
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env
            )
            wall = time.perf_counter() - t0
            if done.returncode or not out_json.exists():
                print(done.stdout[-2000:], done.stderr[-4000:], flush=True)
                raise SystemExit(f"[scaling] arm {arm} failed (rc {done.returncode})")
            row = json.loads(out_json.read_text())
            rows.append({"repeat": r, **row, "process_wall_s": wall})
            print(f"[scaling]   {row}", flush=True)
    foreign = monitor.stop()
    df = pd.DataFrame(rows)
    df["trials_per_hour"] = df["trials"] / df["search_s"] * 3600
    if "cluster_start_s" not in df:
        df["cluster_start_s"] = 0.0
    df["e2e_s"] = df["search_s"] + df["ray_start_s"] + df["cluster_start_s"].fillna(0.0)
    df["trials_per_hour_e2e"] = df["trials"] / df["e2e_s"] * 3600
    df["busy_fraction"] = df["train_seconds_sum"] / (df["search_s"] * df["concurrency"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out.with_suffix(".csv"), index=False)

    def med(arm: str, col: str) -> float:
        return float(df.loc[df.arm == arm, col].median())

    base = "local-c1"
    md = [
        "# Search throughput: concurrency 1 vs 2, and a 2-node Ray cluster",
        "",
        f"Command: `{command}`",
        "",
        f"Search: `{os.path.relpath(SPACE, ROOT)}` — aging evolution with warm start, {args.trials} "
        f"trials of {args.epochs} epochs each (MNIST-1D, 1-D CNN from [[32],[64]], widths ≤ 96), "
        f"1 CPU and {args.gpus_per_trial:g} GPU per trial (trials trained on "
        f"{', '.join(sorted(set(df['device'].astype(str))))}, precision "
        f"{', '.join(sorted(set(df['precision'].astype(str))))}). Machine: {os.cpu_count()} CPU cores. {args.repeats} repeat(s) per arm, "
        f"each arm a fresh process, arms in a rotating order; medians. Waited {idle['waited_s']:.0f} s "
        f"for other work to end; other processes used {foreign['foreign_cores']:.2f} cores on "
        f"average during the run ({foreign['foreign_top'] or 'nothing notable'}). `search s` is the wall time of `run_search` with Ray already "
        "up; `e2e s` adds Ray start-up (for the cluster: `ray start` of both nodes + connect).",
        "",
        "| arm | nodes × CPUs | trials done | search s | trials/hour | speed-up vs local-c1 (ratio of medians) | (median of paired ratios) | e2e s | trials/hour e2e | Σ train_seconds | busy fraction |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arm in [a for a in ARMS if a in arms]:
        sub = df[df.arm == arm]
        paired = (
            df[df.arm == arm].set_index("repeat")["trials_per_hour"]
            / df[df.arm == base].set_index("repeat")["trials_per_hour"]
        ).median() if base in arms else float("nan")  # fmt: skip
        md.append(
            f"| {arm} | {int(sub['nodes'].iloc[0])} × {sub['cpus'].iloc[0] / sub['nodes'].iloc[0]:g} "
            f"| {sub['trials'].median():g} | {med(arm, 'search_s'):.1f} | {med(arm, 'trials_per_hour'):.0f} "
            f"| {med(arm, 'trials_per_hour') / med(base, 'trials_per_hour'):.2f} | {paired:.2f} "
            f"| {med(arm, 'e2e_s'):.1f} | {med(arm, 'trials_per_hour_e2e'):.0f} "
            f"| {med(arm, 'train_seconds_sum'):.1f} | {med(arm, 'busy_fraction'):.2f} |"
        )
    seed_s = float(df["seed_train_seconds"].median())
    md += [
        "",
        "`busy fraction` = Σ train_seconds / (search s × concurrency): the share of the slots' time "
        "spent between a trial's first training step and its last epoch's metrics. The seed "
        f"trial (~{seed_s:.1f} s of training) runs alone at any concurrency (every other trial "
        "grows from a finished one), which bounds the speed-up of this search below 2.",
        "",
        "Raw rows: `" + os.path.relpath(out.with_suffix(".csv"), ROOT) + "`.",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    shown = [a for a in ARMS if a in arms]
    for i, arm in enumerate(shown):
        ax.bar(
            i,
            med(arm, "trials_per_hour"),
            color="#59a",
            label="search (Ray up)" if i == 0 else None,
        )
        ax.bar(i, med(arm, "trials_per_hour_e2e"), width=0.4, color="#c63",
               label="end to end (Ray start-up incl.)" if i == 0 else None)  # fmt: skip
        ax.plot([i] * (df.arm == arm).sum(), df.loc[df.arm == arm, "trials_per_hour"], "k.", ms=5)
    ax.set_xticks(range(len(shown)), shown)
    ax.set_ylabel("trials per hour (median; dots: repeats)")
    ax.set_title(f"{args.trials} trials × {args.epochs} epochs, {os.cpu_count()}-core machine")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    main()
