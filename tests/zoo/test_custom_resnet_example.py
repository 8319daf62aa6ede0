"""The worked example users copy (search_spaces/custom_resnet/) loads: its YAML validates, its
factory file and committed seed weights resolve next to it, and the weights fit the model."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from growsearch.arch._factory import load_factory
from growsearch.space import load_space

EXAMPLE = Path(__file__).resolve().parents[2] / "search_spaces" / "custom_resnet"


def test_custom_resnet_example_loads() -> None:
    space = load_space(EXAMPLE / "space.yaml")
    assert space.name == "custom_resnet"
    assert space.user_model is not None
    assert space.user_model.factory == f"{EXAMPLE / 'model.py'}:resnet"
    assert space.user_model.weights == EXAMPLE / "seed.safetensors"
    assert space.seed_arch is not None and space.seed_arch.family == "custom"
    assert space.seed_arch.input_shape == (1, 8, 8)
    assert space.mutations.ops_per_child == (1, 2)
    model = load_factory(space.user_model.factory)()
    model.load_state_dict(load_file(str(space.user_model.weights)), strict=True)
