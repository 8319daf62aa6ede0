"""Write scikit-learn's bundled breast-cancer table (569 rows, 30 features) to a CSV beside this
file, with the label as text: the table ``space.yaml`` searches. Nothing is downloaded.

    python search_spaces/breast_cancer/make_csv.py [OUT.csv]
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.datasets import load_breast_cancer


def write(out: Path) -> Path:
    df = load_breast_cancer(as_frame=True).frame
    df["diagnosis"] = df.pop("target").map({0: "malignant", 1: "benign"})
    df.to_csv(out, index=False)
    return out


if __name__ == "__main__":
    print(
        write(
            Path(sys.argv[1])
            if len(sys.argv) > 1
            else Path(__file__).with_name("breast_cancer.csv")
        )
    )
