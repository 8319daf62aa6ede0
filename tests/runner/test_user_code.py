"""A user's model code is found where it runs: sibling modules of a factory file import, and the
code and seed weights reach Ray workers that lack the user's files."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import growsearch.arch._custom as custom
from growsearch.arch._factory import load_factory, module_name, shipped_copy
from growsearch.exceptions import ConfigError, SpecError
from growsearch.runner import _usercode
from growsearch.runner._usercode import (
    SEED_WEIGHTS,
    prepare_user_code,
    runtime_env,
    seed_weights,
    ship_paths,
    stage_seed_weights,
)
from growsearch.storage import location

CODE = Path(__file__).parents[1] / "fixtures" / "usercode"


def _copy_code(dst: Path) -> Path:
    shutil.copytree(CODE, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


# ---- load_factory ---------------------------------------------------------------------------
def test_a_factory_file_imports_its_sibling_modules_now_and_lazily() -> None:
    model = load_factory(f"{CODE / 'uc_net.py'}:user_net")()
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert str(CODE.resolve()) in sys.path  # kept there, for lazy imports in the function later
    assert load_factory(f"{CODE / 'uc_net.py'}:user_net") is load_factory(
        f"{CODE / 'uc_net.py'}:user_net"
    )  # imported once per process


def test_the_module_name_of_a_factory_file_is_the_same_in_every_process() -> None:
    # Python's hash() of a str differs between processes; the driver and workers must agree
    assert module_name("/a/b/net.py") == module_name("/a/b/../b/net.py")
    assert module_name("/a/b/net.py") != module_name("/a/c/net.py")
    assert (
        module_name("/a/b/net.py")
        == "growsearch_user_" + __import__("hashlib").sha1(b"/a/b/net.py").hexdigest()[:16]
    )


def test_a_worker_without_the_file_imports_the_copy_ray_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray unpacks a py_modules folder ".../mycode_x1" as "<_ray_pkg_hash>/mycode_x1/", with
    # "<_ray_pkg_hash>" on sys.path; the user's own path does not exist on this worker
    pkg = tmp_path / "_ray_pkg_0123abcd"
    _copy_code(pkg / "mycode_x1")
    monkeypatch.syspath_prepend(str(pkg))
    missing = tmp_path / "elsewhere" / "mycode_x1" / "uc_net.py"
    assert shipped_copy(missing) == pkg / "mycode_x1" / "uc_net.py"
    try:
        model = load_factory(f"{missing}:user_net")()
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
        assert sys.modules[module_name(missing)].__file__ == str(pkg / "mycode_x1" / "uc_net.py")
        assert str(pkg / "mycode_x1") in sys.path  # its siblings import from the shipped copy
    finally:
        sys.modules.pop(module_name(missing), None)
    # nothing shipped under that folder name: the error names the user's path
    with pytest.raises(SpecError, match=r"cannot import .*FileNotFoundError.*No such file"):
        load_factory(f"{tmp_path / 'elsewhere' / 'other' / 'uc_net.py'}:user_net")


def test_a_failed_import_is_not_cached(tmp_path: Path) -> None:
    f = tmp_path / "late_net.py"
    f.write_text("from late_sibling_x7 import make\n")
    with pytest.raises(SpecError, match="cannot import .*ModuleNotFoundError.*late_sibling_x7"):
        load_factory(f"{f}:make")
    (tmp_path / "late_sibling_x7.py").write_text(
        "from torch import nn\n\ndef make():\n    return nn.Linear(2, 2)\n"
    )
    assert isinstance(load_factory(f"{f}:make")(), torch.nn.Linear)  # retried, not a stale module


def test_load_factory_errors_keep_their_messages() -> None:
    with pytest.raises(SpecError, match="expected 'package.module:function'"):
        load_factory("no_colon")
    with pytest.raises(SpecError, match="cannot import 'no_such_pkg_q9.models'"):
        load_factory("no_such_pkg_q9.models:make")
    with pytest.raises(SpecError, match="has no function 'nope'"):
        load_factory(f"{CODE / 'uc_net.py'}:nope")


# ---- what is shipped ------------------------------------------------------------------------
def test_what_is_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ship_paths(f"{CODE / 'uc_net.py'}:user_net") == [CODE.resolve()]
    assert ship_paths("torch.nn:Linear") == []  # installed: the workers have it
    assert ship_paths("growsearch.arch:build") == []
    assert ship_paths("no_such_pkg_q9:make") == []
    # a package or a single-file module of the user's own (e.g. found in the current folder)
    (tmp_path / "ucpkg_q9").mkdir()
    (tmp_path / "ucpkg_q9" / "__init__.py").write_text("")
    (tmp_path / "ucpkg_q9" / "models.py").write_text("")
    (tmp_path / "ucmod_q9.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert ship_paths("ucpkg_q9.models:make") == [tmp_path / "ucpkg_q9"]
    assert ship_paths("ucmod_q9:make") == [tmp_path / "ucmod_q9.py"]
    env = runtime_env(f"{CODE / 'uc_net.py'}:user_net", cluster=True)
    assert env is not None and env["py_modules"] == [str(CODE.resolve())]
    assert "__pycache__" in env["excludes"]


def test_a_folder_too_large_to_ship(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    code = _copy_code(tmp_path / "big")
    (code / "data.bin").write_bytes(b"\0" * 4096)
    monkeypatch.setattr(_usercode, "MAX_SHIP_BYTES", 2048)
    factory = f"{code / 'uc_net.py'}:user_net"
    with pytest.raises(ConfigError, match=r"space.yaml: seed_model.factory: .* holds more than"):
        runtime_env(factory, cluster=True, where="space.yaml")
    with caplog.at_level(logging.WARNING, logger="growsearch"):
        assert runtime_env(factory, cluster=False) is None  # local workers read it in place
    assert "not shipped" in caplog.text
    (code / ".git").mkdir()
    (code / "data.bin").rename(code / ".git" / "data.bin")  # excluded folders do not count
    assert runtime_env(factory, cluster=True) is not None


def test_seed_weights_are_copied_into_the_run_folder_once(tmp_path: Path) -> None:
    user = tmp_path / "mine.safetensors"
    save_file({"w": torch.ones(2)}, str(user))
    run = tmp_path / "run"
    run.mkdir()
    assert seed_weights(run, str(user)) == str(user)  # no copy yet: the user's file
    assert stage_seed_weights(run, user) == location(run) / SEED_WEIGHTS
    assert seed_weights(run, str(user)) == str(run / SEED_WEIGHTS)
    save_file({"w": torch.zeros(2)}, str(user))  # changed later: the run keeps its snapshot
    stage_seed_weights(run, user)
    from safetensors.torch import load_file

    assert load_file(str(run / SEED_WEIGHTS))["w"].tolist() == [1.0, 1.0]
    user.unlink()
    assert stage_seed_weights(tmp_path / "run2", user) is None  # gone: nothing to copy


def test_prepare_user_code_for_a_model_family_does_nothing(tmp_path: Path) -> None:
    class Space:
        user_model = None

    assert prepare_user_code(Space(), tmp_path, None) is None
    assert list(tmp_path.iterdir()) == []


# ---- real searches --------------------------------------------------------------------------
SPACE = """
dataset: {{name: digits}}
seed_model: {{factory: '{factory}'{weights}}}
mutations: {{widen: {{factors: [1.5, 2.0], max_width: 64}}, deepen: {{max_layers_per_stage: 4}}}}
controller: {{name: evolution, population: 3, sample: 2}}
training: {{epochs: 1, seed_epochs: 2, batch_size: 64, lr: 0.003}}
budget: {{trials: {trials}}}
resources: {{cpus_per_trial: 1, concurrency: 2}}
"""


def _needs_switched_custom() -> None:
    assert custom.load_factory is load_factory, (
        "growsearch/arch/_custom.py must import load_factory from growsearch.arch._factory"
    )


@pytest.mark.slow
def test_search_over_a_factory_that_imports_sibling_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from growsearch.runner import run_search
    from growsearch.space import load_space

    _needs_switched_custom()
    code = _copy_code(tmp_path / "project" / "models_q1")
    spaces = tmp_path / "project" / "spaces"
    spaces.mkdir()
    # relative to the search-space file's folder, not to the current folder
    (spaces / "space.yaml").write_text(
        SPACE.format(factory="../models_q1/uc_net.py:user_net", weights="", trials=2)
    )
    monkeypatch.chdir(tmp_path)
    space = load_space(spaces / "space.yaml")
    assert space.user_model.factory == f"{code / 'uc_net.py'}:user_net"
    df = run_search(space, tmp_path / "runs" / "sib", progress=False)
    assert len(df) == 2 and (df["status"] == "completed").all(), df[["trial_id", "status", "error"]]
    assert df["arch_summary"].str.startswith("custom[").all()
    assert (df[df["parent_id"].notna()]["preserve_err"] <= 1e-5).all()


@pytest.mark.slow
def test_the_users_code_and_weights_reach_workers_that_lack_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The factory's folder (code and weights) is deleted right after the driver started Ray:
    every trial's worker must build the model from the shipped code, and the seed trial must
    start from the run folder's copy of the weights."""
    import ray

    from growsearch.data import load_dataset
    from growsearch.runner import run_search
    from growsearch.space import load_space
    from growsearch.train import TrainConfig, evaluate, train

    _needs_switched_custom()
    code = _copy_code(tmp_path / "mycode_q2")
    data = load_dataset("digits")
    user = load_factory(f"{code / 'uc_net.py'}:user_net")()
    train(user, data, TrainConfig(epochs=3, lr=3e-3, batch_size=64, seed=0))
    user_acc = evaluate(user, data.val)[1]
    save_file(user.state_dict(), str(code / "trained.safetensors"))
    (tmp_path / "space.yaml").write_text(
        SPACE.format(
            factory="mycode_q2/uc_net.py:user_net",
            weights=", weights: mycode_q2/trained.safetensors",
            trials=3,
        )
    )
    space = load_space(tmp_path / "space.yaml")

    real_init = ray.init
    removed = []

    def init_then_remove_the_users_folder(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = real_init(*args, **kwargs)  # Ray is up, the runtime_env uploaded
        shutil.rmtree(code)
        removed.append(kwargs.get("runtime_env"))
        return out

    monkeypatch.setattr(ray, "init", init_then_remove_the_users_folder)
    run = tmp_path / "runs" / "gone"
    df = run_search(space, run, progress=False)
    assert removed and not code.exists()  # the folder was gone before any trial started
    assert len(df) == 3 and (df["status"] == "completed").all(), df[["trial_id", "status", "error"]]
    assert removed[0] is not None  # shipped with the job's runtime_env
    assert (run / SEED_WEIGHTS).is_file()
    seed = df[df["parent_id"].isna()].iloc[0]
    assert seed["val_acc"] > user_acc - 0.05  # it started from the user's trained weights
    by_id = df.set_index("trial_id")
    for _, child in df[df["parent_id"].notna()].iterrows():
        assert child["acc_before"] == pytest.approx(
            by_id.loc[child["parent_id"], "val_acc"], abs=1e-9
        )


@pytest.mark.slow
def test_on_a_cluster_joined_with_address_the_code_travels_with_the_job(tmp_path: Path) -> None:
    """``run_search(address=...)`` on a Ray head started with ``ray start`` (in a loopback-only
    network namespace): the job's runtime_env carries the factory's folder, deleted once the
    driver has joined the cluster."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a loopback-only network namespace")
    _needs_switched_custom()
    root = Path(__file__).parents[2]
    scenario = subprocess.Popen(
        ["unshare", "-n", sys.executable, __file__, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=root,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
            # read when ray is imported: a multi-node Ray on loopback, with a token of its own
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
        },
    )
    try:
        log, _ = scenario.communicate(timeout=600)
    except subprocess.TimeoutExpired:  # SIGTERM: it stops its Ray processes on the way out
        scenario.terminate()
        log, _ = scenario.communicate(timeout=60)
    report = tmp_path / "report.json"
    assert report.is_file(), log[-3000:]
    out = json.loads(report.read_text())
    assert out.get("head_rc") == 0, out
    assert out.get("removed"), out
    assert out.get("statuses") == ["completed"] * 3, out


def _cluster_scenario(work: Path) -> None:
    """Inside ``unshare -n``: start a 2-CPU head node, run a 3-trial search on it with
    ``address``, deleting the user's folder right after the driver joined; write report.json."""
    import signal
    import tempfile

    import ray

    from growsearch.runner import run_search
    from growsearch.space import load_space
    from tests.runner.cluster_scenario import find

    port = 6397
    report: dict = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # so `finally` runs
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    before = set(find(b"ray"))
    ray_tmp = tempfile.mkdtemp(prefix="gs_uc_")  # short: Ray's socket paths must fit 107 bytes
    try:
        head = subprocess.run(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={port}",
             "--num-cpus=2", "--include-dashboard=false", "--node-ip-address=127.0.0.1",
             f"--temp-dir={ray_tmp}"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        report["head_rc"], report["head_err"] = head.returncode, head.stderr[-1500:]
        code = _copy_code(work / "clustercode")
        save_file(load_factory(f"{code / 'uc_net.py'}:user_net")().state_dict(), str(code / "w.safetensors"))  # fmt: skip
        (work / "space.yaml").write_text(
            SPACE.format(
                factory="clustercode/uc_net.py:user_net",
                weights=", weights: clustercode/w.safetensors",
                trials=3,
            )
        )
        space = load_space(work / "space.yaml")
        real_init = ray.init

        def init_then_remove(*args, **kwargs):  # type: ignore[no-untyped-def]
            out = real_init(*args, **kwargs)
            shutil.rmtree(code)
            report["removed"] = True
            return out

        ray.init = init_then_remove  # type: ignore[assignment]
        df = run_search(space, work / "runs" / "c", address=f"127.0.0.1:{port}", progress=False)
        report["statuses"] = df.sort_values("trial_id")["status"].tolist()
        report["errors"] = [e for e in df["error"].tolist() if e]
    except BaseException as e:  # noqa: B036 (reported, then the clean-up below)
        report["error"] = f"{type(e).__name__}: {e}"
    finally:
        for pid in set(find(b"ray")) - before - {os.getpid()}:  # this namespace's Rays only
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(ray_tmp, ignore_errors=True)
        (work / "report.json").write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    _cluster_scenario(Path(sys.argv[1]).resolve())
