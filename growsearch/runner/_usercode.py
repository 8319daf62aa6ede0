"""A user's seed model on every Ray worker: its code travels with the trials, its weights with the run.

A search over a user's model (``seed_model: {factory: ..., weights: ...}``) needs, in each
trial's worker, the factory's code and (for the seed trial) its trained weights. A worker on
another machine of a cluster has neither, and even on this machine the files may move while
the search runs. So:

* **code**: the folder of a ``file.py:function`` factory — or the top-level package (or
  single-file module) of a ``package.module:function`` one, unless it is installed in this
  Python's site-packages (workers are expected to have the same environment) — is shipped
  with Ray's job-level ``runtime_env`` ``py_modules``, uploaded once when the driver starts or
  joins Ray. A worker whose own copy of the factory file is missing imports the shipped one
  (:func:`growsearch.arch._factory.shipped_copy`), with the shipped folder on ``sys.path``.
* **weights**: copied into the run folder (``seed_weights.safetensors``) when the search
  starts; the seed trial reads that copy. The run folder is the storage every trial already
  shares (children read their parents' checkpoints from ``models/``), and the copy is a
  snapshot: a weights file changed or deleted later does not change the run.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import site
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from growsearch.exceptions import ConfigError
from growsearch.storage import Location, location

log = logging.getLogger("growsearch")

SEED_WEIGHTS = "seed_weights.safetensors"
MAX_SHIP_BYTES = 100 * 2**20  # a factory's folder larger than this is not code
# never shipped (Ray also honours a .gitignore / .rayignore in the shipped folder)
EXCLUDES = [
    ".git",
    "__pycache__",
    "*.pyc",
    ".venv",
    "venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
    "node_modules",
]
_SKIP_DIRS = {e for e in EXCLUDES if "*" not in e}


def ship_paths(factory: str) -> list[Path]:
    """What of a factory's code Ray workers need shipped (empty when they have it already)."""
    target, _, _ = factory.rpartition(":")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        return [path.resolve().parent] if path.is_file() else []
    top = target.split(".", 1)[0]
    if not top or top == "growsearch":
        return []
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.has_location or spec.origin is None:
        return []  # built-in, frozen, or a namespace package
    if spec.submodule_search_locations is not None:  # a package: ship its folder
        locations = list(spec.submodule_search_locations)
        if len(locations) != 1:
            return []  # split across folders: py_modules cannot ship it
        path = Path(locations[0])
    else:
        path = Path(spec.origin)
        if path.suffix != ".py":
            return []  # an extension module: must be installed on the workers
    return [] if _installed(path) else [path.resolve()]


def _installed(path: Path) -> bool:
    """Whether ``path`` lies in this Python's standard library or site-packages."""
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(site.getsitepackages())
    roots.add(site.getusersitepackages())
    resolved = path.resolve()
    return any(resolved.is_relative_to(Path(r).resolve()) for r in roots if r)


def _size(path: Path, limit: int) -> int:
    """Bytes under ``path`` (excluded folders skipped); stops counting past ``limit``."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except OSError:
                continue
            if total > limit:
                return total
    return total


def runtime_env(
    factory: str, *, cluster: bool, where: str = "", key: str = "seed_model.factory"
) -> dict[str, Any] | None:
    """The Ray ``runtime_env`` that ships a factory's code, or None when there is nothing to ship.

    Args:
        factory: ``seed_model.factory`` as validated (a file path is absolute).
        cluster: True when joining an existing cluster (``--address``), whose workers may lack
            the files; on the local Ray a folder too large to ship is skipped with a warning
            (local workers read it where it is), on a cluster it is a ConfigError.
        where: the search-space file, for the error message.
        key: the factory's key in the search space (``seed_model.factory``, ``dataset.factory``).
    """
    paths = []
    for path in ship_paths(factory):
        if _size(path, MAX_SHIP_BYTES) > MAX_SHIP_BYTES:
            msg = (
                f"{key}: growsearch ships {path} to the Ray workers, but it holds "
                f"more than {MAX_SHIP_BYTES // 2**20} MiB; put the factory and the modules it "
                "imports in a folder of their own (or list the rest in a .rayignore there)"
            )
            if cluster:
                raise ConfigError(f"{where}: {msg}" if where else msg)
            log.warning("growsearch: %s; not shipped (local workers read it in place)", msg)
            continue
        paths.append(str(path))
    return {"py_modules": paths, "excludes": list(EXCLUDES)} if paths else None


def stage_seed_weights(run_dir: str | Path | Location, weights: str | Path) -> Location | None:
    """Copy the seed's weights into the run folder, a local path or a URI (once: a resumed run
    keeps its first copy)."""
    dst = location(run_dir) / SEED_WEIGHTS
    if dst.is_file():
        return dst
    src = Path(weights)
    if not src.is_file():
        return None  # gone before the run started (a resume): the seed trial will say so
    dst.upload(src)  # atomic
    return dst


def seed_weights(run_dir: str | Path | Location, weights: str) -> str:
    """The weights file a seed trial loads: the run folder's copy (downloaded to a local
    temporary file when the run folder is remote), else the user's file."""
    copy = location(run_dir) / SEED_WEIGHTS
    if not copy.is_file():
        return weights
    if copy.local is not None:
        return str(copy.local)
    fd, tmp = tempfile.mkstemp(prefix="growsearch-seed-", suffix=".safetensors")
    os.close(fd)
    return str(copy.download(tmp))


def prepare_user_code(space: Any, run_dir: Location, address: str | None) -> dict[str, Any] | None:
    """Before Ray starts: stage the seed weights in the run folder and return the
    ``runtime_env`` for ``ray.init`` (None for a search over a growsearch model family and
    dataset). The code of a dataset factory (``dataset.factory``) travels the same way."""
    factories = []
    user = getattr(space, "user_model", None)
    if user is not None:
        if user.weights is not None:
            stage_seed_weights(run_dir, user.weights)
        factories.append(("seed_model.factory", user.factory))
    data_factory = getattr(getattr(space, "dataset", None), "factory", None)
    if data_factory is not None:
        factories.append(("dataset.factory", data_factory))
    task_factory = getattr(getattr(space, "task", None), "factory", None)
    if task_factory is not None:
        factories.append(("task.factory", task_factory))
    fit = getattr(getattr(space, "training", None), "function", None)
    if fit is not None:
        factories.append(("training.function", fit))
    paths: list[str] = []
    for key, factory in factories:
        env = runtime_env(factory, cluster=address is not None, where=str(space.path), key=key)
        paths += [p for p in (env or {}).get("py_modules", []) if p not in paths]
    return {"py_modules": paths, "excludes": list(EXCLUDES)} if paths else None


__all__ = [
    "SEED_WEIGHTS",
    "prepare_user_code",
    "runtime_env",
    "seed_weights",
    "ship_paths",
    "stage_seed_weights",
]
