"""``dataset: {name: table, path: ..., target: ...}``: CSV and parquet tables through pandas, on
scikit-learn's bundled breast-cancer table with categorical columns and missing values added."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_breast_cancer

from growsearch.data import load_dataset, load_table
from growsearch.data._table import encode
from growsearch.exceptions import DataError
from growsearch.space import load_space


def cancer_table() -> pd.DataFrame:
    """The breast-cancer table with a text label, two categorical columns and holes."""
    df = load_breast_cancer(as_frame=True).frame
    rng = np.random.default_rng(0)
    df["diagnosis"] = np.where(df.pop("target") == 1, "benign", "malignant")
    df["size"] = pd.cut(df["mean radius"], [0, 12, 16, 100], labels=["small", "mid", "large"])
    df["size"] = df["size"].astype(str)
    df["clinic"] = rng.choice(["north", "south", "east"], len(df))
    for col in ("mean texture", "worst area", "size"):
        df.loc[rng.random(len(df)) < 0.1, col] = None
    return df


@pytest.fixture(params=["csv", "parquet"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / f"cancer.{request.param}"
    df = cancer_table()
    df.to_csv(path, index=False) if request.param == "csv" else df.to_parquet(path)
    return path


def test_a_table_with_categoricals_and_missing_values(table: Path) -> None:
    data = load_table(table, "diagnosis")
    # 30 numeric columns, 2 of them with holes (+2 indicators), size: 3 + missing, clinic: 3
    assert data.input_shape == (30 + 2 + 4 + 3,) and data.num_classes == 2
    assert len(data.train) + len(data.val) + len(data.test) == 569
    assert len(data.val) == len(data.test) == 85
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == torch.float32 and torch.isfinite(split.x).all()
        assert 0.2 < split.y.float().mean() < 0.5  # ~37% malignant (class 1) in every split
    # numbers standardised with the training statistics; an indicator follows a column with holes
    indicators = [2, 25]  # after 'mean texture' and 'worst area'
    numeric = data.train.x[:, [i for i in range(32) if i not in indicators]]
    assert numeric.mean(0).abs().max() < 1e-4 and (numeric.std(0) - 1).abs().max() < 0.1
    assert 0.03 < data.train.x[:, indicators].mean() < 0.2
    # one-hot categories: exactly one column set per categorical per row
    onehot = data.train.x[:, 32:]
    assert set(onehot.unique().tolist()) == {0.0, 1.0}
    assert (onehot.sum(1) == 2).all()


def test_csv_and_parquet_give_the_same_data(tmp_path: Path) -> None:
    df = cancer_table()
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    a, b = (
        load_table(tmp_path / "t.csv", "diagnosis"),
        load_table(tmp_path / "t.parquet", "diagnosis"),
    )
    assert torch.allclose(a.train.x, b.train.x, atol=1e-5) and torch.equal(a.test.y, b.test.y)


def test_missing_numbers_become_the_training_mean_with_an_indicator() -> None:
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0, 5.0], "b": ["x", None, "y", "z"]})
    x = encode(df, np.array([0, 1, 2]))
    # a: mean 2, std 1 over the training rows 0, 2 (row 1 is missing); row 3 unseen in training
    assert x[:, 0].tolist() == [-1.0, 0.0, 1.0, 3.0]
    assert x[:, 1].tolist() == [0.0, 1.0, 0.0, 0.0]  # a_missing
    # b: training categories (missing, x, y); 'z' was never seen in training: no column set
    assert x[:, 2:].tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]]


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda df: df.drop(columns=["diagnosis"]), "no target column 'diagnosis'"),
        (lambda df: df.assign(diagnosis="benign"), "has one class"),
        (lambda df: df.assign(when=pd.Timestamp("2024-01-01")), "column 'when' has type"),
        (lambda df: df[["diagnosis"]], "no feature columns"),
    ],
)
def test_bad_tables_are_one_line_errors(tmp_path: Path, edit, needle: str) -> None:
    path = tmp_path / "t.parquet"
    edit(cancer_table()).to_parquet(path)
    with pytest.raises(DataError) as e:
        load_table(path, "diagnosis")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_space_over_a_table(tmp_path: Path) -> None:
    cancer_table().to_csv(tmp_path / "cancer.csv", index=False)
    space = tmp_path / "space.yaml"
    space.write_text(
        "dataset: {name: table, path: cancer.csv, target: diagnosis}\n"
        "seed_model: {family: mlp, stages: [[16]]}\n"
    )
    s = load_space(space)
    assert s.dataset.path == str(tmp_path / "cancer.csv")
    assert s.seed_arch is not None and s.seed_arch.input_shape == (39,)
    assert s.seed_arch.num_classes == 2
    assert load_dataset("table", path=s.dataset.path, target="diagnosis").num_classes == 2


def test_the_example_table_space_loads(tmp_path: Path) -> None:
    """search_spaces/breast_cancer: its script writes the table, the space loads it."""
    import runpy
    import shutil

    example = Path(__file__).parents[2] / "search_spaces" / "breast_cancer"
    shutil.copy(example / "space.yaml", tmp_path / "space.yaml")
    runpy.run_path(str(example / "make_csv.py"))["write"](tmp_path / "breast_cancer.csv")
    space = load_space(tmp_path / "space.yaml")
    assert space.seed_arch is not None and space.seed_arch.input_shape == (30,)
    data = load_table(tmp_path / "breast_cancer.csv", "diagnosis")
    assert data.num_classes == 2 and len(data.train) == 569 - 2 * 85


def test_a_regression_target_is_standardised_with_training_statistics(tmp_path: Path) -> None:
    df = cancer_table()
    df["radius"] = df.pop("mean radius")  # a numeric target; the text label stays a feature
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    data = load_table(path, "radius", regression=True)
    assert not data.labels and data.num_classes == 1 and data.train.y.dtype == torch.float32
    assert len(data.train) + len(data.val) + len(data.test) == len(df)
    assert abs(float(data.train.y.mean())) < 1e-5 and float(data.train.y.std()) == pytest.approx(
        1.0, abs=0.01
    )
    (mean,), (std,) = data.target_stats
    raw = np.sort(
        np.concatenate([(s.y * std + mean).numpy() for s in (data.train, data.val, data.test)])
    )
    assert raw == pytest.approx(np.sort(df["radius"].to_numpy()), abs=1e-3)  # in its own units
    with pytest.raises(DataError, match="regression target 'diagnosis' has type"):
        load_table(path, "diagnosis", regression=True)
