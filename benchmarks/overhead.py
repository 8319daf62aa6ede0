"""Overhead of growsearch on one trial, against a bare PyTorch loop on the same model, data and steps.

Every repeat runs, in a rotating order (so slow drifts of the machine hit every variant alike):

* ``bare``      — a plain PyTorch loop written here (no growsearch.train): the same model
                  (``growsearch.arch.build`` of the same spec and seed), the same Adam + cosine
                  schedule, the same batch size, the same number of optimizer steps, one thread;
* ``bare+val``  — the same loop plus a validation pass after each epoch (what any training loop
                  that reports a metric per epoch does);
* ``bare_fresh``— the ``bare`` loop in a fresh Python process (``_bare_fresh.py``), like the first
                  trial of a fresh Ray worker: its loop (first step → last step), and apart, its
                  set-up (data load, model build, optimizer construction — where a process's first
                  optimizer imports ``torch._dynamo``) and its first epoch vs the later ones;
* ``inproc``    — ``growsearch.train.train`` with an ``on_epoch`` that does what the trainable does
                  per epoch except ``tune.report``: the two checkpoint writes (run folder + Tune's
                  temporary checkpoint), and the test-set evaluation at the last epoch, each timed;
* ``run_search``— a real ``growsearch.run`` of a one-trial search (local Ray started and shut
                  down by it): the trial time is Ray's ``time_total_s`` (last line of the trial's
                  ``result.json``), ``train_seconds`` comes from ``trials.parquet``, and the
                  end-to-end wall time of the call (Ray start-up included) is reported apart;
* ``cli``       — ``growsearch run`` launched as a subprocess: launch → first training step of the
                  first trial (``first_step_unix`` in ``models/t0000/meta.json``) and end to end.

Before the repeats, one epoch of the bare loop on each architecture warms this process up (torch's
first-use costs: the first optimizer's import of ``torch._dynamo``, oneDNN primitives...), so
``bare`` is a warm process's loop in every repeat and ``bare_fresh`` a cold one's.

The result is the median of each over the repeats, and the ratios of medians (also the median of
the per-repeat ratios), all measured side by side in the same run.

    .venv/bin/python benchmarks/overhead.py            # full: 15 epochs (~7 s trial), 3 repeats
    .venv/bin/python benchmarks/overhead.py --quick    # smoke: 2 epochs, 1 repeat
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import ForeignCPU, wait_idle  # benchmarks/_machine.py (run as a script)

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "benchmarks" / "search_spaces" / "overhead_mnist1d.yaml"
VENV_BIN = Path(sys.executable).parent


# ---- the bare loop ---------------------------------------------------------------------------
def bare_loop(spec, data, epochs: int, batch_size: int, lr: float, seed: int, val: bool) -> dict:
    import torch
    import torch.nn.functional as F

    from growsearch.arch import build

    t_setup = time.perf_counter()
    torch.manual_seed(seed)
    model = build(spec, seed=seed)
    t_opt = time.perf_counter()
    # the first optimizer of a process imports torch._dynamo (torch.optim's @_disable_dynamo
    # methods import it lazily): ~1 s in a fresh process, ~0 in a warm one
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    opt_s = time.perf_counter() - t_opt
    n = len(data.train)
    steps_per_epoch = n // batch_size
    total = epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = data.train.x, data.train.y
    step = 0
    epoch_s = []
    t0 = time.perf_counter()
    setup_s = t0 - t_setup
    for _ in range(epochs):
        t_epoch = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen)
        for b in range(steps_per_epoch):
            idx = order[b * batch_size : (b + 1) * batch_size]
            for g in opt.param_groups:
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        if val:
            model.eval()
            with torch.no_grad():
                acc = (model(data.val.x).argmax(1) == data.val.y).float().mean().item()
        epoch_s.append(time.perf_counter() - t_epoch)
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        acc = (model(data.test.x).argmax(1) == data.test.y).float().mean().item()
    return {
        "seconds": seconds,  # first step → last step
        "setup_s": setup_s,  # model build + optimizer construction, before the first step
        "opt_s": opt_s,
        "first_epoch_s": epoch_s[0],
        "later_epoch_median_s": statistics.median(epoch_s[1:]) if len(epoch_s) > 1 else math.nan,
        "steps": step,
        "test_acc": acc,
    }


# ---- growsearch's training loop with the trainable's per-epoch work, without Ray -------------------
def inproc(spec, data, epochs: int, batch_size: int, lr: float, seed: int, ck_dir: Path) -> dict:
    from growsearch.arch import build
    from growsearch.checkpoint import save_checkpoint
    from growsearch.train import TrainConfig, evaluate, train

    model = build(spec, seed=seed)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, device="cpu", seed=seed)
    parts = {"test_eval": 0.0, "ckpt_run_dir": 0.0, "ckpt_tune_tmp": 0.0}
    val_time = []

    def on_epoch(res, model, optimizer):
        test_acc = None
        if res.epoch == epochs:  # as the trainable since 3bb89ee: the test set once, at the end
            t = time.perf_counter()
            _, test_acc = evaluate(model, data.test, device="cpu")
            parts["test_eval"] += time.perf_counter() - t
        meta = {"epoch": res.epoch, "metrics": {"val_acc": res.val_acc, "test_acc": test_acc}}
        t = time.perf_counter()
        save_checkpoint(ck_dir / "own", spec, model, optimizer_state=optimizer.state_dict(),
                        meta=meta, overwrite=True)  # fmt: skip
        parts["ckpt_run_dir"] += time.perf_counter() - t
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(Path(tmp) / "ck", spec, model, optimizer_state=optimizer.state_dict(),
                            meta=meta)  # fmt: skip
        parts["ckpt_tune_tmp"] += time.perf_counter() - t

    # time the val pass separately, on the same model size, to split it out of train()'s epochs
    t0 = time.perf_counter()
    train(model, data, cfg, on_epoch=on_epoch)
    seconds = time.perf_counter() - t0
    for _ in range(epochs):
        t = time.perf_counter()
        evaluate(model, data.val, device="cpu")
        val_time.append(time.perf_counter() - t)
    return {"seconds": seconds, "val_eval": sum(val_time), **parts}


# ---- growsearch: run_search (in process) and the CLI (subprocess) ----------------------------
def _ray_result(run_dir: Path, trial: str = "t0000") -> dict:
    for f in sorted((run_dir / "ray").glob("search-*/trial_*/result.json")):
        lines = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        if lines and lines[-1]["config"]["proposal"]["trial_id"] == trial:
            break
    else:
        raise RuntimeError(f"{run_dir}: no Ray result for {trial}")
    last = lines[-1]
    iters = [r["time_this_iter_s"] for r in lines]
    # the trainable's own clock: train_seconds runs from just before growsearch.train() (so the
    # first epoch includes the optimizer's construction) to each epoch's report
    marks = [0.0] + [float(r["train_seconds"]) for r in lines]
    epochs = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    return {
        "ray_time_total_s": float(last["time_total_s"]),
        "ray_first_iter_s": float(iters[0]),
        "ray_iter_median_s": float(statistics.median(iters[1:])) if len(iters) > 1 else math.nan,
        "trial_first_epoch_s": epochs[0],
        "trial_later_epoch_median_s": statistics.median(epochs[1:] or [math.nan]),
        "ray_iters": len(iters),
        "pid": last["pid"],
    }


def gs_run_search(overrides: dict, run_dir: Path) -> dict:
    import growsearch

    space = growsearch.load_space(SPACE, {**overrides, "budget.trials": 2})
    t0 = time.perf_counter()
    df = growsearch.run(space, name=run_dir.name, results_dir=run_dir.parent, progress=False).trials
    wall = time.perf_counter() - t0
    df = df.set_index("trial_id")
    assert (df["status"] == "completed").all(), df.to_dict()
    first, second = _ray_result(run_dir, "t0000"), _ray_result(run_dir, "t0001")
    return {
        "e2e_s": wall,
        "train_seconds": float(df.loc["t0000", "train_seconds"]),
        "test_acc": float(df.loc["t0000", "test_acc"]),
        **first,
        "child_arch": df.loc["t0001", "arch_summary"],
        "child_train_seconds": float(df.loc["t0001", "train_seconds"]),
        "child_ray_time_total_s": second["ray_time_total_s"],
        "child_ray_first_iter_s": second["ray_first_iter_s"],
        "child_same_worker": second["pid"] == first["pid"],
    }


def gs_cli(epochs: int, run_dir: Path, log: Path) -> dict:
    cmd = [str(VENV_BIN / "growsearch"), "run", str(SPACE), "--name", run_dir.name,
           "--results-dir", str(run_dir.parent), "--trials", "1", "--concurrency", "1"]  # fmt: skip
    # seed_epochs has no CLI flag: a copy of the space with it set
    text = SPACE.read_text().replace("seed_epochs: 8", f"seed_epochs: {epochs}")
    space_copy = run_dir.parent / f"{run_dir.name}.yaml"
    space_copy.write_text(text)
    cmd[2] = str(space_copy)
    t_launch = time.time()
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"growsearch run failed (rc {rc}); see {log}")
    meta = json.loads((run_dir / "models" / "t0000" / "meta.json").read_text())
    m = meta["metrics"]
    return {
        "e2e_s": wall,
        "launch_to_first_step_s": m["first_step_unix"] - t_launch,
        "train_seconds": float(m["train_seconds"]),
        **_ray_result(run_dir),
    }


def bare_fresh(epochs: int) -> dict:
    """The bare loop in a fresh Python process (``_bare_fresh.py``), as a fresh Ray worker's."""
    script = Path(__file__).with_name("_bare_fresh.py")
    out = subprocess.run([sys.executable, str(script), str(SPACE), str(epochs)],
                         capture_output=True, text=True, check=True, cwd=ROOT)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_dataload(name: str) -> float:
    """Seconds ``load_dataset(name)`` takes in a fresh process (as in a new Ray worker)."""
    code = ("import time; from growsearch.data import load_dataset; t = time.perf_counter(); "
            f"load_dataset({name!r}); print(time.perf_counter() - t)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# ---- the benchmark ---------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke mode: 2 epochs, 1 repeat")
    ap.add_argument(
        "--epochs", type=int, default=15, help="training epochs of a trial (~0.47 s each)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "results" / "overhead"),
                    help="output prefix (writes PREFIX.csv/.png/.md)")  # fmt: skip
    ap.add_argument("--no-wait", action="store_true", help="do not wait for net2net_replication")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.repeats = 2, 1
        if args.out == str(ROOT / "results" / "overhead"):
            args.out = str(ROOT / "results" / "overhead_quick")
    command = (
        "cd "
        + str(ROOT)
        + " && .venv/bin/python "
        + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]])
    )
    idle = (
        {"waited_s": 0.0, "idle_cores_at_start": float("nan")}
        if (args.quick or args.no_wait)
        else wait_idle("overhead")
    )
    monitor = ForeignCPU()

    import pandas as pd
    import torch

    torch.set_num_threads(1)  # as the trainable (cpus_per_trial: 1)
    from growsearch.data import load_dataset
    from growsearch.space import load_space

    overrides = {"training.seed_epochs": args.epochs, "training.epochs": args.epochs}
    space = load_space(SPACE, overrides)
    spec, tr = space.seed_arch, space.training
    data = load_dataset(space.dataset.name)
    seed = int(space.seed) * 100_003  # the trainable's seed of trial index 0
    work = Path(tempfile.mkdtemp(prefix="gs-overhead-"))
    from growsearch.arch import Widen

    child_spec = spec.apply(Widen("s0l0", 2 * spec.layers[0].width))  # run_search's 2nd trial
    kinds = ["bare", "bare+val", "inproc", "run_search", "bare_child", "cli", "dataload"]
    kinds.append("bare_fresh")
    # warm this process up first (the first optimizer imports torch._dynamo, the first
    # convolutions of each shape create their oneDNN primitives...), so that "bare" is the loop
    # of a warm process from the first repeat on; "bare_fresh" is the cold one
    for arch in (spec, child_spec):
        bare_loop(arch, data, 1, tr.batch_size, tr.lr, seed, True)
    rows = []
    for r in range(args.repeats):
        order = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
        for kind in order:
            print(f"[overhead] repeat {r + 1}/{args.repeats}: {kind}", flush=True)
            if kind in ("bare", "bare+val"):
                res = bare_loop(
                    spec, data, args.epochs, tr.batch_size, tr.lr, seed, kind == "bare+val"
                )
            elif kind == "bare_child":
                res = bare_loop(
                    child_spec, data, args.epochs, tr.batch_size, tr.lr, seed + 1, False
                )
            elif kind == "bare_fresh":
                res = bare_fresh(args.epochs)
            elif kind == "dataload":
                res = {"seconds": fresh_dataload(space.dataset.name)}
            elif kind == "inproc":
                res = inproc(spec, data, args.epochs, tr.batch_size, tr.lr, seed, work / f"ip{r}")
            elif kind == "run_search":
                res = gs_run_search(overrides, work / f"rs{r}")
                if res["child_arch"] != child_spec.summary():  # bare_child must be its twin
                    raise SystemExit(
                        f"overhead: the search's 2nd trial is {res['child_arch']}, not "
                        f"{child_spec.summary()}: fix the space so that child is its only one"
                    )
            else:
                res = gs_cli(args.epochs, work / f"cli{r}", work / f"cli{r}.log")
            rows.append({"repeat": r, "kind": kind, "order": order.index(kind), **res})
            time.sleep(1.0)  # let Ray's processes go away before the next timing
    foreign = monitor.stop()
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out.with_suffix(".csv"), index=False)

    # ---- summary ---------------------------------------------------------------------------
    def med(kind: str, col: str) -> float:
        return float(df.loc[df.kind == kind, col].median())

    def paired(kind_a: str, col_a: str, kind_b: str = "bare", col_b: str = "seconds") -> float:
        a = df[df.kind == kind_a].set_index("repeat")[col_a]
        b = df[df.kind == kind_b].set_index("repeat")[col_b]
        return float((a / b).median())

    bare = med("bare", "seconds")
    lines = [
        ("bare PyTorch loop (train steps only)", med("bare", "seconds")),
        ("bare loop + val eval per epoch", med("bare+val", "seconds")),
        ("bare loop in a fresh process: first step → last step", med("bare_fresh", "seconds")),
        ("bare loop in a fresh process: data + model + optimizer + loop (a trial's window)", med("bare_fresh", "total_s")),
        ("growsearch train() + 2 checkpoint writes per epoch + final test eval (no Ray)", med("inproc", "seconds")),
        ("run_search: trial train_seconds (from the growsearch.train call, optimizer construction included, to the last epoch's metrics)", med("run_search", "train_seconds")),
        ("run_search: Ray trial time_total_s", med("run_search", "ray_time_total_s")),
        ("bare PyTorch loop, child arch (2nd trial's)", med("bare_child", "seconds")),
        ("run_search: 2nd trial (reused worker) Ray time_total_s", med("run_search", "child_ray_time_total_s")),
        ("run_search: end to end, 2 trials (Ray start-up and shutdown included)", med("run_search", "e2e_s")),
        ("CLI `growsearch run`: Ray trial time_total_s", med("cli", "ray_time_total_s")),
        ("CLI `growsearch run`: launch → first training step", med("cli", "launch_to_first_step_s")),
        ("CLI `growsearch run`: end to end", med("cli", "e2e_s")),
    ]  # fmt: skip
    paired_ratio = {
        "bare loop + val eval per epoch": paired("bare+val", "seconds"),
        "bare loop in a fresh process: first step → last step": paired("bare_fresh", "seconds"),
        "bare loop in a fresh process: data + model + optimizer + loop (a trial's window)": paired("bare_fresh", "total_s"),
        "growsearch train() + 2 checkpoint writes per epoch + final test eval (no Ray)": paired("inproc", "seconds"),
        "run_search: trial train_seconds (from the growsearch.train call, optimizer construction included, to the last epoch's metrics)": paired("run_search", "train_seconds"),
        "run_search: Ray trial time_total_s": paired("run_search", "ray_time_total_s"),
        "run_search: 2nd trial (reused worker) Ray time_total_s": paired("run_search", "child_ray_time_total_s", "bare_child"),
        "CLI `growsearch run`: Ray trial time_total_s": paired("cli", "ray_time_total_s"),
        "CLI `growsearch run`: end to end": paired("cli", "e2e_s"),
    }  # fmt: skip
    trial = med("run_search", "ray_time_total_s")
    trial_ratio = trial / bare
    fresh_loop, fresh_total = med("bare_fresh", "seconds"), med("bare_fresh", "total_s")
    fresh_ratio, fresh_total_ratio = trial / fresh_loop, trial / fresh_total
    child_ratio = med("run_search", "child_ray_time_total_s") / med("bare_child", "seconds")
    # where the time goes, per trial (medians)
    ip = df[df.kind == "inproc"]
    per_epoch_bare = bare / args.epochs
    breakdown = [
        ("validation pass, per epoch (inside growsearch.train)", float(ip["val_eval"].median()) / args.epochs),
        ("test-set evaluation, once per trial (at the last epoch)", float(ip["test_eval"].median())),
        ("checkpoint write to run_dir/models, per epoch", float(ip["ckpt_run_dir"].median()) / args.epochs),
        ("checkpoint write to a temp dir for tune.report, per epoch", float(ip["ckpt_tune_tmp"].median()) / args.epochs),
        ("Ray iteration (epoch) time, median of epochs 2..E", med("run_search", "ray_iter_median_s")),
        ("bare loop, per epoch", per_epoch_bare),
        ("Ray first iteration (trial set-up + epoch 1)", med("run_search", "ray_first_iter_s")),
        ("trial (fresh worker), epoch 1 by its own clock (optimizer construction + epoch + val)", med("run_search", "trial_first_epoch_s")),
        ("trial (fresh worker), epochs 2..E by its own clock, median (+ previous epoch's report)", med("run_search", "trial_later_epoch_median_s")),
        ("bare loop, warm process: epoch 1", med("bare", "first_epoch_s")),
        ("bare loop, warm process: epochs 2..E, median", med("bare", "later_epoch_median_s")),
        ("bare loop, fresh process: epoch 1", med("bare_fresh", "first_epoch_s")),
        ("bare loop, fresh process: epochs 2..E, median", med("bare_fresh", "later_epoch_median_s")),
        ("optimizer construction, warm process", med("bare", "opt_s")),
        ("optimizer construction, fresh process (imports torch._dynamo)", med("bare_fresh", "opt_s")),
        ("trial set-up outside training: time_total_s − train_seconds (1st trial, fresh worker)", med("run_search", "ray_time_total_s") - med("run_search", "train_seconds")),
        ("  of which load_dataset in a fresh process", med("dataload", "seconds")),
        ("trial set-up outside training, 2nd trial (reused worker)", med("run_search", "child_ray_time_total_s") - med("run_search", "child_train_seconds")),
        ("Ray start-up + shutdown + driver (run_search e2e − both trials' time_total_s)", float((df.loc[df.kind == "run_search", "e2e_s"] - df.loc[df.kind == "run_search", "ray_time_total_s"] - df.loc[df.kind == "run_search", "child_ray_time_total_s"]).median())),
    ]  # fmt: skip

    def verdict(ratio: float) -> str:
        return f"{ratio:.3f} → {100 * (ratio - 1):+.1f}%: target {'met' if ratio - 1 <= 0.10 else 'NOT met'}"

    md = [
        "# Overhead of a growsearch trial vs a bare PyTorch loop",
        "",
        f"Command: `{command}`",
        "",
        f"Model: MNIST-1D 1-D CNN {[[layer.width for layer in st.layers] for st in spec.stages]}, kernel "
        f"{spec.kernel_size}, BatchNorm; {args.epochs} epochs × {len(data.train) // tr.batch_size} "
        f"steps, batch {tr.batch_size}, Adam lr {tr.lr}, cosine; 1 thread (cpus_per_trial 1); "
        f"{args.repeats} repeats, variants interleaved in a rotating order; medians. "
        f"Machine: {os.cpu_count()} CPU cores; waited {idle['waited_s']:.0f} s for other work "
        f"to end; other processes used {foreign['foreign_cores']:.2f} cores on average during "
        f"the run ({foreign['foreign_top'] or 'nothing notable'}).",
        "",
        "| what | median s | ratio to bare (of medians) | ratio to bare (median of paired ratios) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, v in lines:
        pr = paired_ratio.get(name)
        ref = med("bare_child", "seconds") if ("child" in name or "2nd trial" in name) else bare
        md.append(f"| {name} | {v:.2f} | {v / ref:.3f} | {'' if pr is None else f'{pr:.3f}'} |")
    md += [
        "",
        f"**Trial overhead** (target ≤ +10% for a trial of ≥ 5 s; medians). The first trial "
        f"in a fresh Ray worker (Ray `time_total_s` {trial:.2f} s), against three bare loops: "
        f"(1) the bare loop in this benchmark's warm process, first step → last step "
        f"({bare:.2f} s): {verdict(trial_ratio)}; "
        f"(2) the bare loop in a fresh process, first step → last step ({fresh_loop:.2f} s): "
        f"{verdict(fresh_ratio)}; "
        f"(3) the bare loop in a fresh process from its data load, model and optimizer "
        f"construction to its last step — the window the trial's `time_total_s` covers "
        f"({fresh_total:.2f} s): {verdict(fresh_total_ratio)}. "
        f"(3) − (2) = {fresh_total - fresh_loop:.2f} s, of which {med('bare_fresh', 'opt_s'):.2f} s "
        f"is building Adam: a process's first optimizer imports `torch._dynamo` (torch's lazy "
        f"import; {med('bare', 'opt_s'):.3f} s in the warm process). The trial pays that inside "
        f"its clock; the bare loops of (1) and (2) pay it, if at all, before theirs starts. "
        f"Epoch 1 alone: trial {med('run_search', 'trial_first_epoch_s'):.2f} s (optimizer "
        f"construction and validation included), fresh bare "
        f"{med('bare_fresh', 'first_epoch_s'):.2f} s (+ {med('bare_fresh', 'opt_s'):.2f} s "
        f"optimizer), warm bare {med('bare', 'first_epoch_s'):.2f} s. "
        f"Second trial of the same search, in the reused worker (data already loaded), against "
        f"the warm bare loop on its architecture: {verdict(child_ratio)} (same worker process: "
        f"{bool(df.loc[df.kind == 'run_search', 'child_same_worker'].all())}).",
        "",
        "Where the time goes (medians, seconds):",
        "",
        "| part | seconds |",
        "| --- | ---: |",
    ]
    md += [f"| {name} | {v:.3f} |" for name, v in breakdown]
    md += ["", "Raw rows: `" + os.path.relpath(out.with_suffix(".csv"), ROOT) + "`.", ""]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = [n for n, _ in lines]
    vals = [v for _, v in lines]
    colors = [
        "#888" if n.startswith("bare") else "#59a" if "train()" in n else "#c63" for n in names
    ]
    ax.barh(range(len(vals)), vals, color=colors)
    for i, kind in [(0, "bare"), (1, "bare+val"), (2, "bare_fresh"), (4, "inproc")]:
        ax.plot(df.loc[df.kind == kind, "seconds"], [i] * (df.kind == kind).sum(), "k.", ms=4)
    ax.set_yticks(range(len(vals)), [n if len(n) < 60 else n[:57] + "…" for n in names], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(bare * 1.10, color="k", ls=":", lw=1, label="bare (1st arch) + 10%")
    ax.set_xlabel("seconds (median; dots: repeats)")
    ax.set_title(f"One {args.epochs}-epoch trial: growsearch vs a bare PyTorch loop")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
