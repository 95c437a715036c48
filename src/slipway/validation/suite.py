"""The expectation suite as reviewed data: built from the reference, saved as JSON, hashed, loaded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slipway.data.reference import Reference
from slipway.errors import ConfigError

SUPPORTED_TYPES = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_of_type",
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


def build_reference_suite(
    ref: Reference,
    *,
    name: str,
    version: int,
    margin: float = 0.25,
    min_rows: int = 50,
    max_duplicate_share: float = 0.05,
) -> SuiteSpec:
    """Derive the suite from the reference pool: ranges widened by `margin` x range on each side."""
    exps: list[ExpectationSpec] = [
        ExpectationSpec(
            type="expect_table_columns_to_match_set",
            kwargs={"column_set": [*ref.features, ref.label], "exact_match": True},
        ),
        ExpectationSpec(type="expect_table_row_count_to_be_between", kwargs={"min_value": min_rows}),
    ]
    for col in ref.features:
        lo, hi = float(ref.pool[col].min()), float(ref.pool[col].max())
        pad = (hi - lo) * margin
        exps += [
            ExpectationSpec(type="expect_column_values_to_not_be_null", kwargs={"column": col}),
            ExpectationSpec(
                type="expect_column_values_to_be_of_type", kwargs={"column": col, "type_": "float64"}
            ),
            ExpectationSpec(
                type="expect_column_values_to_be_between",
                kwargs={
                    "column": col,
                    "min_value": round(max(0.0, lo - pad), 6),
                    "max_value": round(hi + pad, 6),
                },
                meta={"reference_min": lo, "reference_max": hi, "margin": margin},
            ),
        ]
    exps += [
        ExpectationSpec(type="expect_column_values_to_not_be_null", kwargs={"column": ref.label}),
        ExpectationSpec(
            type="expect_column_values_to_be_of_type", kwargs={"column": ref.label, "type_": "int64"}
        ),
        ExpectationSpec(
            type="expect_column_values_to_be_in_set",
            kwargs={"column": ref.label, "value_set": sorted(int(v) for v in ref.pool[ref.label].unique())},
        ),
        ExpectationSpec(
            type="expect_compound_columns_to_be_unique",
            kwargs={"column_list": [*ref.features, ref.label], "mostly": round(1.0 - max_duplicate_share, 6)},
            meta={"max_duplicate_share": max_duplicate_share},
        ),
    ]
    return SuiteSpec(
        name=name,
        version=version,
        expectations=exps,
        meta={"generated_from": "reference pool (holdout excluded)", "margin": margin},
    )
