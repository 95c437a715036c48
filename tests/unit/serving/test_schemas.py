"""The /predict wire format: every bad shape is an InputError whose message names the field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slipway.serving.schemas import (
    InputError,
    decode_body,
    entities_of,
    instances_of,
    parse_predict_body,
    parse_predict_request,
    to_matrix,
)


def _parse(doc: object, features: list[str], *, max_instances: int = 1024) -> np.ndarray:
    return parse_predict_body(json.dumps(doc).encode(), features=features, max_instances=max_instances)


def _error(body: bytes, features: list[str], *, max_instances: int = 1024) -> InputError:
    with pytest.raises(InputError) as info:
        parse_predict_body(body, features=features, max_instances=max_instances)
    return info.value


def test_lists_in_feature_order_and_objects_by_name_give_the_same_matrix(
    features: list[str], rows: np.ndarray
) -> None:
    as_lists = _parse({"instances": rows[:3].tolist()}, features)
    as_objects = _parse(
        {"instances": [dict(zip(features, r, strict=True)) for r in rows[:3].tolist()]}, features
    )
    assert as_lists.dtype == np.float32 and as_lists.shape == (3, 30)
    np.testing.assert_array_equal(as_lists, rows[:3])
    np.testing.assert_array_equal(as_objects, as_lists)


def test_integers_are_numbers(features: list[str]) -> None:
    assert _parse({"instances": [[1] * 30]}, features).tolist() == [[1.0] * 30]


@pytest.mark.parametrize(
    ("body", "status", "field", "text"),
    [
        (b"", 400, "body", "empty"),
        (b"{not json", 400, "body", "invalid JSON"),
        (b"\xff\xfe\x00garbage", 400, "body", "invalid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "body", "nested too deeply"),
        (b"[[1, 2]]", 400, "body", "expected a JSON object"),
        (b'"instances"', 400, "body", "got string"),
        (b'{"instances": [], "extra": 1}', 422, "body", "unknown key 'extra'"),
        (b'{"rows": []}', 422, "body", "unknown key 'rows'"),
        (b"{}", 422, "instances", "missing"),
        (b'{"instances": {"a": 1}}', 422, "instances", "expected a list of instances, got object"),
        (b'{"instances": null}', 422, "instances", "got null"),
        (b'{"instances": []}', 422, "instances", "empty list"),
        (b'{"instances": [5]}', 422, "instances[0]", "got number"),
        (b'{"instances": ["a"]}', 422, "instances[0]", "got string"),
    ],
)
def test_bad_documents(features: list[str], body: bytes, status: int, field: str, text: str) -> None:
    err = _error(body, features)
    assert (err.status, err.field) == (status, field)
    assert err.message.startswith(f"{field}: ") and text in err.message


def test_wrong_value_count_names_the_instance(features: list[str]) -> None:
    good = [0.5] * 30
    err = _error(json.dumps({"instances": [good, good, good, [0.5] * 29]}).encode(), features)
    assert (err.status, err.message) == (422, "instances[3]: expected 30 values, got 29")


def test_wrong_names_list_unknown_and_missing(features: list[str]) -> None:
    row = {name: 1.0 for name in features if name != "mean area"} | {"foo": 1.0}
    good = dict.fromkeys(features, 1.0)
    err = _error(json.dumps({"instances": [good, good, row]}).encode(), features)
    assert err.message == "instances[2]: unknown feature 'foo'; missing 'mean area'"
    missing_only = {k: v for k, v in good.items() if k != "mean radius"}
    assert _error(json.dumps({"instances": [missing_only]}).encode(), features).message == (
        "instances[0]: missing 'mean radius'"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1.5", "got string"),
        (True, "got boolean"),
        (None, "got null"),
        ([1.0], "got array"),
        ({"v": 1}, "got object"),
    ],
)
def test_non_numbers_name_the_value(features: list[str], value: object, text: str) -> None:
    row = [1.0] * 30
    row[4] = value  # type: ignore[call-overload]
    err = _error(json.dumps({"instances": [row]}).encode(), features)
    assert err.status == 422 and err.field == f"instances[0][4] ({features[4]})"
    assert err.message.endswith(f"expected a number, {text}")
    obj = dict.fromkeys(features, 1.0) | {"mean radius": value}
    err = _error(json.dumps({"instances": [obj]}).encode(), features)
    assert err.message == f"instances[0].mean radius: expected a number, {text}"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_values_name_the_field(features: list[str], literal: str) -> None:
    row = ", ".join(["1.0"] * 29 + [literal])
    err = _error(f'{{"instances": [[{row}]]}}'.encode(), features)
    assert err.status == 422 and err.message == f"instances[0][29] ({features[29]}): not a finite number"
    obj = ", ".join([f'"{name}": 1.0' for name in features[1:]] + [f'"{features[0]}": {literal}'])
    err = _error(f'{{"instances": [{{{obj}}}]}}'.encode(), features)
    assert err.message == "instances[0].mean radius: not a finite number"


@pytest.mark.parametrize("literal", ["1e39", str(10**40)])
def test_values_beyond_float32_are_refused(features: list[str], literal: str) -> None:
    row = ", ".join(["1.0"] * 29 + [literal])
    err = _error(f'{{"instances": [[{row}]]}}'.encode(), features)
    assert (
        err.status == 422
        and "out of float32 range" in err.message
        and err.field.startswith("instances[0][29]")
    )


def test_nested_lists_are_not_rows(features: list[str]) -> None:
    err = _error(json.dumps({"instances": [[[1.0] * 30]]}).encode(), features)
    assert err.message == "instances[0]: expected 30 values, got 1"


def test_too_many_instances_is_413_naming_the_limit(features: list[str]) -> None:
    err = _error(json.dumps({"instances": [[1.0] * 30] * 5}).encode(), features, max_instances=4)
    assert (err.status, err.message) == (413, "instances: 5 instances exceed the limit of 4 per request")


@pytest.mark.parametrize("digits", ["1" * 400, "-" + "9" * 400, "7" * 4000])
def test_an_integer_of_hundreds_of_digits_is_a_422_naming_the_field(features: list[str], digits: str) -> None:
    row = ", ".join(["1.0"] * 6 + [digits] + ["1.0"] * 23)
    err = _error(f'{{"instances": [[{row}]]}}'.encode(), features)
    assert (err.status, err.field) == (422, f"instances[0][6] ({features[6]})")
    obj = ", ".join(
        [f'"{name}": 1.0' for name in features if name != features[6]] + [f'"{features[6]}": {digits}']
    )
    err = _error(f'{{"instances": [{{{obj}}}]}}'.encode(), features)
    assert (err.status, err.field) == (422, f"instances[0].{features[6]}")


@pytest.mark.parametrize(
    "rows",
    [
        [[1.0] * 30],
        [[float(i) for i in range(30)], [3] * 30],
        [[0.5] * 30] * 20,  # past the small-batch path
        [[-3.4028234663852886e38] * 30],
    ],
)
def test_the_fast_path_gives_the_checked_paths_matrix(features: list[str], rows: list[list[float]]) -> None:
    body = json.dumps({"instances": rows}).encode()
    fast = parse_predict_body(body, features=features, max_instances=64)
    checked = to_matrix(instances_of(decode_body(body), max_instances=64), features=features)
    assert fast.dtype == checked.dtype == np.float32
    np.testing.assert_array_equal(fast, checked)


@pytest.mark.parametrize(
    "body",
    [
        b'{"entities": [{"patient_id": 17}, {"patient_id": "a-9"}]}',
        b'{"entities": [{"patient_id": 9223372036854775807}]}',
        b' {"entities":[{"patient_id":-3}]}',
    ],
)
def test_entities_read_in_rust_equal_the_checked_path(body: bytes) -> None:
    fast = parse_predict_request(body, features=["a"], entity_keys=["patient_id"], max_instances=8)
    checked = entities_of(decode_body(body), entity_keys=["patient_id"], max_instances=8)
    assert fast == checked == json.loads(body)["entities"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"entities": [{"patient_id": 9223372036854775808}]}', "entities[0].patient_id"),
        (b'{"entities": [{"patient_id": true}]}', "entities[0].patient_id"),
        (b'{"entities": [{"patient_id": 1, "x": 2}]}', "entities[0]"),
        (b'{"entities": [{"patient_id": 1}], "extra": 1}', "body"),
    ],
)
def test_entities_the_rust_check_refuses_are_named_by_the_checked_path(body: bytes, field: str) -> None:
    with pytest.raises(InputError) as err:
        parse_predict_request(body, features=["a"], entity_keys=["patient_id"], max_instances=8)
    assert err.value.field == field and err.value.status == 422


def test_entities_to_a_model_without_a_feature_service_are_a_400() -> None:
    with pytest.raises(InputError) as err:
        parse_predict_request(b'{"entities": [{"id": 1}]}', features=["a"], entity_keys=None, max_instances=8)
    assert (err.value.status, err.value.field) == (400, "entities")
