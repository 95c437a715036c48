"""What a model predicts: the ML task (binary, multiclass, regression), the classes in model order,
and how labels are encoded for training and decoded for answers.

The class order is the model's output column order: sorted label values, except that a binary task's
configured positive class is always column 1. Labels may be integers or strings; they are kept as
they are (JSON-safe) through training, ONNX, the bundle and the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from slipway.errors import ConfigError, DataFormatError
from slipway.names import Task

Label = int | str
MAX_CLASSES = 50  # an integer label with more distinct values than this (and many per class) is a regression
OutputKind = Literal["logits", "probabilities", "values"]


def plain_label(value: object) -> Label:
    """A label as a JSON-safe int or str (numpy ints become int, whole floats become int)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return str(value)


def infer_task(labels: pd.Series) -> tuple[Task, str]:
    """Pure; the task a label column implies, and one line saying why.

    Rules: strings or booleans -> classification; floats with a fractional part -> regression;
    integers (or whole floats) -> binary with 2 values, multiclass with up to MAX_CLASSES values,
    regression beyond that.
    """
    values = labels.dropna()
    distinct = values.nunique()
    name = labels.name
    if distinct < 2:
        raise DataFormatError(f"label column {name!r} has {distinct} distinct value(s): nothing to learn")
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and not np.all(np.mod(values.to_numpy(dtype=np.float64), 1.0) == 0.0):
        return "regression", f"label {name!r} holds fractional numbers: regression"
    if numeric and distinct > MAX_CLASSES:
        return (
            "regression",
            f"label {name!r} holds {distinct} distinct integers (> {MAX_CLASSES}): regression",
        )
    if distinct == 2:
        return "binary", f"label {name!r} holds 2 distinct values: binary classification"
    if distinct > MAX_CLASSES:
        raise DataFormatError(
            f"label column {name!r} holds {distinct} distinct non-numeric values (> {MAX_CLASSES}): "
            "too many classes; set data.task: regression for a numeric target, or group the classes"
        )
    return "multiclass", f"label {name!r} holds {distinct} distinct values: multiclass classification"


@dataclass(frozen=True)
class Target:
    """The task and, for classification, the classes in model output order."""

    task: Task
    label: str
    classes: tuple[Label, ...] = ()

    @property
    def classification(self) -> bool:
        """Pure; binary or multiclass."""
        return self.task != "regression"

    @property
    def output(self) -> OutputKind:
        """Pure; what the served model answers per row (classification: probabilities, regression: values)."""
        return "probabilities" if self.classification else "values"

    def encode(self, labels: pd.Series | Sequence[object]) -> np.ndarray:
        """Pure; class indices (int64) or values (float32); DataFormatError naming an unknown label."""
        series = labels if isinstance(labels, pd.Series) else pd.Series(list(labels), name=self.label)
        if not self.classification:
            return series.to_numpy(dtype=np.float32)
        index = {c: i for i, c in enumerate(self.classes)}
        out = np.empty(len(series), dtype=np.int64)
        for i, raw in enumerate(series.tolist()):
            key = plain_label(raw)
            if key not in index:
                raise DataFormatError(
                    f"label {key!r} in column {self.label!r} is not one of the classes {list(self.classes)}"
                )
            out[i] = index[key]
        return out

    def decode(self, indices: np.ndarray) -> list[Label]:
        """Pure; the original labels of class indices."""
        return [self.classes[int(i)] for i in indices]


def make_target(
    labels: pd.Series, *, task: Task | None, positive_class: Label | None = None
) -> tuple[Target, str]:
    """Pure; the Target for a label column (task given, or inferred and said so) and the line saying how."""
    how = f"data.task: {task}" if task else ""
    if task is None:
        task, how = infer_task(labels)
    name = str(labels.name)
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(labels):
            raise ConfigError(f"data.task is regression but label column {name!r} is not numeric")
        return Target(task="regression", label=name), how
    classes = sorted(
        {plain_label(v) for v in labels.dropna().tolist()}, key=lambda c: (isinstance(c, str), c)
    )
    if task == "binary" and len(classes) != 2:
        raise ConfigError(
            f"data.task is binary but label column {name!r} holds {len(classes)} classes {classes[:10]}"
        )
    if task == "multiclass" and len(classes) < 3:
        raise ConfigError(f"data.task is multiclass but label column {name!r} holds only {classes}")
    if positive_class is not None:
        if task != "binary":
            raise ConfigError(f"data.positive_class is set but the task is {task}: only binary has one")
        positive = plain_label(positive_class)
        if positive not in classes:
            raise ConfigError(f"data.positive_class {positive!r} is not one of the classes {classes}")
        classes = [c for c in classes if c != positive] + [positive]
    return Target(task=task, label=name, classes=tuple(classes)), how
