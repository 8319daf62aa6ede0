"""What ``training.augment`` costs per epoch: random crop with padding and horizontal flip,
applied per batch on the training device.

For each data shape and each augmentation, one epoch of a small CNN (the size of a search's
seed) is timed with and without it, and the augmentation calls alone over an epoch's batches;
medians of ``--repeats`` runs, arms interleaved so that a busy moment of a shared machine hits
every arm alike. ``cost_pct`` is the augmentation alone against the plain epoch: whole-epoch
differences on a shared machine are noisier than the cost itself (``epoch_diff_pct``).

    .venv/bin/python benchmarks/augment_cost.py --out results [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from growsearch.arch import ArchSpec, build
from growsearch.data import Dataset, dataset_from_splits, load_dataset
from growsearch.train import Augment, TrainConfig, train

ARMS = {
    "none": None,
    "flip": Augment(flip=True),
    "crop 4": Augment(crop=4),
    "crop 4 + flip": Augment(crop=4, flip=True),
}


def cifar_shaped(n: int = 10_000) -> Dataset:
    """CIFAR-10-sized tensors (3, 32, 32): the cost of a crop or flip does not depend on values."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    return dataset_from_splits({"train": (x, y), "val": (x[:1000], y[:1000]), "test": (x, y)})


def time_epoch(data: Dataset, augment: Augment | None, device: str, batch_size: int) -> float:
    """Seconds of one training epoch (its validation pass included) of a seed-sized CNN."""
    spec = ArchSpec.create("cnn", data.input_shape, data.num_classes, [[16], [32]])
    model = build(spec, seed=0)
    cfg = TrainConfig(epochs=1, batch_size=batch_size, augment=augment, device=device, amp="off")
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    train(model, data, cfg)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def time_augment_only(data: Dataset, augment: Augment, device: str, batch_size: int) -> float:
    """Seconds the augmentation alone takes over one epoch's batches (already on the device)."""
    x = data.train.x.to(device)  # type: ignore[union-attr]
    g = torch.Generator().manual_seed(0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for start in range(0, len(x) - batch_size + 1, batch_size):
        augment(x[start : start + batch_size], g)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("results/augment"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    datasets = {
        "mnist5k (1, 28, 28)": load_dataset("mnist5k"),
        "CIFAR-shaped (3, 32, 32)": cifar_shaped(),
    }
    rows = []
    for name, data in datasets.items():
        time_epoch(data, None, args.device, args.batch_size)  # warm-up: first-call costs
        epochs: dict[str, list[float]] = {arm: [] for arm in ARMS}
        alone: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for _ in range(args.repeats):
            for arm, augment in ARMS.items():
                epochs[arm].append(time_epoch(data, augment, args.device, args.batch_size))
                if augment is not None:
                    alone[arm].append(
                        time_augment_only(data, augment, args.device, args.batch_size)
                    )
        base = statistics.median(epochs["none"])
        for arm in ARMS:
            epoch_s = statistics.median(epochs[arm])
            only = statistics.median(alone[arm]) if alone[arm] else 0.0
            rows.append({
                "data": name, "device": args.device, "threads": args.threads,
                "train_samples": len(data.train), "batch_size": args.batch_size, "augment": arm,
                "repeats": args.repeats, "epoch_s": round(epoch_s, 4),
                "augment_only_s": round(only, 4), "cost_pct": round(100 * only / base, 1),
                "epoch_diff_pct": round(100 * (epoch_s / base - 1), 1),
                "load_avg": round(os.getloadavg()[0], 1),
            })  # fmt: skip
            print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "augment_cost.csv", index=False)
    lines = [
        "# Augmentation cost per epoch",
        "",
        f"`benchmarks/augment_cost.py --device {args.device} --threads {args.threads}`: one epoch "
        f"of a seed-sized CNN (`cnn [[16], [32]]`, batch {args.batch_size}, validation pass "
        f"included), median of {args.repeats}; `augment only`: the augmentation calls alone "
        "over the epoch's batches.",
        "",
        "| data | device | augment | epoch s | augment only s | cost | epoch diff | load |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['data']} | {r['device']} | {r['augment']} | {r['epoch_s']:.3f} | "
        f"{r['augment_only_s']:.3f} | {r['cost_pct']:.1f}% | {r['epoch_diff_pct']:+.1f}% | "
        f"{r['load_avg']} |"
        for r in rows
    ]
    (args.out / "augment_cost.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
