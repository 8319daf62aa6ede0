from __future__ import annotations

from pathlib import Path

import pytest

from tests.viz._runs import small_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real small run (slow: use it only in tests marked slow)."""
    return small_run(tmp_path_factory.getbasetemp() / "viz-run")
