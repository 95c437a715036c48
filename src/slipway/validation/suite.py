"""The expectation suite as reviewed data: built from the reference, saved as JSON, hashed, loaded."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slipway.data.reference import Reference
from slipway.errors import ConfigError

SUPPORTED_TYPES = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_compound_columns_to_be_unique",
    }
)


class ExpectationSpec(BaseModel):
    """One expectation, in Great Expectations' own type/kwargs vocabulary."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str = Field(description="GX expectation type, e.g. expect_column_values_to_be_between.")
    kwargs: dict[str, Any] = Field(description="The expectation's arguments.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Free notes (why this bound).")

    @property
    def column(self) -> str | None:
        """The column the expectation is about, or None for table-level ones."""
        col = self.kwargs.get("column")
        return str(col) if col is not None else None


class SuiteSpec(BaseModel):
    """A versioned suite: what `slipway validate` and the release gate check."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="Suite name (GX suite name too).")
    version: int = Field(ge=1, description="Bumped by hand whenever a reviewed change lands.")
    expectations: list[ExpectationSpec] = Field(min_length=1, description="The expectations, in order.")
    meta: dict[str, Any] = Field(default_factory=dict, description="How the suite was generated.")


def suite_hash(spec: SuiteSpec) -> str:
    """sha256 of the suite's canonical JSON: the same content always gives the same hash."""
    blob = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def load_suite(path: Path) -> SuiteSpec:
    """Load a suite file; ConfigError naming the file and the bad key if it is invalid."""
    if not path.is_file():
        raise ConfigError(f"expectation suite not found: {path} (validation.suite in slipway.yaml)")
    try:
        spec = SuiteSpec.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        where = f"at {key}" if key else "(not valid JSON)"
        raise ConfigError(f"{path}: invalid suite {where}: {first['msg']}") from None
    unknown = sorted({e.type for e in spec.expectations} - SUPPORTED_TYPES)
    if unknown:
        raise ConfigError(
            f"{path}: unsupported expectation type(s) {unknown}; supported: {sorted(SUPPORTED_TYPES)}"
        )
    return spec


def save_suite(spec: SuiteSpec, path: Path) -> None:
    """Write the suite as stable, reviewable JSON (sorted keys, one expectation per block)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")


NUMBER_TYPES = ["float64", "float32", "int64", "int32"]  # a float column whose batch holds only whole numbers


def _bounds(values: pd.Series, *, margin: float, integer: bool) -> tuple[float, float]:
    """Pure; [min, max] of the values widened by `margin` x range on each side (negative values kept)."""
    lo, hi = float(values.min()), float(values.max())
    pad = (hi - lo) * margin or max(abs(lo), 1.0) * margin
    low, high = lo - pad, hi + pad
    if integer:
        return float(math.floor(low)), float(math.ceil(high))
    return round(low, 6), round(high, 6)


def _column(frame: pd.DataFrame, col: str, *, margin: float, mostly: float) -> list[ExpectationSpec]:
    """Not null, its type, and its range (tolerating a `1 - mostly` share of tail values)."""
    values = frame[col]
    integer = pd.api.types.is_integer_dtype(values)
    lo, hi = _bounds(values, margin=margin, integer=integer)
    typed = (
        ExpectationSpec(type="expect_column_values_to_be_of_type", kwargs={"column": col, "type_": "int64"})
        if integer
        else ExpectationSpec(
            type="expect_column_values_to_be_in_type_list", kwargs={"column": col, "type_list": NUMBER_TYPES}
        )
    )
    return [
        ExpectationSpec(type="expect_column_values_to_not_be_null", kwargs={"column": col}),
        typed,
        ExpectationSpec(
            type="expect_column_values_to_be_between",
            kwargs={"column": col, "min_value": lo, "max_value": hi, "mostly": mostly},
            meta={
                "reference_min": float(values.min()),
                "reference_max": float(values.max()),
                "margin": margin,
            },
        ),
    ]


def build_reference_suite(
    ref: Reference,
    *,
    name: str,
    version: int,
    margin: float = 0.25,
    tail_share: float = 0.01,
    min_rows: int = 50,
    max_duplicate_share: float = 0.05,
) -> SuiteSpec:
    """Derive the suite from the whole reference (pool and holdout): what a batch of this data looks like.

    Schema, types, nulls and the label set are strict. Ranges are the reference's [min, max] widened by
    `margin` x range on each side, and tolerate a `tail_share` of values outside (GX `mostly`), so fresh
    data from the same distribution passes while a broken column does not.
    """
    frame = ref.frame()
    mostly = round(1.0 - tail_share, 6)
    exps: list[ExpectationSpec] = [
        ExpectationSpec(
            type="expect_table_columns_to_match_set",
            kwargs={"column_set": list(frame.columns), "exact_match": True},  # + entity keys, when kept
        ),
        ExpectationSpec(type="expect_table_row_count_to_be_between", kwargs={"min_value": min_rows}),
    ]
    for col in ref.features:
        exps += _column(frame, col, margin=margin, mostly=mostly)
    label = ref.label
    if ref.target.classification:
        exps += [
            ExpectationSpec(type="expect_column_values_to_not_be_null", kwargs={"column": label}),
            ExpectationSpec(
                type="expect_column_values_to_be_in_set",
                kwargs={"column": label, "value_set": list(ref.target.classes)},
                meta={"task": ref.task},
            ),
        ]
    else:
        exps += _column(frame, label, margin=margin, mostly=mostly)
    exps.append(
        ExpectationSpec(
            type="expect_compound_columns_to_be_unique",
            kwargs={"column_list": [*ref.features, label], "mostly": round(1.0 - max_duplicate_share, 6)},
            meta={"max_duplicate_share": max_duplicate_share},
        )
    )
    return SuiteSpec(
        name=name,
        version=version,
        expectations=exps,
        meta={
            "generated_from": "the whole reference (pool and holdout)",
            "task": ref.task,
            "margin": margin,
            "tail_share": tail_share,
        },
    )
