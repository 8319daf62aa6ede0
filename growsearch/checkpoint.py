"""Checkpoints without pickle: spec (JSON) + weights and optimizer state (safetensors) + lineage.

Layout of a checkpoint directory::

    spec.json             the ArchSpec
    model.safetensors     the weights (state_dict)
    optimizer.safetensors optimizer tensors; its non-tensor state lives in meta.json
    meta.json             lineage (trial id, parent id, ops), metrics, epoch, and the SHA-256 of
                          every other file, so truncation, corruption or tampering is detected

Writes are atomic: everything goes to a temporary sibling directory that is renamed into place,
and an existing checkpoint is never overwritten unless ``overwrite=True``. On a remote location
(``s3://...``, see :mod:`growsearch.storage`), which has no rename, the files are uploaded one by
one with ``meta.json`` last; a reader that finds hashes that do not match (a checkpoint being
overwritten as it reads) reads it again, so a half-written checkpoint is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from growsearch.arch import ArchSpec, build
from growsearch.exceptions import CheckpointError, SpecError
from growsearch.storage import Location, location

FORMAT = "growsearch-checkpoint/1"
_FILES = ("spec.json", "model.safetensors", "optimizer.safetensors")
REMOTE_READ_TRIES = 5
"""Reads of a remote checkpoint whose hashes do not match, before it is declared corrupt."""


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    spec: ArchSpec
    state_dict: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def model(self, device: str | torch.device = "cpu") -> nn.Module:
        """The network, built from the spec and loaded with the weights, in eval mode."""
        m = build(self.spec)
        try:
            m.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as e:
            raise CheckpointError(
                f"weights do not fit the spec {self.spec.summary()}: {e}"
            ) from None
        return m.to(device).eval()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in state.get("state", {}).items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state.get("param_groups", []), "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, values in rest.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": rest.get("param_groups", [])}


def save_checkpoint(
    path: str | Path | Location,
    spec: ArchSpec,
    model: nn.Module,
    *,
    optimizer_state: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path | Location:
    """Write a checkpoint directory atomically and return its path (a local path or a URI)."""
    loc = location(path)
    if loc.local is None:
        if not overwrite and (loc / "meta.json").is_file():
            raise CheckpointError(f"{loc}: a checkpoint already exists; refusing to overwrite it")
        with tempfile.TemporaryDirectory(prefix="growsearch-ck-") as staging:
            save_checkpoint(
                Path(staging) / "ck", spec, model, optimizer_state=optimizer_state, meta=meta
            )
            loc.upload_dir(Path(staging) / "ck", last=("meta.json",))
        return loc
    path = loc.local
    if path.exists() and not overwrite:
        raise CheckpointError(f"{path}: a checkpoint already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (tmp / "spec.json").write_text(spec.to_json())
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"))
        opt_tensors, opt_rest = _flatten_optimizer(optimizer_state or {})
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        info = {
            "format": FORMAT,
            "has_optimizer": optimizer_state is not None,
            "optimizer": opt_rest,
            **(meta or {}),
            "sha256": {name: _sha256(tmp / name) for name in _FILES},
        }
        (tmp / "meta.json").write_text(json.dumps(info, sort_keys=True, default=str))
        if path.exists():  # overwrite=True: swap in the new one, then drop the old one
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_checkpoint(
    path: str | Path | Location, *, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read and verify a checkpoint directory (a local path or a URI). Never unpickles anything.

    Raises:
        CheckpointError: missing files, a hash mismatch (truncated, corrupted or tampered), or
            contents that are not a growsearch checkpoint.
    """
    loc = location(path)
    if loc.local is None:
        return _load_remote(loc, map_location)
    path = loc.local
    if not path.is_dir():
        raise CheckpointError(f"{path}: no checkpoint directory there")
    try:
        meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing meta.json; not a growsearch checkpoint") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}/meta.json: corrupt ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}/meta.json: not a {FORMAT} checkpoint")
    hashes = meta.get("sha256", {})
    for name in _FILES:
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing")
        if _sha256(f) != hashes.get(name):
            raise CheckpointError(f"{f}: content hash mismatch (truncated, corrupted or modified)")
    try:
        spec = ArchSpec.from_json((path / "spec.json").read_text())
        weights = load_file(str(path / "model.safetensors"), device=str(map_location))
        opt_tensors = load_file(str(path / "optimizer.safetensors"), device=str(map_location))
    except (SpecError, SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({e})") from None
    opt = (
        _unflatten_optimizer(opt_tensors, meta.get("optimizer", {}))
        if meta.get("has_optimizer")
        else None
    )
    return Checkpoint(spec=spec, state_dict=weights, optimizer_state=opt, meta=meta)


def _load_remote(loc: Location, map_location: str | torch.device) -> Checkpoint:
    """Download and verify; read again while the hashes do not match (being overwritten)."""
    for attempt in range(REMOTE_READ_TRIES):
        if not (loc / "meta.json").is_file():
            raise CheckpointError(f"{loc}: no checkpoint there (no meta.json)")
        with tempfile.TemporaryDirectory(prefix="growsearch-ck-") as tmp:
            try:
                loc.download_dir(tmp, first=("meta.json",))
                return load_checkpoint(tmp, map_location=map_location)
            except (CheckpointError, FileNotFoundError) as e:
                if attempt == REMOTE_READ_TRIES - 1:
                    raise CheckpointError(
                        f"{loc}: {str(e).replace(tmp, '').lstrip('/: ')}"
                    ) from None
        time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def load_model(path: str | Path | Location, device: str | torch.device = "cpu") -> nn.Module:
    """Load a saved model (e.g. ``results/<run>/best``) as a ready ``nn.Module`` in eval mode."""
    return load_checkpoint(path).model(device)
