"""Loading search spaces: the shipped files, overrides, and one clear line per mistake."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml

from growsearch.arch import ArchSpec
from growsearch.exceptions import ConfigError
from growsearch.space import SearchSpace, load_space

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "search_spaces").glob("*.yaml"))

BASE = """
dataset: {name: digits}
seed_model: {family: cnn, stages: [[8], [16]]}
"""


def _write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_four_search_spaces_are_shipped() -> None:
    assert {p.name for p in SHIPPED} >= {
        "mnist1d_cnn.yaml",
        "mnist1d_mlp.yaml",
        "digits_cnn.yaml",
        "mnist5k_resnet.yaml",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_spaces_load(path: Path) -> None:
    space = load_space(path)
    assert isinstance(space.seed_arch, ArchSpec)
    assert space.name == path.stem
    assert space.mutations.fits(space.seed_arch)
    # to_dict() is the file's schema: written out and read back, it is the same space
    again = SearchSpace.from_dict(space.to_dict(), path)
    assert again.to_dict() == space.to_dict()
    assert again.seed_arch == space.seed_arch
    yaml.safe_dump(space.to_dict())  # plain data


def test_default_space() -> None:
    space = load_space(ROOT / "search_spaces" / "mnist1d_cnn.yaml")
    assert space.dataset.name == "mnist1d"
    assert space.seed_arch.family == "cnn" and space.seed_arch.input_shape == (1, 40)
    assert space.controller.name == "evolution"
    assert space.objectives == ("val_acc", "params")  # a Pareto front by default
    assert space.directions == ("maximize", "minimize")


def test_defaults_fill_every_section(tmp_path: Path) -> None:
    space = load_space(_write(tmp_path, BASE, "tiny.yaml"))
    assert space.name == "tiny" and space.seed == 0
    assert space.seed_arch.input_shape == (1, 8, 8) and space.seed_arch.num_classes == 10
    assert space.controller.name == "evolution" and space.controller.options == {}
    assert space.budget.trials == 20 and space.objectives == ("val_acc",)
    assert space.mutations.ops_per_child == (1, 2) and space.scheduler is None
    assert space.training.optimizer == "adam" and space.warm_start is True


def test_mlp_uses_the_flat_input_shape(tmp_path: Path) -> None:
    space = load_space(
        _write(tmp_path, "dataset: {name: digits}\nseed_model: {family: mlp, stages: [[32]]}\n")
    )
    assert space.seed_arch.input_shape == (64,)


def test_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    space = load_space(
        path,
        {
            "budget.trials": 5,
            "budget.time_minutes": 10,
            "resources.concurrency": 3,
            "seed": 3,
            "warm_start": False,
            "scheduler.grace_period": 2,
        },
    )
    assert (space.budget.trials, space.budget.time_minutes) == (5, 10.0)
    assert space.resources.concurrency == 3 and space.seed == 3 and space.warm_start is False
    assert space.scheduler is not None and space.scheduler.grace_period == 2
    assert space.overrides["budget.trials"] == 5
    more = space.with_overrides({"budget.trials": 7})
    assert more.budget.trials == 7 and more.seed == 3  # earlier overrides kept
    assert space.budget.trials == 5  # immutable


def test_an_override_of_the_controller_drops_the_old_options(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "controller: {name: evolution, population: 4}\n")
    space = load_space(path, {"controller.name": "hillclimb"})
    assert space.controller.name == "hillclimb" and space.controller.options == {}


def test_an_error_from_an_override_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    with pytest.raises(ConfigError) as info:
        load_space(path, {"budget.trials": -3})
    assert str(info.value) == (
        f"{path}: budget.trials: expected an integer > 0, got -3 (from override budget.trials=-3)"
    )


def test_user_model(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from tests.fixtures.user_models import digits_net

    models = Path(__file__).parents[1] / "fixtures" / "user_models.py"
    (tmp_path / "models.py").write_text(models.read_text())  # a file next to the YAML
    save_file(digits_net().state_dict(), str(tmp_path / "w.safetensors"))
    path = _write(
        tmp_path,
        "dataset: {name: digits}\nseed_model: {factory: 'models.py:digits_net', weights: w.safetensors}\n",
    )
    space = load_space(path)
    assert space.user_model.factory == f"{(tmp_path / 'models.py').resolve()}:digits_net"
    assert space.user_model.weights == (tmp_path / "w.safetensors").resolve()
    arch = space.seed_arch
    assert arch.family == "custom" and arch.summary() == "custom[8,16,32]"  # conv1, conv2, fc
    assert arch.custom.factory == space.user_model.factory
    again = SearchSpace.from_dict(space.to_dict(), path)
    assert again.user_model == space.user_model and again.seed_arch == arch


def test_a_space_pickles(tmp_path: Path) -> None:
    # A Ray searcher's state is pickled, with the controller and its space.
    space = load_space(_write(tmp_path, BASE))
    space.mutations.params(space.seed_arch)
    again = pickle.loads(pickle.dumps(space))
    assert again.to_dict() == space.to_dict() and again.seed_arch == space.seed_arch


def test_numbers_written_like_3e_3_are_numbers(tmp_path: Path) -> None:
    # YAML 1.1 reads 3e-3 (no dot) as a string
    space = load_space(_write(tmp_path, BASE + "training: {lr: 3e-3}\n"))
    assert space.training.lr == pytest.approx(0.003)


# (file text, the start of the message after "<file>: ")
MALFORMED = [
    ("dataset: {name: digits\n", "line 2: expected valid YAML"),
    ("dataset: [digits\nseed: 1\n", "line 2: expected valid YAML"),
    ("- a\n- b\n", "expected a mapping at the top level, got a list"),
    ("", "expected a mapping at the top level, got an empty file"),
    (BASE + "epoch: 3\n", "unknown key 'epoch' (valid keys: name, seed, dataset"),
    (BASE + "training: {epoch: 3}\n", "training: unknown key 'epoch' (valid keys: epochs,"),
    (BASE + "mutations: {widen: {factor: 2}}\n", "mutations.widen: unknown key 'factor'"),
    (
        BASE + "mutations: {widen: {factors: [1.5, 0.5]}}\n",
        "mutations.widen.factors[1]: expected a number > 1, got 0.5",
    ),
    (
        BASE + "mutations: {widen: {factors: [1.0]}}\n",
        "mutations.widen.factors[0]: expected a number > 1, got 1.0",
    ),
    (
        BASE + "mutations: {widen: {factors: []}}\n",
        "mutations.widen.factors: expected a non-empty list, got []",
    ),
    (BASE + "budget: {trials: 0}\n", "budget.trials: expected an integer > 0, got 0"),
    (BASE + "budget: {time_minutes: -5}\n", "budget.time_minutes: expected a number > 0, got -5"),
    (
        BASE + "budget: {trials: null}\n",
        "budget: expected at least one of trials, time_minutes or epochs, got none",
    ),
    (
        "dataset: {name: cifar}\nseed_model: {family: cnn, stages: [[8]]}\n",
        "dataset.name: expected one of ['mnist1d', 'mnist1d_tokens', 'digits', 'mnist5k', 'imagefolder', 'table'], got 'cifar'",
    ),
    ("seed_model: {family: cnn, stages: [[8]]}\n", "dataset: expected a value, got nothing"),
    (
        BASE + "dataset: {name: digits, root: no/such/folder}\n",
        "dataset.root: expected an existing folder, got 'no/such/folder'",
    ),
    (
        BASE + "training: {optimizer: adamm}\n",
        "training.optimizer: expected one of ['adam', 'adamw', 'sgd'], got 'adamm'",
    ),
    (
        BASE + "training: {init: identity}\n",
        "training.init: expected one of ['net2net', 'net2net-noise', 'zero', 'random-pad'], got 'identity'",
    ),
    (BASE + "training: {lr: fast}\n", "training.lr: expected a number > 0, got 'fast'"),
    (
        BASE + "training: {shrink_scope: bn}\n",
        "training.shrink_scope: expected one of ['auto', 'all', 'scale-invariant', 'homogeneous', 'homogeneous-hidden', 'homogeneous-norms'], got 'bn'",
    ),
    (
        BASE + "training: {shrink: often}\n",
        "training.shrink: expected 'auto' or a number in (0, 1], got 'often'",
    ),
    (
        BASE + "training: {shrink: 0}\n",
        "training.shrink: expected 'auto' or a number in (0, 1], got 0",
    ),
    (
        BASE + "training: {logit_scale: 2}\n",
        "training.logit_scale: expected a number > 0 and <= 1, got 2",
    ),
    (BASE + "training: {epochs: 2.5}\n", "training.epochs: expected an integer > 0, got 2.5"),
    (BASE + "training: {epochs: true}\n", "training.epochs: expected an integer > 0, got true"),
    (
        BASE + "training: {label_smoothing: 1}\n",
        "training.label_smoothing: expected a number in [0, 1), got 1",
    ),
    (BASE + "training: 5\n", "training: expected a mapping, got 5"),
    (
        BASE + "objectives: [val_acc, latency]\n",
        "objectives[1]: expected params or flops after the first objective, got 'latency'",
    ),
    (BASE + "objectives: [params]\n", "objectives[0]: expected the metric to optimise first"),
    (
        BASE + "objectives: [val_acc, params, params]\n",
        "objectives[2]: expected each objective once, got 'params' twice",
    ),
    (BASE + "warm_start: maybe\n", "warm_start: expected true or false, got 'maybe'"),
    (
        BASE + "resources: {gpus_per_trial: 1.5}\n",
        "resources.gpus_per_trial: expected a number in [0, 1] or a whole number, got 1.5",
    ),
    (
        BASE + "resources: {concurrency: 0}\n",
        "resources.concurrency: expected an integer > 0, got 0",
    ),
    (
        BASE + "resources: {gpus_per_trial: -1}\n",
        "resources.gpus_per_trial: expected a number >= 0, got -1",
    ),
    (
        BASE + "scheduler: {name: hyperband}\n",
        "scheduler.name: expected one of ['asha'], got 'hyperband'",
    ),
    (
        BASE + "scheduler: {name: asha, grace_period: 50}\n",
        "scheduler.grace_period: expected at most training.epochs (10), got 50",
    ),
    (BASE + "seed: -1\n", "seed: expected an integer >= 0, got -1"),
    (BASE + "name: 'my run/1'\n", "name: expected a run name"),
    (
        "dataset: {name: digits}\nseed_model: {factory: 'pkg.models:make', weights: missing.safetensors}\n",
        "seed_model.weights: expected an existing file, got 'missing.safetensors'",
    ),
    (
        "dataset: {name: digits}\nseed_model: {factory: 'pkg.models.make'}\n",
        "seed_model.factory: expected a string 'package.module:function' or 'file.py:function', got 'pkg.models.make'",
    ),
    (
        "dataset: {name: digits}\nseed_model: {factory: 'pkg:make', family: cnn}\n",
        "seed_model.family: expected no family alongside a factory",
    ),
    (
        "dataset: {name: digits}\nseed_model: {stages: [[8]]}\n",
        "seed_model.family: expected one of ['mlp', 'cnn', 'resnet'] (or a factory), got nothing",
    ),
    (
        "dataset: {name: digits}\nseed_model: {family: rnn, stages: [[8]]}\n",
        "seed_model.family: expected one of ['mlp', 'cnn', 'resnet'], got 'rnn'",
    ),
    (
        "dataset: {name: digits}\nseed_model: {family: cnn}\n",
        "seed_model.stages: expected a list of lists of widths, got nothing",
    ),
    (
        "dataset: {name: digits}\nseed_model: {family: cnn, stages: [8, 16]}\n",
        "seed_model.stages[0]: expected a non-empty list, got 8",
    ),
    (
        "dataset: {name: digits}\nseed_model: {family: cnn, stages: [[8], [0]]}\n",
        "seed_model.stages[1][0]: expected an integer > 0, got 0",
    ),
    (
        "dataset: {name: digits}\nseed_model: {family: cnn, stages: [[8]], kernel_size: 4}\n",
        "seed_model.kernel_size: expected an odd integer > 0, got 4",
    ),
    (
        "dataset: {name: digits}\nseed_model: {family: cnn, stages: [[8]], dropout: 1.5}\n",
        "seed_model.dropout: expected a number in [0, 1), got 1.5",
    ),
    (
        "dataset: {name: digits}\nseed_model: {family: resnet, stages: [[8], [16]]}\n",
        "seed_model.stage_widths: expected a residual width per stage for resnet, got nothing",
    ),
    (
        "dataset: {name: digits}\nseed_model: {family: resnet, stages: [[8], [16]], stage_widths: [8]}\n",
        "seed_model.stage_widths: expected 2 widths (one per stage), got [8]",
    ),
    (
        "dataset: {name: digits}\nseed_model: {family: cnn, stages: [[8]], stage_widths: [8]}\n",
        "seed_model.stage_widths: expected null for family 'cnn'",
    ),
    (
        BASE + "mutations: {widen: {max_width: 8}}\n",
        "mutations.widen.max_width: expected at least the seed's largest width (16), got 8",
    ),
    (
        BASE + "mutations: {deepen: {max_layers_per_stage: 0}}\n",
        "mutations.deepen.max_layers_per_stage: expected an integer > 0, got 0",
    ),
    (
        "dataset: {name: digits}\nseed_model: {family: cnn, stages: [[8, 8, 8]]}\nmutations: {deepen: {max_layers_per_stage: 2}}\n",
        "mutations.deepen.max_layers_per_stage: expected at least the seed's deepest stage (3 layers), got 2",
    ),
    (
        BASE + "mutations: {max_params: 100}\n",
        "mutations.max_params: expected at least the seed's 1922 parameters, got 100",
    ),
    (
        BASE + "mutations: {max_params: -1}\n",
        "mutations.max_params: expected an integer > 0, got -1",
    ),
    (
        BASE + "mutations: {widen: {targets: [s0l0, conv9]}}\n",
        "mutations.widen.targets[1]: expected a layer name of the seed (s0l0, s1l0), got 'conv9'",
    ),
    (
        BASE + "mutations: {widen: {targets: some}}\n",
        "mutations.widen.targets: expected 'all' or a non-empty list of layer names, got 'some'",
    ),
    (
        BASE + "mutations: {deepen: {after: [s9l0]}}\n",
        "mutations.deepen.after[0]: expected a layer name of the seed (s0l0, s1l0), got 's9l0'",
    ),
    (
        BASE + "mutations: {ops_per_child: [3, 1]}\n",
        "mutations.ops_per_child: expected an integer > 0 or a list [min, max] with 1 <= min <= max, got [3, 1]",
    ),
    (
        BASE + "mutations: {widen: {enabled: false}, deepen: {enabled: false}}\n",
        "mutations: expected widen or deepen enabled, got both disabled",
    ),
    (BASE + "mutations: [widen]\n", "mutations: expected a mapping, got ['widen']"),
]


@pytest.mark.parametrize(
    ("text", "message"),
    MALFORMED,
    ids=[m[1].split(":")[0] + f"-{i}" for i, m in enumerate(MALFORMED)],
)
def test_malformed_spaces(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text, "bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_space(path)
    line = str(info.value)
    assert line.startswith(f"{path}: {message}"), line
    assert "\n" not in line and "pydantic" not in line.lower()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: expected an existing search-space file"):
        load_space(tmp_path / "nope.yaml")


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a search-space file, got a folder"):
        load_space(tmp_path)


def test_an_unknown_override_key(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"budget: unknown key 'trails' .*\(from override budget\.trails=5\)"
    ):
        load_space(_write(tmp_path, BASE), {"budget.trails": 5})


def test_every_shrink_scope_of_the_recipe_can_be_written(tmp_path: Path) -> None:
    """The loader's list (kept torch-free) is the recipe's, and each value builds a recipe."""
    from growsearch.grow import SHRINK_SCOPES
    from growsearch.space._config import SHRINK_SCOPES as LOADER_SCOPES

    assert LOADER_SCOPES == SHRINK_SCOPES
    for scope in SHRINK_SCOPES:
        space = load_space(_write(tmp_path, BASE + f"training: {{shrink_scope: {scope}}}\n"))
        assert space.training.recipe().shrink_scope == scope
