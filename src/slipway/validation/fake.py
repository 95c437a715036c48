"""Pure-pandas backend: GX 1.x verdicts for every supported expectation type, in milliseconds, no GX."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from slipway.validation.base import DataValidator, FailedExpectation, ValidationReport
from slipway.validation.suite import ExpectationSpec, SuiteSpec

_MISSING_COLUMN = "column is missing from the batch"

# What one check found: None when the expectation held, else (observed text, unexpected count or None).
Outcome = tuple[str, int | None] | None
Check = Callable[[pd.DataFrame, dict[str, Any]], Outcome]


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _examples(values: Sequence[Any], limit: int = 3) -> str:
    return "e.g. " + ", ".join(_short(v) for v in values[:limit])


def _mostly(kwargs: dict[str, Any]) -> float:
    value = kwargs.get("mostly")
    return 1.0 if value is None else float(value)


def _map_outcome(values: pd.Series, unexpected: pd.Series, kwargs: dict[str, Any]) -> Outcome:
    """A GX column-map verdict over the considered `values`: the `unexpected` share against `mostly`."""
    count = int(unexpected.sum())
    if count == 0 or (len(values) - count) / len(values) >= _mostly(kwargs):
        return None
    return _examples(values[unexpected].head(3).tolist()), count


def _outside(values: Any, kwargs: dict[str, Any]) -> Any:
    """Where `values` (scalar or Series) break min_value/max_value; None is unbounded, strict_* honoured."""
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    below = (values <= lo if kwargs.get("strict_min") else values < lo) if lo is not None else False
    above = (values >= hi if kwargs.get("strict_max") else values > hi) if hi is not None else False
    return below | above


def _check_columns_match_set(frame: pd.DataFrame, kwargs: dict[str, Any]) -> Outcome:
    column_set = kwargs.get("column_set")
    exact = kwargs.get("exact_match", True) is not False
    if column_set is None and not exact:
        return None
    expected, actual = {str(c) for c in column_set or []}, {str(c) for c in frame.columns}
    missing, unexpected = sorted(expected - actual), sorted(actual - expected)
    if not missing and (not unexpected or not exact):
        return None
    parts = [f"{key}: {cols}" for key, cols in (("unexpected", unexpected), ("missing", missing)) if cols]
    return "; ".join(parts), None


def _check_row_count(frame: pd.DataFrame, kwargs: dict[str, Any]) -> Outcome:
    rows = len(frame)
    return (f"observed {rows}", None) if _outside(rows, kwargs) else None


def _check_not_null(frame: pd.DataFrame, kwargs: dict[str, Any]) -> Outcome:
    series = frame[kwargs["column"]]
    return _map_outcome(series, series.isna(), kwargs)


def _check_of_type(frame: pd.DataFrame, kwargs: dict[str, Any]) -> Outcome:
    expected, actual = kwargs.get("type_"), str(frame[kwargs["column"]].dtype)
    if expected is None or actual == str(expected):
        return None
    return f"dtype {actual}, expected {expected}", None


def _check_in_type_list(frame: pd.DataFrame, kwargs: dict[str, Any]) -> Outcome:
    allowed = [str(t) for t in kwargs.get("type_list") or []]
    actual = str(frame[kwargs["column"]].dtype)
    if not allowed or actual in allowed:
        return None
    return f"dtype {actual}, expected one of {allowed}", None


def _check_between(frame: pd.DataFrame, kwargs: dict[str, Any]) -> Outcome:
    lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
    if lo is None and hi is None:
        raise ValueError("min_value and max_value cannot both be None")
    values = frame[kwargs["column"]].dropna()
    if not pd.api.types.is_numeric_dtype(values.dtype) and not isinstance(lo if lo is not None else hi, str):
        strings = values[values.map(lambda v: isinstance(v, str))]
        if len(strings):
            raise TypeError(f"column values are strings, the bounds are not ({_examples(strings.tolist())})")
    return _map_outcome(values, _outside(values, kwargs), kwargs)


def _check_in_set(frame: pd.DataFrame, kwargs: dict[str, Any]) -> Outcome:
    value_set = kwargs.get("value_set")
    values = frame[kwargs["column"]].dropna()
    if value_set is None:
        return None
    return _map_outcome(values, ~values.isin(list(value_set)), kwargs)


def _check_compound_unique(frame: pd.DataFrame, kwargs: dict[str, Any]) -> Outcome:
    columns = [str(c) for c in kwargs["column_list"]]
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        return f"columns missing from the batch: {absent}", None
    rows = _considered_rows(frame[columns], str(kwargs.get("ignore_row_if", "all_values_are_missing")))
    dup = rows[rows.duplicated(keep=False)]
    if dup.empty or (len(rows) - len(dup)) / len(rows) >= _mostly(kwargs):
        return None
    return _examples(dup.to_dict("records")), len(dup)


def _considered_rows(rows: pd.DataFrame, ignore_row_if: str) -> pd.DataFrame:
    """The rows GX's multicolumn `ignore_row_if` keeps."""
    if ignore_row_if == "never":
        return rows
    missing = rows.isna()
    drop = missing.any(axis=1) if ignore_row_if == "any_value_is_missing" else missing.all(axis=1)
    return rows[~drop]


_CHECKS: dict[str, Check] = {
    "expect_table_columns_to_match_set": _check_columns_match_set,
    "expect_table_row_count_to_be_between": _check_row_count,
    "expect_column_values_to_not_be_null": _check_not_null,
    "expect_column_values_to_be_of_type": _check_of_type,
    "expect_column_values_to_be_in_type_list": _check_in_type_list,
    "expect_column_values_to_be_between": _check_between,
    "expect_column_values_to_be_in_set": _check_in_set,
    "expect_compound_columns_to_be_unique": _check_compound_unique,
}


def _evaluate(frame: pd.DataFrame, spec: ExpectationSpec) -> FailedExpectation | None:
    """One expectation; a GX-style error (bad kwargs, incomparable values) is reported as a failure."""
    check = _CHECKS.get(spec.type)
    column = spec.column
    outcome: Outcome
    if check is None:
        outcome = ("error: not supported by the pandas backend", None)
    elif column is not None and column not in frame.columns:
        outcome = (_MISSING_COLUMN, None)
    else:
        try:
            outcome = check(frame, dict(spec.kwargs))
        except (TypeError, ValueError, KeyError) as exc:
            outcome = (f"error: {exc}", None)
    if outcome is None:
        return None
    observed, count = outcome
    return FailedExpectation(type=spec.type, column=column, observed=observed, unexpected_count=count)


class PandasValidator(DataValidator):
    """Evaluates a suite with plain pandas: same failures as the GX backend, no Data Docs."""

    name = "pandas"

    def validate(
        self, frame: pd.DataFrame, *, suite: SuiteSpec, suite_hash: str, run_name: str
    ) -> ValidationReport:
        """Blocking; pure; never raises on bad data, reports it."""
        failures = [f for f in (_evaluate(frame, spec) for spec in suite.expectations) if f is not None]
        return ValidationReport(
            success=not failures,
            suite_name=suite.name,
            suite_version=suite.version,
            suite_hash=suite_hash,
            rows=len(frame),
            evaluated=len(suite.expectations),
            failures=failures,
            data_docs=None,
            backend=self.name,
        )
