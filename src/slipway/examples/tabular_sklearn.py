"""Training entrypoint for any tabular task: a scikit-learn Pipeline (what `slipway init --framework sklearn`
copies into a project).

The Pipeline reads the float32 feature matrix in schema order (`request.x()`): missing values are
imputed, numeric columns scaled and the `categorical` columns (integer codes) one-hot encoded, then a
linear model or a random forest predicts. All of it is exported to one ONNX graph, so serving runs the
same preprocessing as training. Classifiers are fitted on the label column's own values (strings
included), which Slipway puts in the project's class order.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from slipway.evaluation.target import plain_label
from slipway.training.base import TrainedModel, TrainingRequest


class Params(BaseModel):
    """`training.params` of this entrypoint: a key it does not know, or a value of the wrong type, is a
    config error naming the key before the release starts."""

    model_config = ConfigDict(extra="forbid", strict=True)
    estimator: Literal["linear", "random_forest"] = Field(
        default="linear", description="linear: LogisticRegression / Ridge; random_forest: a forest of trees."
    )
    categorical: list[str] = Field(
        default_factory=list, description="Feature columns holding integer category codes: one-hot encoded."
    )
    c: PositiveFloat = Field(default=1.0, description="Linear models: inverse regularization strength.")
    trees: PositiveInt = Field(default=100, description="Random forest: number of trees.")
    max_depth: PositiveInt | None = Field(
        default=None, description="Random forest: depth limit (none: grow out)."
    )


DEFAULTS: dict[str, Any] = Params().model_dump()


def build(request: TrainingRequest, p: Params) -> Pipeline:
    """The unfitted Pipeline for the request's task and features (columns selected by position)."""
    unknown = sorted(set(p.categorical) - set(request.features))
    if unknown:
        raise ValueError(f"training.params.categorical: {unknown} are not features of the schema")
    cat = [request.features.index(c) for c in p.categorical]
    num = [i for i in range(len(request.features)) if i not in cat]
    parts: list[tuple[str, Any, list[int]]] = [
        (
            "numeric",
            Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
            num,
        )
    ]
    if cat:
        categories = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("onehot", OneHotEncoder(handle_unknown="ignore")),
            ]
        )
        parts.append(("categorical", categories, cat))
    classification = request.target.classification
    model: Any
    if p.estimator == "random_forest":
        forest = RandomForestClassifier if classification else RandomForestRegressor
        model = forest(n_estimators=p.trees, max_depth=p.max_depth, random_state=request.seed, n_jobs=1)
    elif classification:
        model = LogisticRegression(C=p.c, max_iter=2000, random_state=request.seed)
    else:
        model = Ridge(alpha=1.0 / p.c)
    return Pipeline([("prepare", ColumnTransformer(parts)), ("model", model)])


def train(request: TrainingRequest, params: Params | None = None) -> TrainedModel:
    """Fit the Pipeline on the batch (`params`: request.params, checked); deterministic for a seed."""
    p = params if params is not None else Params.model_validate(request.params)
    x = request.x()
    if request.target.classification:
        y: np.ndarray = np.array([plain_label(v) for v in request.frame[request.label]], dtype=object)
        y = y.astype(str) if any(isinstance(v, str) for v in y) else y.astype(np.int64)
    else:
        y = request.y()
    pipeline = build(request, p).fit(x, y)
    score = float(pipeline.score(x, y))  # accuracy, or r2 for a regression
    return TrainedModel(module=pipeline, params=p.model_dump(), metrics={"train_score": score})
