"""The bare loop of ``overhead.py``, in a fresh Python process (run by it as a subprocess).

A fresh Ray worker runs its first trial in a process that has just imported torch; the bare loop
of ``overhead.py`` runs in the benchmark's own long-lived process, where torch's first-use costs
(the lazy import of ``torch._dynamo`` by the first optimizer, oneDNN primitive creation, the
allocator...) were paid long before. This runs the same loop in a new process, from its imports,
and prints one JSON object on stdout: the loop's own time (first step → last step, as the warm
``bare``), the set-up before the first step (data load, model build, optimizer construction), and
the first epoch apart from the later ones.

    .venv/bin/python benchmarks/_bare_fresh.py SPACE EPOCHS
"""

from __future__ import annotations

import json
import sys
import time

t_start = time.perf_counter()
import torch  # noqa: E402

import_torch_s = time.perf_counter() - t_start


def main() -> None:
    space_path, epochs = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)  # as the trainable (cpus_per_trial: 1)
    from overhead import bare_loop  # benchmarks/ is sys.path[0] when run as a script

    from growsearch.data import load_dataset
    from growsearch.space import load_space

    space = load_space(space_path, {"training.seed_epochs": epochs, "training.epochs": epochs})
    tr = space.training
    t = time.perf_counter()
    data = load_dataset(space.dataset.name)
    data_s = time.perf_counter() - t
    seed = int(space.seed) * 100_003  # the trainable's seed of trial index 0
    dynamo_before = "torch._dynamo" in sys.modules  # False: the optimizer imports it, timed
    res = bare_loop(space.seed_arch, data, epochs, tr.batch_size, tr.lr, seed, False)
    res.update(
        import_torch_s=import_torch_s,
        data_s=data_s,
        # the window of a trial's Ray time_total_s: data, model, optimizer, loop
        total_s=data_s + res["setup_s"] + res["seconds"],
        dynamo_imported_before_setup=dynamo_before,
    )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
