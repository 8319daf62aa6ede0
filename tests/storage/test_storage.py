"""Run locations on a local disk and on a real S3-compatible server (moto, on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from growsearch.arch import ArchSpec, build
from growsearch.checkpoint import load_checkpoint, save_checkpoint
from growsearch.exceptions import CheckpointError, ConfigError
from growsearch.storage import check_reachable, location, scratch_dir
from tests.storage.conftest import BUCKET

SPEC = ArchSpec.from_dict(
    {"family": "mlp", "input_shape": [8], "num_classes": 3, "stages": [{"layers": [["linear", 4]]}]}
)


def _roundtrip(root) -> None:
    run = root / "run"
    assert not run.exists() and run.listdir() == []
    (run / "a.json").write_text('{"x": 1}')
    (run / "sub" / "b.bin").write_bytes(b"\x00\x01")
    assert (run / "a.json").read_text() == '{"x": 1}'
    assert run.is_dir() and (run / "a.json").is_file() and not (run / "zzz").exists()
    assert run.listdir() == ["a.json", "sub"]
    assert run.name == "run" and run.parent == root and str(run).endswith("/run")
    with pytest.raises(FileNotFoundError):
        (run / "missing").read_bytes()
    (run / "a.json").write_text("new")  # overwrite, atomically
    assert (run / "a.json").read_text() == "new"
    (run / "a.json").unlink()
    assert not (run / "a.json").exists()
    run.rmtree()
    assert not run.exists()


def test_local_location(tmp_path: Path) -> None:
    loc = location(tmp_path)
    assert loc.local == tmp_path.resolve() and not loc.is_remote
    _roundtrip(loc)
    assert location(f"file://{tmp_path}").local == tmp_path.resolve()
    assert scratch_dir(loc) == tmp_path.resolve()


def test_s3_location(s3) -> None:
    loc = location(f"s3://{BUCKET}/storage-test/")
    assert loc.is_remote and str(loc) == f"s3://{BUCKET}/storage-test"
    check_reachable(loc)
    _roundtrip(loc)
    assert scratch_dir(loc).is_dir()


def test_a_scheme_only_fsspec_knows() -> None:
    pytest.importorskip("fsspec")
    loc = location("memory://growsearch-test/runs")  # fsspec's in-process filesystem
    assert loc.is_remote and str(loc) == "memory://growsearch-test/runs"
    check_reachable(loc)
    _roundtrip(loc)


@pytest.mark.parametrize(
    "uri, says",
    [
        ("foo://bucket/runs", "no filesystem for the scheme 'foo'"),
        ("s3://no-such-bucket-gs/runs", "the bucket 'no-such-bucket-gs' does not exist"),
    ],
)
def test_bad_locations_are_one_line(s3, uri: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        check_reachable(location(uri))
    assert says in str(e.value) and uri in str(e.value) and "\n" not in str(e.value)


def _model(seed: int) -> torch.nn.Module:
    return build(SPEC, seed=seed)


def test_checkpoint_on_s3(s3) -> None:
    loc = location(f"s3://{BUCKET}/ck-test/models/t0000")
    model = _model(0)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 8)).sum().backward()
    opt.step()
    save_checkpoint(loc, SPEC, model, optimizer_state=opt.state_dict(), meta={"epoch": 3})
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        save_checkpoint(loc, SPEC, model)
    ck = load_checkpoint(str(loc))
    assert ck.meta["epoch"] == 3 and ck.optimizer_state is not None
    for k, v in model.state_dict().items():
        assert torch.equal(ck.state_dict[k], v)
    with pytest.raises(CheckpointError, match="no checkpoint there"):
        load_checkpoint(location(f"s3://{BUCKET}/ck-test/models/t9999"))


def test_a_half_written_checkpoint_is_never_read(s3, monkeypatch) -> None:
    """A reader that finds new weights beside the old meta.json (hashes differ) reads again,
    and gets the whole new checkpoint once its meta.json is up; a torn one is never loaded."""
    import types

    from growsearch import checkpoint

    loc = location(f"s3://{BUCKET}/ck-test/models/t0001")
    save_checkpoint(loc, SPEC, _model(1), meta={"epoch": 1})
    new = _model(2)
    save_checkpoint(location(f"s3://{BUCKET}/ck-test/staging"), SPEC, new, meta={"epoch": 2})
    staged = location(f"s3://{BUCKET}/ck-test/staging")
    (loc / "model.safetensors").write_bytes((staged / "model.safetensors").read_bytes())
    # what the reader saw on each try, and its pauses between tries: during the first pause
    # the writer finishes the upload (meta.json last)
    seen: list[str] = []
    read_local = checkpoint.load_checkpoint  # each try's read of the downloaded copy

    def read(path, **kwargs):
        try:
            got = read_local(path, **kwargs)
        except CheckpointError as e:
            seen.append("torn" if "hash mismatch" in str(e) else str(e))
            raise
        seen.append("whole")
        return got

    def pause(seconds: float) -> None:
        seen.append("pause")
        if seen.count("pause") == 1:
            (loc / "meta.json").write_bytes((staged / "meta.json").read_bytes())

    monkeypatch.setattr(checkpoint, "load_checkpoint", read)
    monkeypatch.setattr(checkpoint, "time", types.SimpleNamespace(sleep=pause))
    ck = load_checkpoint(loc)
    assert seen == ["torn", "pause", "whole"]  # the new weights beside the old hashes: again
    assert ck.meta["epoch"] == 2
    assert all(torch.equal(ck.state_dict[k], v) for k, v in new.state_dict().items())
    # a torn checkpoint that stays torn is an error after every try, not a model
    other = location(f"s3://{BUCKET}/ck-test/other")
    save_checkpoint(other, SPEC, _model(3))
    (loc / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    seen.clear()
    with pytest.raises(CheckpointError, match="hash mismatch"):
        load_checkpoint(loc)
    assert seen == ["torn", "pause"] * (checkpoint.REMOTE_READ_TRIES - 1) + ["torn"]
