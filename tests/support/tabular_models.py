"""Small scikit-learn / LightGBM / XGBoost / ready-ONNX models on synthetic tabular data, for the framework
adapter contract and the optimization tests: each trains in well under a second."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from slipway.data.reference import Reference
from slipway.evaluation.target import Target

SPECIES = ("cat", "dog", "emu")  # string labels, sorted: the project's class order


@dataclass(frozen=True)
class Case:
    """A fitted model, the data it reads (float32, schema order) and the project's target."""

    model: Any
    x: np.ndarray
    y: np.ndarray  # encoded: class indices in target order, or values
    target: Target


def features(rows: int = 240, seed: int = 0) -> np.ndarray:
    """float32 [rows, 5]: 3 numeric columns (one with 5% NaN), an unscaled one, and a category coded 0/1/2."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5)).astype(np.float32)
    x[:, 3] = x[:, 3] * 50 + 100
    x[:, 4] = rng.integers(0, 3, rows)
    x[rng.random(rows) < 0.05, 1] = np.nan
    return x


def species(x: np.ndarray) -> np.ndarray:
    """String labels that depend on a numeric column and the category."""
    return np.array(SPECIES)[((x[:, 0] > 0).astype(int) + (x[:, 4] > 1)).clip(0, 2)]


def pipeline_case() -> Case:
    """Pipeline(ColumnTransformer(impute+scale numeric, one-hot the category), LogisticRegression) on string labels."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x = features()
    labels = species(x)
    prep = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), [0, 1, 2, 3]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), [4]),
        ]
    )
    model = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=500))]).fit(x, labels)
    target = Target(task="multiclass", label="species", classes=SPECIES)
    return Case(model=model, x=x, y=target.encode(list(labels)), target=target)


def forest_regression_case() -> Case:
    """RandomForestRegressor (30 trees) behind a SimpleImputer."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    x = features(seed=1)
    y = (np.nan_to_num(x[:, 0]) * 3 + x[:, 3] / 50).astype(np.float32)
    model = make_pipeline(
        SimpleImputer(), RandomForestRegressor(n_estimators=30, max_depth=6, random_state=0)
    )
    model.fit(x, y)
    return Case(model=model, x=x, y=y, target=Target(task="regression", label="value"))


def binary_labels(x: np.ndarray) -> np.ndarray:
    return np.where(np.nan_to_num(x[:, 0]) + x[:, 4] > 1, "yes", "no")


def booster_case(kind: str) -> Case:
    """A LightGBM or XGBoost classifier on string labels (LabelEncoded inside: boosters need ints), imputed first.

    The project's positive class is "no": its column order ("yes", "no") is NOT the model's sorted one.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    x = features(seed=2)
    labels = binary_labels(x)
    y01 = (labels == "yes").astype(np.int64)  # the booster's classes_ are 0/1 ...
    if kind == "lightgbm":
        import lightgbm

        booster: Any = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1, random_state=0)
    else:
        import xgboost

        booster = xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0)
    model = make_pipeline(SimpleImputer(), booster).fit(x, y01)
    # ... which are not the project's labels ("no", "yes"): read as class indices in the project's order
    target = Target(task="binary", label="answer", classes=("no", "yes"))
    return Case(model=model, x=x, y=target.encode(list(labels)), target=target)


def onnx_case() -> Case:
    """A ready ONNX file's model: skl2onnx's own conversion (input `X`, outputs label + probabilities) of a
    string-label classifier, with the project's positive class first in sorted order (columns must swap)."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x = np.nan_to_num(features(seed=3))
    labels = binary_labels(x)
    clf = LogisticRegression(max_iter=500).fit(x, labels)
    graph = to_onnx(clf, x[:1], options={"zipmap": False}, target_opset={"": 18, "ai.onnx.ml": 3})
    target = Target(task="binary", label="answer", classes=("yes", "no"))  # positive class "no"
    return Case(model=graph, x=x, y=target.encode(list(labels)), target=target)


def scaled_forest_case(ref: Reference) -> Case:
    """Pipeline(StandardScaler, RandomForestClassifier(100)) on the breast-cancer pool, judged on its holdout:
    a float32 scaler would put holdout values on the other side of tree thresholds (parity off by 0.01)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_pool = ref.pool.loc[:, list(ref.features)].to_numpy(dtype=np.float32)
    model = make_pipeline(
        StandardScaler(), RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
    )
    model.fit(x_pool, ref.target.encode(ref.pool[ref.label]))
    x, y = ref.holdout_xy()
    return Case(model=model, x=x, y=y, target=ref.target)
