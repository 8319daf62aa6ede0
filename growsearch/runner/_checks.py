"""Checks of a search's inputs — a Ray address, an Optuna storage URL, a run folder
(:func:`growsearch.results.check_run_dir`) — made
before anything is written or started, so that a bad flag costs one clear line and no
half-made run.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from growsearch.exceptions import ConfigError


def check_address(address: str | None) -> str | None:
    """``host:port`` of a Ray cluster must answer; returns the address to use (None = local)."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None or address == "auto":
        return address
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            pass
    except (OSError, ValueError):
        raise ConfigError(f"--address: no Ray cluster answers at {address!r}") from None
    return address


def check_storage(storage: str | None) -> None:
    """An Optuna storage URL must parse, and a server URL must be reachable."""
    if storage is None:
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        url = make_url(storage)
    except (ArgumentError, ValueError):
        raise ConfigError(f"--storage: not a database URL: {storage!r}") from None
    if url.get_backend_name() == "sqlite":
        db = url.database
        if db and db != ":memory:" and not Path(db).resolve().parent.is_dir():
            raise ConfigError(f"--storage: folder of SQLite file {db!r} does not exist")
        return
    try:
        with create_engine(url).connect():
            pass
    except (NoSuchModuleError, ImportError):
        raise ConfigError(f"--storage: no driver for {url.drivername!r}") from None
    except SQLAlchemyError as e:
        raise ConfigError(
            f"--storage: cannot connect to {storage!r} ({type(e).__name__})"
        ) from None
