"""Checkpoints: round trip, atomic no-overwrite, and every kind of damage detected without pickle."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from growsearch.arch import ArchSpec, build
from growsearch.checkpoint import load_checkpoint, load_model, save_checkpoint
from growsearch.exceptions import CheckpointError

SPEC = ArchSpec.create("cnn", (1, 40), 10, [[8], [16]])


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    model = build(SPEC, seed=0)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 1, 40)).sum().backward()
    opt.step()
    return save_checkpoint(
        tmp_path / "ck",
        SPEC,
        model,
        optimizer_state=opt.state_dict(),
        meta={"trial_id": "t1", "epoch": 3},
    )


def test_round_trip(saved: Path) -> None:
    ck = load_checkpoint(saved)
    assert ck.spec == SPEC and ck.meta["trial_id"] == "t1" and ck.meta["epoch"] == 3
    model = load_model(saved)
    ref = build(SPEC, seed=0)
    assert not model.training
    x = torch.randn(4, 1, 40)
    # the optimizer state restores into a fresh optimizer and continues identically
    opt = torch.optim.Adam(model.parameters())
    opt.load_state_dict(ck.optimizer_state)
    assert opt.state_dict()["state"][0]["step"] == 1
    assert model(x).shape == ref.eval()(x).shape


def test_refuses_to_overwrite(saved: Path) -> None:
    before = (saved / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        save_checkpoint(saved, SPEC, build(SPEC, seed=1))
    assert (saved / "model.safetensors").read_bytes() == before


def _truncate(p: Path) -> None:
    data = (p / "model.safetensors").read_bytes()
    (p / "model.safetensors").write_bytes(data[: len(data) // 2])


def _flip(p: Path) -> None:
    data = bytearray((p / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (p / "model.safetensors").write_bytes(bytes(data))


def _tamper_spec(p: Path) -> None:
    spec = json.loads((p / "spec.json").read_text())
    spec["num_classes"] = 11
    (p / "spec.json").write_text(json.dumps(spec))


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/growsearch-pwned"),))


def _pickle_payload(p: Path) -> None:
    (p / "model.safetensors").write_bytes(pickle.dumps({"w": _Evil()}))


DAMAGE = [
    ("truncated", _truncate, "hash mismatch"),
    ("bit flip", _flip, "hash mismatch"),
    ("tampered spec", _tamper_spec, "hash mismatch"),
    ("pickle payload", _pickle_payload, "hash mismatch"),
    ("missing weights", lambda p: (p / "model.safetensors").unlink(), "missing"),
    ("missing meta", lambda p: (p / "meta.json").unlink(), "missing meta.json"),
    ("corrupt meta", lambda p: (p / "meta.json").write_text("{not json"), "corrupt"),
    ("foreign meta", lambda p: (p / "meta.json").write_text("{}"), "not a growsearch-checkpoint"),
]


@pytest.mark.parametrize(("damage", "needle"), [pytest.param(f, n, id=i) for i, f, n in DAMAGE])
def test_damage_is_detected(saved: Path, damage, needle: str) -> None:
    marker = Path("/tmp/growsearch-pwned")
    marker.unlink(missing_ok=True)
    damage(saved)
    with pytest.raises(CheckpointError, match=needle) as info:
        load_checkpoint(saved)
    assert str(saved) in str(info.value)
    assert not marker.exists()  # nothing was unpickled


def test_pickle_payload_with_forged_hash_executes_nothing(saved: Path) -> None:
    """Even with a matching hash (an attacker rewrote meta.json), nothing is unpickled."""
    import hashlib

    marker = Path("/tmp/growsearch-pwned")
    marker.unlink(missing_ok=True)
    _pickle_payload(saved)
    meta = json.loads((saved / "meta.json").read_text())
    meta["sha256"]["model.safetensors"] = hashlib.sha256(
        (saved / "model.safetensors").read_bytes()
    ).hexdigest()
    (saved / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(saved)
    assert not marker.exists()


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        load_checkpoint(tmp_path / "nope")


def test_a_custom_model_spec_in_an_older_format_is_one_clear_line() -> None:
    """Runs saved before width groups named layers by module path; they say so, not KeyError."""
    from growsearch.exceptions import SpecError

    old = ArchSpec.create("cnn", (1, 8, 8), 10, [[4]]).to_dict()
    old["family"] = "custom"
    old["custom"] = {"factory": "model.py:make", "weights": None, "paths": [["l1", "conv1"]]}
    with pytest.raises(SpecError, match=r"'model.py:make': saved by an older growsearch"):
        ArchSpec.from_dict(old)
