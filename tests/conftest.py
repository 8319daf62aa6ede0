"""Test-wide settings: one intra-op thread (2-core CI machines; small tensors), loopback Ray."""

from __future__ import annotations

import os

import torch

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
torch.set_num_threads(1)
