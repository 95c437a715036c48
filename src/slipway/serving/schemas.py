"""The /predict wire format: parse and check a request body into a float32 matrix, or say which field is wrong.

Pure functions. Every problem is an `InputError` with an HTTP status and a message that starts
with the field it names, e.g. `instances[3]: expected 30 values, got 29`.

Two paths, one answer: a well-formed body of value lists (the common case) is checked in Rust by a
strict pydantic validator and converted in one numpy call; anything it does not accept, or whose
values are not finite float32 numbers, goes through the Python checks, which name the field at fault.

A model with a feature service also takes `{"entities": [{"patient_id": 17}, ...]}`: each entity an object
with exactly the service's join keys, each an integer or a string (`parse_predict_request`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import TypedDict

F32_MAX = float(np.finfo(np.float32).max)
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
INF = float("inf")
SMALL_ROWS = 8
_NUMBER = (int, float)


class InputError(Exception):
    """A request the server refuses: HTTP status, the field at fault, and a one-line message."""

    def __init__(self, status: int, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.status = status
        self.field = field
        self.message = f"{field}: {problem}"


def json_type(value: Any) -> str:
    """Pure; the JSON name of a decoded value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, _NUMBER):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def decode_body(body: bytes) -> Any:
    """Pure; the decoded JSON document; InputError 400 on bytes that are not JSON."""
    if not body.strip():
        raise InputError(400, "body", 'empty; send {"instances": [...]}')
    try:
        return json.loads(body)
    except RecursionError:
        raise InputError(400, "body", "invalid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InputError(400, "body", f"invalid JSON: {exc}") from None


def instances_of(doc: Any, *, max_instances: int) -> list[Any]:
    """Pure; the `instances` list of a decoded body; InputError 400/413/422 naming the problem."""
    if not isinstance(doc, dict):
        raise InputError(400, "body", f'expected a JSON object {{"instances": [...]}}, got {json_type(doc)}')
    extra = sorted(set(doc) - {"instances"})
    if extra:
        raise InputError(422, "body", f"unknown key {extra[0]!r}; the only key is 'instances'")
    if "instances" not in doc:
        raise InputError(422, "instances", "missing")
    rows = doc["instances"]
    if not isinstance(rows, list):
        raise InputError(422, "instances", f"expected a list of instances, got {json_type(rows)}")
    if not rows:
        raise InputError(422, "instances", "empty list; send at least one instance")
    if len(rows) > max_instances:
        raise InputError(
            413, "instances", f"{len(rows)} instances exceed the limit of {max_instances} per request"
        )
    return rows


def _magnitude(value: int | float) -> str:
    """Pure; a short rendering of a number too large for float32 (an int may be too large for any float)."""
    try:
        return f"{value:.3g}"
    except OverflowError:  # an integer literal beyond float64, e.g. 400 digits
        digits = len(str(abs(value)))
        return f"{'a negative' if value < 0 else 'an'} integer of {digits} digits"


def _field(i: int, j: int, row: Any, features: Sequence[str]) -> str:
    """The name of value j of row i, as the client wrote it."""
    if isinstance(row, dict):
        return f"instances[{i}].{features[j]}"
    return f"instances[{i}][{j}] ({features[j]})"


def _row_values(row: Any, i: int, features: Sequence[str]) -> list[Any]:
    if isinstance(row, list):
        if len(row) != len(features):
            raise InputError(422, f"instances[{i}]", f"expected {len(features)} values, got {len(row)}")
        return row
    if isinstance(row, dict):
        if len(row) != len(features) or not all(f in row for f in features):
            unknown = sorted(set(row) - set(features))
            missing = [f for f in features if f not in row]
            parts = []
            if unknown:
                parts.append(
                    f"unknown feature{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
                )
            if missing:
                parts.append(f"missing {', '.join(map(repr, missing))}")
            raise InputError(422, f"instances[{i}]", "; ".join(parts))
        return [row[f] for f in features]
    raise InputError(
        422,
        f"instances[{i}]",
        f"expected a list of {len(features)} numbers or an object keyed by feature name, got {json_type(row)}",
    )


def to_matrix(rows: list[Any], *, features: Sequence[str]) -> np.ndarray:
    """Pure; rows (value lists in feature order, or objects keyed by feature) -> float32 [N, len(features)]."""
    values: list[list[Any]] = []
    for i, row in enumerate(rows):
        vals = _row_values(row, i, features)
        for j, v in enumerate(vals):
            if type(v) not in _NUMBER:  # type(): a bool is not a number here
                raise InputError(422, _field(i, j, row, features), f"expected a number, got {json_type(v)}")
            if type(v) is int and abs(v) > F32_MAX:
                raise InputError(422, _field(i, j, row, features), f"{_magnitude(v)} is out of float32 range")
        values.append(vals)
    x = np.array(values, dtype=np.float64)
    bad = ~np.isfinite(x) | (np.abs(x) > F32_MAX)
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        problem = (
            "not a finite number" if not np.isfinite(x[i, j]) else f"{x[i, j]:.3g} is out of float32 range"
        )
        raise InputError(422, _field(i, j, rows[i], features), problem)
    return x.astype(np.float32)


class _ListBody(TypedDict):
    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]
    instances: list[list[float]]  # strict: ints are numbers, booleans and strings are not


@functools.cache
def _list_body() -> TypeAdapter[_ListBody]:
    return TypeAdapter(_ListBody)  # built on first use: no work at import time


