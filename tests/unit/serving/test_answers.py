"""Reading a /predict JSON answer: per-row objects, the columnar answer of older images, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from slipway.serving.answers import AnswerColumns, answer_columns
from slipway.serving.bundle import BundleMeta
from slipway.serving.servability import served_matrix

PROBS = [{"a": 0.1, "b": 0.7, "c": 0.2}, {"a": 0.1, "b": 0.2, "c": None}]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            {
                "predictions": [
                    {"label": "b", "probabilities": PROBS[0]},
                    {"label": None, "probabilities": PROBS[1]},
                ]
            },
            AnswerColumns(labels=["b", None], probabilities=PROBS),
        ),
        (  # an image built before per-row answers
            {"predictions": ["b", None], "probabilities": PROBS},
            AnswerColumns(labels=["b", None], probabilities=PROBS),
        ),
        (
            {"predictions": [{"value": 1.5}, {"value": None}, {"value": 3}]},
            AnswerColumns(values=[1.5, None, 3]),
        ),
        ({"predictions": [1.5, None]}, AnswerColumns(values=[1.5, None])),  # an older regression image
        ({"predictions": [{"value": 1.0}, 2.0]}, AnswerColumns()),  # objects and bare values mixed
        ({"predictions": [{"label": "a", "probabilities": {"a": 1.0}}, {"value": 2.0}]}, AnswerColumns()),
        ({"predictions": [{"label": "a"}]}, AnswerColumns()),  # a row with neither
        (  # by entity: missing entities' rows are counted and left out of the columns
            {
                "predictions": [
                    {"error": "entity not found", "status": 404, "key": {"id": 1}},
                    {"value": 2.5},
                ]
            },
            AnswerColumns(values=[2.5], missing=1),
        ),
        (
            {"predictions": [{"error": "entity not found", "status": 404, "key": {"id": 1}}]},
            AnswerColumns(missing=1),
        ),
        ({"detail": "overloaded"}, AnswerColumns()),
        (None, AnswerColumns()),
    ],
)
def test_answer_columns(answer: Any, expected: AnswerColumns) -> None:
    assert answer_columns(answer) == expected


def meta(task: str, classes: list[Any]) -> BundleMeta:
    output = "values" if task == "regression" else "logits"
    return BundleMeta.model_validate(
        {
            "model_name": "m",
            "model_version": "1",
            "features": ["x"],
            "classes": classes,
            "task": task,
            "output": output,
            "onnx_sha256": "0" * 64,
        }
    )


def test_served_matrix_reads_probabilities_in_class_order_and_values() -> None:
    doc = {"predictions": [{"label": "b", "probabilities": {"a": 0.25, "b": 0.75}}]}
    matrix, problem = served_matrix(doc, meta=meta("binary", ["a", "b"]), rows=1)
    assert problem is None and matrix is not None and matrix.tolist() == [[0.25, 0.75]]
    values, problem = served_matrix({"predictions": [{"value": 2}]}, meta=meta("regression", []), rows=1)
    assert problem is None and values is not None and values.tolist() == [2.0]


@pytest.mark.parametrize(
    ("task", "doc"),
    [
        ("regression", {"predictions": [{"value": 1.0}, 2.0]}),  # mixed rows
        ("regression", {"predictions": [{"value": "1.0"}]}),  # not a number
        ("regression", {"predictions": [{"value": True}]}),
        ("regression", {"predictions": [{"value": None}]}),  # non-finite
        ("regression", {"predictions": []}),  # fewer rows than sent
        ("binary", {"predictions": [{"label": "a", "probabilities": {"b": 0.5, "a": 0.5}}]}),  # class order
        ("binary", {"predictions": [{"label": "a", "probabilities": {"a": "x", "b": 0.5}}]}),
        ("binary", {"predictions": [{"label": "a", "probabilities": {"a": None, "b": 0.5}}]}),
    ],
)
def test_served_matrix_names_what_it_cannot_read(task: str, doc: dict[str, Any]) -> None:
    classes = [] if task == "regression" else ["a", "b"]
    matrix, problem = served_matrix(doc, meta=meta(task, classes), rows=1)
    assert matrix is None and problem


def test_a_nan_value_is_never_read_as_a_number() -> None:
    doc = {"predictions": [{"value": float("nan")}, {"value": 1.0}]}
    matrix, problem = served_matrix(doc, meta=meta("regression", []), rows=2)
    assert matrix is None and problem
