"""Where a run's files live: a local folder, or a folder on any filesystem ``pyarrow.fs`` knows.

A run location is a local path (``results/runs/x``, a shared NFS mount) or a URI
(``s3://bucket/runs/x``, ``gs://...``, ``hdfs://...``, ``file:///...``, or a scheme only fsspec
knows, such as ``az://``, wrapped as a pyarrow filesystem), parsed once into a
:class:`Location`: a filesystem and a path in it. Every process of a search — the driver and
the Ray workers on every node — reads and writes the run through it, so a cluster needs no
shared disk.

Writes are atomic per file: on a local disk a temporary sibling is renamed into place; on an
object store one PUT (or a completed multipart upload) makes an object visible whole. A folder
that must appear whole (a checkpoint) is uploaded file by file with the file that vouches for
the others (``meta.json``, holding their hashes) last; readers check the hashes.

Credentials and endpoints are the filesystems' own: for S3 the standard ``AWS_*`` variables,
``~/.aws`` and ``AWS_ENDPOINT_URL`` (an S3-compatible server such as MinIO).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from growsearch.exceptions import ConfigError


class Location:
    """A file or folder on a filesystem: ``fs`` (a ``pyarrow.fs.FileSystem``) and ``path``.

    Path-like: ``loc / "models"``, ``loc.name``, ``loc.parent``, ``str(loc)`` (the URI, or the
    local path). ``local`` is the :class:`~pathlib.Path` when the location is on this machine's
    filesystem (then plain file operations are used), else None.
    """

    def __init__(self, fs: Any, path: str, uri: str, local: Path | None):
        self.fs = fs
        self.path = path.rstrip("/") or path
        self.uri = uri.rstrip("/") if "://" in uri else uri
        self.local = local

    # ---- naming ----------------------------------------------------------------------------
    def __truediv__(self, part: str) -> Location:
        part = str(part).strip("/")
        if self.local is not None:
            p = self.local / part
            return Location(self.fs, str(p), str(p), p)
        return Location(self.fs, f"{self.path}/{part}", f"{self.uri}/{part}", None)

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        if self.local is not None:
            p = self.local.parent
            return Location(self.fs, str(p), str(p), p)
        return Location(
            self.fs, self.path.rsplit("/", 1)[0], self.uri.rstrip("/").rsplit("/", 1)[0], None
        )

    @property
    def is_remote(self) -> bool:
        return self.local is None

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    # ---- queries ---------------------------------------------------------------------------
    def _type(self) -> Any:
        try:
            return self.fs.get_file_info(self.path).type
        except OSError as e:
            raise ConfigError(f"{self.uri}: cannot reach it ({_first_line(e)})") from None

    def exists(self) -> bool:
        if self.local is not None:
            return self.local.exists()
        from pyarrow.fs import FileType

        return bool(self._type() != FileType.NotFound)

    def is_file(self) -> bool:
        if self.local is not None:
            return self.local.is_file()
        from pyarrow.fs import FileType

        return bool(self._type() == FileType.File)

    def is_dir(self) -> bool:
        if self.local is not None:
            return self.local.is_dir()
        from pyarrow.fs import FileType

        return bool(self._type() == FileType.Directory)

    def signature(self) -> tuple[int, int] | None:
        """(modification time in ns, size) of a file, None if it does not exist: a cheap
        "did it change" check."""
        if self.local is not None:
            try:
                st = self.local.stat()
            except FileNotFoundError:
                return None
            return st.st_mtime_ns, st.st_size
        from pyarrow.fs import FileType

        info = self.fs.get_file_info(self.path)
        if info.type != FileType.File:
            return None
        return int(info.mtime_ns or 0), int(info.size or 0)

    def listdir(self) -> list[str]:
        """Names of the entries directly under this folder (empty if it does not exist)."""
        if self.local is not None:
            return sorted(p.name for p in self.local.iterdir()) if self.local.is_dir() else []
        from pyarrow.fs import FileSelector

        try:
            infos = self.fs.get_file_info(FileSelector(self.path, allow_not_found=True))
        except OSError as e:
            raise ConfigError(f"{self.uri}: cannot list it ({_first_line(e)})") from None
        return sorted(i.base_name for i in infos)

    # ---- reading and writing ---------------------------------------------------------------
    def read_bytes(self) -> bytes:
        if self.local is not None:
            return self.local.read_bytes()
        try:
            with self.fs.open_input_stream(self.path) as f:
                return bytes(f.read())
        except FileNotFoundError:
            raise
        except OSError as e:
            if "not exist" in str(e).lower() or "not found" in str(e).lower():
                raise FileNotFoundError(self.uri) from None
            raise

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        """Write the whole file atomically (a reader sees the old content or the new, never half)."""
        if self.local is not None:
            self.local.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.local.name}.", dir=self.local.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self.local)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return
        with self.fs.open_output_stream(self.path) as f:  # visible once closed, whole
            f.write(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def mkdir(self) -> None:
        """Create the folder (and its parents); a no-op on object stores, whose folders are
        the prefixes of their objects."""
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)

    def rmtree(self) -> None:
        """Delete the folder and everything under it (nothing if it does not exist)."""
        if self.local is not None:
            shutil.rmtree(self.local, ignore_errors=True)
            return
        if self.exists():
            self.fs.delete_dir(self.path)

    def unlink(self) -> None:
        """Delete the file (nothing if it does not exist)."""
        if self.local is not None:
            self.local.unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path)

    # ---- whole files and folders -----------------------------------------------------------
    def upload(self, src: str | Path) -> None:
        """Copy the local file ``src`` here (atomically)."""
        if self.local is not None:
            self.local.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.local.name}.", dir=self.local.parent)
            os.close(fd)
            try:
                shutil.copyfile(src, tmp)
                os.replace(tmp, self.local)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return
        with open(src, "rb") as f, self.fs.open_output_stream(self.path) as out:
            shutil.copyfileobj(f, out, 1 << 22)

    def download(self, dst: str | Path) -> Path:
        """Copy this file to the local path ``dst``; returns ``dst``."""
        dst = Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if self.local is not None:
            shutil.copyfile(self.local, dst)
            return dst
        with self.fs.open_input_stream(self.path) as f, open(dst, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 22)
        return dst

    def upload_dir(self, src: str | Path, *, last: tuple[str, ...] = ()) -> None:
        """Copy the files of the local folder ``src`` (not recursive) into this folder, those
        named in ``last`` after all the others: a reader that trusts ``last`` never finds it
        pointing at files not yet written."""
        names = sorted(p.name for p in Path(src).iterdir() if p.is_file())
        for name in [n for n in names if n not in last] + [n for n in last if n in names]:
            (self / name).upload(Path(src) / name)

    def download_dir(self, dst: str | Path, *, first: tuple[str, ...] = ()) -> Path:
        """Copy the files of this folder (not recursive) into the local folder ``dst``, those
        named in ``first`` before the others."""
        dst = Path(dst)
        dst.mkdir(parents=True, exist_ok=True)
        names = self.listdir()
        for name in [n for n in first if n in names] + [n for n in names if n not in first]:
            child = self / name
            if child.is_file():
                child.download(dst / name)
        return dst


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


@functools.lru_cache(maxsize=64)
def _from_uri(uri: str) -> tuple[Any, str]:
    from pyarrow.fs import FileSystem

    return FileSystem.from_uri(uri)


@functools.lru_cache(maxsize=64)
def _from_fsspec(uri: str) -> tuple[Any, str] | None:
    """A scheme pyarrow lacks but fsspec has (``az://``, ``abfs://``, ``memory://``...), wrapped
    as a pyarrow filesystem (what Ray Tune takes too); None without fsspec or the scheme."""
    try:
        from fsspec.core import url_to_fs
        from pyarrow.fs import FSSpecHandler, PyFileSystem
    except ImportError:
        return None
    try:
        fs, path = url_to_fs(uri)
    except (ValueError, ImportError):  # unknown protocol, or its package is not installed
        return None
    return PyFileSystem(FSSpecHandler(fs)), str(path)


def is_uri(value: str | os.PathLike[str] | Location) -> bool:
    """Whether ``value`` names a URI (``scheme://...``) rather than a local path."""
    return isinstance(value, Location) or "://" in str(value)


def location(value: str | os.PathLike[str] | Location) -> Location:
    """Parse a local path or a URI once into a :class:`Location` (a local path is made absolute).

    Raises:
        ConfigError: a URI whose scheme no filesystem handles, or one that cannot be opened
            (one line naming it; nothing is written).
    """
    if isinstance(value, Location):
        return value
    text = os.fspath(value)
    if "://" not in text:
        p = Path(text).expanduser().resolve()
        from pyarrow.fs import LocalFileSystem

        return Location(LocalFileSystem(), str(p), str(p), p)
    scheme = text.split("://", 1)[0].lower()
    if scheme == "file":
        from urllib.parse import unquote, urlparse

        return location(unquote(urlparse(text).path) or "/")
    try:
        fs, path = _from_uri(text.rstrip("/"))
    except Exception as e:  # ArrowInvalid (unknown scheme), OSError (bad credentials, region)
        msg = _first_line(e)
        if "Unrecognized filesystem type" in str(e):
            found = _from_fsspec(text.rstrip("/"))
            if found is not None:
                return Location(found[0], found[1], text.rstrip("/"), None)
            msg = (
                f"no filesystem for the scheme {scheme!r}; use a local path, s3://, gs://, "
                "hdfs:// or a scheme fsspec knows"
            )
        raise ConfigError(f"{text}: cannot open it ({msg})") from None
    from pyarrow.fs import LocalFileSystem

    if isinstance(fs, LocalFileSystem):
        return location(path)
    return Location(fs, path, text.rstrip("/"), None)


def check_reachable(loc: Location) -> None:
    """A remote location must answer; on an object store (``s3://``, ``gs://``) its bucket (the
    first path component) must exist.

    Raises:
        ConfigError: one line naming the URI (no such bucket, no credentials, no network).
    """
    if loc.local is None:
        from pyarrow.fs import FileType

        bucket = loc.uri.split("://", 1)[0].lower() in ("s3", "gs", "gcs")
        root = loc.path.split("/", 1)[0] if bucket else loc.path
        try:
            kind = loc.fs.get_file_info(root).type
        except OSError as e:
            raise ConfigError(f"{loc.uri}: cannot reach it ({_first_line(e)})") from None
        if bucket and kind == FileType.NotFound:
            raise ConfigError(f"{loc.uri}: the bucket {root!r} does not exist (create it first)")


def scratch_dir(loc: Location) -> Path:
    """A local folder for what a driver keeps on its own disk about the run at ``loc``: the
    run folder itself when it is local, else ``$GROWSEARCH_SCRATCH`` (default
    ``~/.cache/growsearch``) ``/runs/<name>-<hash of the URI>``."""
    if loc.local is not None:
        return loc.local
    base = os.environ.get("GROWSEARCH_SCRATCH") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "growsearch"
    )
    digest = hashlib.sha256(loc.uri.encode()).hexdigest()[:12]
    path = Path(base) / "runs" / f"{loc.name}-{digest}"
    path.mkdir(parents=True, exist_ok=True)
    return path


__all__ = ["Location", "check_reachable", "is_uri", "location", "scratch_dir"]
