"""Regenerate the example projects with `slipway init`, from datasets scikit-learn ships (no download).

    python examples/make_examples.py        # rewrites examples/<name>/ (review the diff like code)

Each project is what a team gets from its own CSV: one per task, with the awkward parts real data has
(string class labels, a label column with spaces and parentheses).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def tumors() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
    return frame


def wine() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["cultivar"] = frame.pop("target").map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return frame


def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame["progression (1 year)"] = frame.pop("target")
    return frame


EXAMPLES: dict[str, tuple[Callable[[], pd.DataFrame], str]] = {
    "tumor-binary": (tumors, "diagnosis"),
    "wine-multiclass": (wine, "cultivar"),
    "diabetes-regression": (diabetes, "progression (1 year)"),
}


def main() -> None:
    from slipway.project.init import init_project

    for name, (load, label) in EXAMPLES.items():
        target = HERE / name
        if target.exists():
            shutil.rmtree(target)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / f"{name.split('-')[0]}.csv"
            load().to_csv(data, index=False)
            result = init_project(target, data=data, label=label, name=name)
        print(f"{name}: {result.task} ({result.how}); {len(result.features)} features")  # noqa: T201 (a script)


if __name__ == "__main__":
    main()
