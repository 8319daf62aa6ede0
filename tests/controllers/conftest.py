from __future__ import annotations

import pytest

from growsearch.space import SearchSpace, load_space

SPACES = {
    "cnn": """
dataset: {name: digits}
seed_model: {family: cnn, stages: [[8], [16]], kernel_size: 3}
mutations: {widen: {max_width: 64}, deepen: {max_layers_per_stage: 3}, max_params: 40000}
""",
    "mlp": """
dataset: {name: digits}
seed_model: {family: mlp, stages: [[16, 16]]}
mutations: {widen: {max_width: 128}, deepen: {max_layers_per_stage: 4}, max_params: 30000,
            ops_per_child: [1, 3]}
objectives: [val_acc, params]
""",
    "resnet": """
dataset: {name: digits}
seed_model: {family: resnet, stages: [[8], [8]], stage_widths: [8, 16]}
mutations: {widen: {max_width: 48}, deepen: {max_layers_per_stage: 2}, max_params: 60000}
""",
}


@pytest.fixture(scope="session")
def spaces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SearchSpace]:
    folder = tmp_path_factory.mktemp("spaces")
    out = {}
    for name, text in SPACES.items():
        path = folder / f"{name}.yaml"
        path.write_text(text)
        out[name] = load_space(path)
    return out
