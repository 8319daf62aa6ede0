"""Test-wide settings: one intra-op thread (2-core CI machines; small tensors), loopback Ray,
and the files of slow tests first."""

from __future__ import annotations

import os
from pathlib import Path

import torch

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
torch.set_num_threads(1)


# The files that took longest in a whole run (``make test`` prints the slowest tests), longest
# first; only the order in which files start depends on this list, never a result.
LONGEST_FIRST = (
    "runner/test_user_tasks.py",
    "zoo/test_zoo_search.py",
    "runner/test_resume.py",
    "runner/test_failures.py",
    "storage/test_cluster_s3.py",
    "storage/test_s3_search.py",
    "browser/test_pages.py",
    "runner/test_cluster.py",
    "runner/test_search_e2e.py",
)


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ANN001
    """Start the longest files first (:data:`LONGEST_FIRST`, then the other files with a test
    marked ``slow``, then the rest; the order within a file is kept): with the files shared out
    over processes (``make test``), the long ones start at once and the short ones fill the
    gaps, instead of a long file running alone at the end."""
    here = Path(__file__).parent
    slow = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item) -> tuple[int, int]:  # noqa: ANN001
        rel = item.path.relative_to(here).as_posix() if item.path.is_relative_to(here) else ""
        if rel in LONGEST_FIRST:
            return (0, LONGEST_FIRST.index(rel))
        return (1 if item.path in slow else 2, 0)

    items.sort(key=rank)  # stable
