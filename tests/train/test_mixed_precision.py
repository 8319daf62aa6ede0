"""Mixed precision: the dtype choice (CUDA's included, as a pure function) and real training with
autocast + GradScaler on the CPU, which runs the same code path a GPU does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from growsearch.arch import ArchSpec, build
from growsearch.checkpoint import load_checkpoint, save_checkpoint
from growsearch.data import Dataset, load_dataset
from growsearch.exceptions import ConfigError
from growsearch.space import load_space
from growsearch.train import TrainConfig, evaluate, precision_name, precision_plan, train

SPEC = ArchSpec.create("mlp", (64,), 10, [32])
BF16, FP16 = torch.bfloat16, torch.float16


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", flat=True)


@pytest.mark.parametrize(
    ("amp", "device", "bf16_ok", "expected"),
    [
        # the default (True = "auto"): CUDA only, bf16 where the GPU has it, else fp16 + scaler
        (True, "cuda", True, (BF16, False)),
        ("auto", "cuda", True, (BF16, False)),
        ("auto", "cuda", False, (FP16, True)),
        (True, "cuda", False, (FP16, True)),
        (True, "cpu", True, (None, False)),
        ("auto", "cpu", True, (None, False)),
        ("auto", "mps", True, (None, False)),
        # off: full precision everywhere
        (False, "cuda", True, (None, False)),
        ("off", "cuda", False, (None, False)),
        ("off", "cpu", True, (None, False)),
        # explicit: on any device
        ("bf16", "cpu", True, (BF16, False)),
        ("bf16", "cuda", True, (BF16, False)),
        ("fp16", "cpu", True, (FP16, True)),
        ("fp16", "cuda", True, (FP16, True)),
        ("fp16", "cuda", False, (FP16, True)),
    ],
)
def test_precision_plan(amp, device: str, bf16_ok: bool, expected) -> None:
    assert precision_plan(amp, device, bf16_ok) == expected


def test_precision_plan_refuses_bf16_on_a_gpu_without_it() -> None:
    with pytest.raises(ConfigError, match="bf16.*does not support bfloat16"):
        precision_plan("bf16", "cuda", False)


@pytest.mark.parametrize("bad", ["fp8", "BF16", "on", "", 1, None, 16.0])
def test_invalid_amp_is_a_config_error(bad) -> None:
    with pytest.raises(ConfigError, match=r"TrainConfig\.amp: expected True, False or one of"):
        TrainConfig(amp=bad)
    with pytest.raises(ConfigError, match="amp: expected"):
        precision_plan(bad, "cpu", True)


def test_precision_names() -> None:
    assert [precision_name(d) for d in (None, BF16, FP16)] == ["fp32", "bf16", "fp16"]


def _train(data: Dataset, amp, epochs: int = 3) -> tuple[torch.nn.Module, list, dict]:
    """Train SPEC on digits on the CPU; record the dtypes the first layer computed in, and the
    size of the last layer's first (possibly scaled) gradient."""
    model = build(SPEC, seed=0)
    seen: dict = {"dtypes": set(), "grad": []}
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    first.register_forward_hook(lambda mod, i, out: seen["dtypes"].add(out.dtype))
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    last.weight.register_hook(lambda g: seen["grad"].append(float(g.float().norm())))
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=1e-2, device="cpu", amp=amp, seed=0)
    results = train(model, data, cfg)
    return model, results, seen


@pytest.mark.parametrize(("amp", "dtype"), [("bf16", BF16), ("fp16", FP16)])
def test_real_training_with_autocast_on_cpu(digits: Dataset, amp: str, dtype) -> None:
    model, results, seen = _train(digits, amp)
    assert dtype in seen["dtypes"]  # autocast really was on (evaluation runs in float32)
    assert results[-1].train_loss < 0.6 * results[0].train_loss  # loss falls
    assert results[-1].val_acc > 0.85  # chance is 0.1
    assert evaluate(model, digits.test)[1] > 0.85
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # master weights stay fp32


def test_fp16_scales_the_loss_bf16_does_not(digits: Dataset) -> None:
    """The GradScaler is in the loop for fp16 (the first backward sees gradients x 2**16) and
    absent for bf16 and full precision, whose gradients are the true ones."""
    g = {amp: _train(digits, amp, epochs=1)[2]["grad"][0] for amp in ("off", "bf16", "fp16")}
    assert g["fp16"] / g["off"] == pytest.approx(2.0**16, rel=0.05)
    assert g["bf16"] / g["off"] == pytest.approx(1.0, rel=0.05)


def test_default_keeps_full_precision_on_cpu(digits: Dataset) -> None:
    _, results, seen = _train(digits, True, epochs=1)  # TrainConfig's default: AMP on CUDA only
    assert seen["dtypes"] == {torch.float32}
    assert results[-1].val_acc > 0.5


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_checkpoint_of_amp_model_is_float32_and_reloads(
    digits: Dataset, tmp_path: Path, amp: str
) -> None:
    model, results, _ = _train(digits, amp, epochs=2)
    path = save_checkpoint(tmp_path / "ck", SPEC, model, meta={"precision": amp})
    weights = load_file(str(path / "model.safetensors"))
    float_weights = {k: v.dtype for k, v in weights.items() if v.is_floating_point()}
    assert float_weights and set(float_weights.values()) == {torch.float32}
    ck = load_checkpoint(path)
    assert json.loads((path / "meta.json").read_text())["precision"] == amp
    reloaded = ck.model("cpu")
    assert evaluate(reloaded, digits.val) == pytest.approx(evaluate(model, digits.val), abs=1e-6)
    assert evaluate(reloaded, digits.val)[1] == pytest.approx(results[-1].val_acc, abs=1e-9)


SPACE = """
dataset: {name: digits}
seed_model: {family: mlp, stages: [[16]]}
training: {epochs: 2, lr: 0.003AMP}
"""


@pytest.mark.parametrize(
    ("written", "value"),
    [("", "auto"), (", amp: auto", "auto"), (", amp: true", "auto"), (", amp: off", "off"),
     (", amp: false", "off"), (", amp: bf16", "bf16"), (", amp: fp16", "fp16")],
)  # fmt: skip
def test_space_amp_field(tmp_path: Path, written: str, value: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SPACE.replace("AMP", written))
    space = load_space(path)
    assert space.training.amp == value
    assert space.to_dict()["training"]["amp"] == value
    TrainConfig(amp=value)  # what the trainable passes on is valid


@pytest.mark.parametrize("bad", ["fp8", "'yes'", "1", "[bf16]"])
def test_space_amp_bad_value_names_file_and_key(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SPACE.replace("AMP", f", amp: {bad}"))
    with pytest.raises(ConfigError) as e:
        load_space(path)
    line = str(e.value)
    assert "\n" not in line and line.startswith(f"{path}: training.amp: expected one of")
