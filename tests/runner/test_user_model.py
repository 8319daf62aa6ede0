"""A search that starts from a user's own trained model (factory + safetensors weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import save_file

import growsearch
from growsearch.data import load_dataset
from growsearch.space import load_space
from growsearch.train import TrainConfig, evaluate, train
from tests.fixtures.user_models import digits_net

pytestmark = pytest.mark.slow
MODELS = Path(__file__).parents[1] / "fixtures" / "user_models.py"


def test_search_grows_a_users_trained_model(tmp_path: Path) -> None:
    from growsearch.runner import run_search

    data = load_dataset("digits")
    user = digits_net()
    train(user, data, TrainConfig(epochs=3, lr=3e-3, batch_size=64, seed=0))
    user_acc = evaluate(user, data.val)[1]
    save_file(user.state_dict(), str(tmp_path / "mine.safetensors"))
    (tmp_path / "space.yaml").write_text(
        f"""
dataset: {{name: digits}}
seed_model: {{factory: '{MODELS}:digits_net', weights: mine.safetensors}}
mutations: {{widen: {{factors: [1.5, 2.0], max_width: 64}}, deepen: {{max_layers_per_stage: 5}}}}
controller: {{name: evolution, population: 4, sample: 2}}
training: {{epochs: 2, seed_epochs: 1, batch_size: 64, lr: 0.001}}
budget: {{trials: 5}}
resources: {{cpus_per_trial: 1, concurrency: 2}}
"""
    )
    space = load_space(tmp_path / "space.yaml")
    df = run_search(space, tmp_path / "runs" / "mine", progress=False)
    assert len(df) == 5 and (df["status"] == "completed").all(), df[["trial_id", "status", "error"]]
    assert df["arch_summary"].str.startswith("custom[").all()
    seed = df[df["parent_id"].isna()].iloc[0]
    assert seed["val_acc"] > user_acc - 0.05  # the seed started from the user's weights
    by_id = df.set_index("trial_id")
    for _, child in df[df["parent_id"].notna()].iterrows():
        assert child["preserve_err"] <= 1e-5  # the user's model was morphed exactly
        assert child["acc_before"] == pytest.approx(
            by_id.loc[child["parent_id"], "val_acc"], abs=1e-9
        )
    best = growsearch.load_model(tmp_path / "runs" / "mine" / "best")
    top = growsearch.results.ranked(df).iloc[0]
    assert evaluate(best, data.test)[1] == pytest.approx(top["test_acc"], abs=1e-9)