def _fast_matrix(body: bytes, *, width: int, max_instances: int) -> np.ndarray | None:
    """Pure; float32 [N, width] for a body of finite in-range value lists, or None for the checked path."""
    try:
        rows = _list_body().validate_json(body)["instances"]
    except (ValidationError, ValueError):
        return None
    if not 0 < len(rows) <= max_instances:
        return None
    if len(rows) <= SMALL_ROWS:  # a few rows: plain Python checks beat numpy's per-call overhead
        for row in rows:
            total = sum(row)  # NaN and infinities (and float64 overflow) make the sum non-finite
            if len(row) != width or total != total or abs(total) == INF:
                return None
            if not (max(row) <= F32_MAX and min(row) >= -F32_MAX):
                return None
        return np.array(rows, dtype=np.float32)
    try:
        x = np.array(rows, dtype=np.float64)
    except ValueError:  # ragged rows
        return None
    # NaN compares False, so this one test refuses NaN, infinities and values beyond float32 alike
    if x.ndim != 2 or x.shape[1] != width or not float(np.abs(x).max()) <= F32_MAX:
        return None
    return x.astype(np.float32)


def parse_predict_body(body: bytes, *, features: Sequence[str], max_instances: int) -> np.ndarray:
    """Pure; a /predict body -> float32 [N, len(features)]; InputError naming the first bad field."""
    x = _fast_matrix(body, width=len(features), max_instances=max_instances)
    if x is not None:
        return x
    rows = instances_of(decode_body(body), max_instances=max_instances)
    return to_matrix(rows, features=features)


def entities_of(
    doc: dict[str, Any], *, entity_keys: Sequence[str], max_instances: int
) -> list[dict[str, Any]]:
    """Pure; the `entities` of a decoded body, each an object with exactly `entity_keys` whose values are
    integers (int64) or strings; InputError 413/422 naming the first bad field."""
    extra = sorted(set(doc) - {"entities"})
    if extra:
        raise InputError(
            422, "body", f"unknown key {extra[0]!r}; send either 'instances' or 'entities', not both"
        )
    rows = doc["entities"]
    if not isinstance(rows, list):
        raise InputError(422, "entities", f"expected a list of entity keys, got {json_type(rows)}")
    if not rows:
        raise InputError(422, "entities", "empty list; send at least one entity")
    if len(rows) > max_instances:
        raise InputError(
            413, "entities", f"{len(rows)} entities exceed the limit of {max_instances} per request"
        )
    wanted = set(entity_keys)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            example = ", ".join(f'"{k}": ...' for k in entity_keys)
            raise InputError(422, f"entities[{i}]", f"expected an object {{{example}}}, got {json_type(row)}")
        if row.keys() != wanted:
            unknown = sorted(set(row) - wanted)
            missing = [k for k in entity_keys if k not in row]
            parts = []
            if unknown:
                parts.append(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
            if missing:
                parts.append(f"missing {', '.join(map(repr, missing))}")
            raise InputError(422, f"entities[{i}]", "; ".join(parts))
        for key in entity_keys:
            value = row[key]
            if type(value) is int:  # type(): a bool is not a key
                if not I64_MIN <= value <= I64_MAX:
                    raise InputError(422, f"entities[{i}].{key}", "integer out of int64 range")
            elif type(value) is not str:
                raise InputError(
                    422, f"entities[{i}].{key}", f"expected an integer or a string, got {json_type(value)}"
                )
    return rows


class _EntityBody(TypedDict):
    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]
    entities: list[dict[str, int | str]]  # strict: a boolean or a float is no key


@functools.cache
def _entity_body() -> TypeAdapter[_EntityBody]:
    return TypeAdapter(_EntityBody)  # built on first use: no work at import time


def _fast_entities(
    body: bytes, *, entity_keys: Sequence[str], max_instances: int
) -> list[dict[str, Any]] | None:
    """Pure; the entities of a well-formed body (checked in Rust, then their keys and int64 range here), or
    None for the checked path (which names the field at fault)."""
    try:
        rows = _entity_body().validate_json(body)["entities"]
    except (ValidationError, ValueError):
        return None
    wanted = set(entity_keys)
    if not 0 < len(rows) <= max_instances or any(row.keys() != wanted for row in rows):
        return None
    for row in rows:
        for value in row.values():
            if type(value) is int and not I64_MIN <= value <= I64_MAX:
                return None
    return rows


def parse_predict_request(
    body: bytes, *, features: Sequence[str], entity_keys: Sequence[str] | None, max_instances: int
) -> np.ndarray | list[dict[str, Any]]:
    """Pure; a /predict body -> float32 [N, len(features)] (`instances`) or the entity keys to look up
    (`entities`, a model with a feature service: `entity_keys`); InputError naming the first bad field, 400
    for entities sent to a model without a feature service."""
    if entity_keys is not None and body[:16].lstrip().startswith(b'{"entities"'):  # checked in Rust first
        rows = _fast_entities(body, entity_keys=entity_keys, max_instances=max_instances)
        if rows is not None:
            return rows
    x = _fast_matrix(body, width=len(features), max_instances=max_instances)
    if x is not None:
        return x
    doc = decode_body(body)
    if isinstance(doc, dict) and "entities" in doc:
        if entity_keys is None:
            raise InputError(
                400,
                "entities",
                "this model has no feature service to look entities up in; send "
                '{"instances": [...]} with its feature values',
            )
        return entities_of(doc, entity_keys=entity_keys, max_instances=max_instances)
    return to_matrix(instances_of(doc, max_instances=max_instances), features=features)
