"""Import the function a search space names as its seed model's ``factory``.

``seed_model.factory`` is ``package.module:function`` or ``path/to/file.py:function``. A file
is imported the way ``python file.py`` would see it: its folder is put on ``sys.path`` (and kept
there) before it runs, so ``from blocks import TinyResNet`` next to it works, at import time and
inside the function (lazy imports) alike.

On a Ray worker that lacks the file (another machine of a cluster, or the folder moved after
the search started), the copy that :mod:`growsearch.runner._usercode` shipped with the trials
(Ray ``runtime_env`` ``py_modules``: the factory's folder, unpacked under a ``_ray_pkg_<hash>``
folder on the worker's ``sys.path``) is imported instead.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from torch import nn

from growsearch.exceptions import SpecError

RAY_PACKAGE_PREFIX = "_ray_pkg_"  # the folder Ray unpacks each py_modules entry into


def load_factory(factory: str) -> Callable[[], nn.Module]:
    """Import ``module:function`` or ``file.py:function``; errors are SpecErrors."""
    target, _, fn = factory.rpartition(":")
    if not target or not fn:
        raise SpecError(
            f"factory: expected 'package.module:function' or 'file.py:function', got {factory!r}"
        )
    try:
        if target.endswith(".py"):
            module = _load_file(Path(target).expanduser())
        else:
            module = importlib.import_module(target)
    except (ImportError, OSError, SyntaxError) as e:
        raise SpecError(
            f"factory {factory!r}: cannot import {target!r} ({type(e).__name__}: {e})"
        ) from None
    f = getattr(module, fn, None)
    if not callable(f):
        raise SpecError(f"factory {factory!r}: {target!r} has no function {fn!r}")
    return f


def module_name(path: str | Path) -> str:
    """The name a factory file is imported under: one per location it is named by, the same in
    every process (so the driver and the workers agree), and no clash with the user's modules."""
    key = os.path.abspath(os.path.expanduser(str(path)))
    return f"growsearch_user_{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def shipped_copy(path: str | Path) -> Path | None:
    """The copy of factory file ``path`` that Ray shipped to this worker, or None.

    The factory's folder ``.../<folder>/`` arrives as ``<_ray_pkg_...>/<folder>/`` with the
    ``_ray_pkg_...`` folder on ``sys.path`` (Ray's ``py_modules``)."""
    path = Path(path)
    rel = Path(path.parent.name) / path.name
    for entry in sys.path:
        if entry and Path(entry).name.startswith(RAY_PACKAGE_PREFIX):
            candidate = Path(entry) / rel
            if candidate.is_file():
                return candidate
    return None


def add_to_sys_path(folder: str | Path) -> None:
    """Put ``folder`` first on ``sys.path`` (once), as ``python script.py`` does its folder."""
    entry = str(folder)
    if entry not in sys.path:
        sys.path.insert(0, entry)
        importlib.invalidate_caches()


def _load_file(path: Path) -> ModuleType:
    name = module_name(path)
    module = sys.modules.get(name)
    if module is not None:  # imported before (the file may be gone since: a moved folder)
        return module
    where = path if path.is_file() else shipped_copy(path)
    if where is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    add_to_sys_path(where.resolve().parent)  # sibling modules, now and in lazy imports later
    spec = importlib.util.spec_from_file_location(name, where)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)  # a failed import is not cached: the next call retries it
        raise
    return module


__all__ = ["add_to_sys_path", "load_factory", "module_name", "shipped_copy"]
