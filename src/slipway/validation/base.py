"""The validator interface and the report every backend returns."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pandas as pd
from pydantic import BaseModel, Field

from slipway.validation.suite import SuiteSpec


class FailedExpectation(BaseModel):
    """One failed expectation, with what was observed."""

    type: str = Field(description="GX expectation type.")
    column: str | None = Field(default=None, description="Column at fault, None for table-level checks.")
    observed: str = Field(description="An observed value or example of the offending values.")
    unexpected_count: int | None = Field(default=None, description="How many values broke it, if known.")

    def line(self) -> str:
        """One human line: type, column, what was seen."""
        where = f" [{self.column}]" if self.column else ""
        count = f" ({self.unexpected_count} unexpected)" if self.unexpected_count else ""
        return f"{self.type}{where}{count}: {self.observed}"


class ValidationReport(BaseModel):
    """The outcome of validating one batch against one suite."""

    success: bool = Field(description="True when every expectation held.")
    suite_name: str = Field(description="Suite name.")
    suite_version: int = Field(description="Suite version.")
    suite_hash: str = Field(description="sha256 of the suite content.")
    rows: int = Field(description="Rows in the batch.")
    evaluated: int = Field(description="Expectations evaluated.")
    failures: list[FailedExpectation] = Field(default_factory=list, description="Every failed expectation.")
    data_docs: str | None = Field(default=None, description="URL of the Data Docs page, when built.")
    backend: str = Field(description="Which validator produced the report.")


class DataValidator(ABC):
    """Checks a batch against a suite."""

    name: str = "abstract"

    @abstractmethod
    def validate(
        self, frame: pd.DataFrame, *, suite: SuiteSpec, suite_hash: str, run_name: str
    ) -> ValidationReport:
        """Blocking; pure w.r.t. the data (same input, same report); never raises on bad data, reports it."""
