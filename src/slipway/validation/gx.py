"""Great Expectations 1.x backend: a file context under the state folder, Data Docs built on every run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from slipway.validation.base import DataValidator, FailedExpectation, ValidationReport
from slipway.validation.offline_docs import make_site_offline
from slipway.validation.suite import SuiteSpec

_SITE = "slipway"
_DATASOURCE = "slipway_pandas"


def _observed(result: Any) -> tuple[str, int | None]:
    """Turn a GX expectation result into (observed text, unexpected count)."""
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return f"error: {info.get('exception_message')}", None
    for value in info.values() if isinstance(info, dict) else []:
        if isinstance(value, dict) and value.get("raised_exception"):
            return f"error: {value.get('exception_message')}", None
    res = result.result or {}
    details = res.get("details") or {}
    mismatched = details.get("mismatched") if isinstance(details, dict) else None
    if mismatched:
        parts = [f"{k}: {v}" for k, v in mismatched.items() if v]
        return "; ".join(parts) or str(mismatched), None
    count = res.get("unexpected_count")
    n = int(count) if count is not None else None
    if "observed_value" in res:
        return f"observed {_short(res['observed_value'])}", n
    examples = res.get("partial_unexpected_list")
    if examples:
        shown = ", ".join(_short(v) for v in examples[:3])
        return f"e.g. {shown}", n
    return "failed (no detail reported)", n


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class GreatExpectationsValidator(DataValidator):
    """Runs the suite through a GX checkpoint and writes Data Docs to `docs_dir`."""

    name = "great_expectations"

    def __init__(self, *, project_dir: Path, docs_dir: Path) -> None:
        self._project_dir = project_dir
        self._docs_dir = docs_dir

    def _context(self) -> Any:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._project_dir.mkdir(parents=True, exist_ok=True)
        context = gx.get_context(mode="file", project_root_dir=str(self._project_dir))
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        if _SITE not in context.get_site_names():
            context.add_data_docs_site(
                site_name=_SITE,
                site_config={
                    "class_name": "SiteBuilder",
                    "store_backend": {
                        "class_name": "TupleFilesystemStoreBackend",
                        "base_directory": str(self._docs_dir),
                    },
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        return context

    def validate(
        self, frame: pd.DataFrame, *, suite: SuiteSpec, suite_hash: str, run_name: str
    ) -> ValidationReport:
        """Blocking (2.5-4 s for the 96-expectation suite, Data Docs included); idempotent; one docs page per run."""
        import great_expectations as gx
        from great_expectations.checkpoint.actions import UpdateDataDocsAction
        from great_expectations.core.result_format import ResultFormat
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        context = self._context()
        batch_def = (
            context.data_sources.add_or_update_pandas(name=_DATASOURCE)
            .add_dataframe_asset(name="batch")
            .add_batch_definition_whole_dataframe("whole")
        )
        expectations = [
            ExpectationConfiguration(type=e.type, kwargs=dict(e.kwargs), meta=dict(e.meta)).to_domain_obj()
            for e in suite.expectations
        ]
        gx_suite = context.suites.add_or_update(
            gx.ExpectationSuite(
                name=suite.name,
                expectations=expectations,
                meta={"slipway_version": suite.version, "sha256": suite_hash},
            )
        )
        vd = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=f"{suite.name}-vd", data=batch_def, suite=gx_suite)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"{suite.name}-checkpoint",
                validation_definitions=[vd],
                actions=[UpdateDataDocsAction(name="update_docs", site_names=[_SITE])],
                result_format=ResultFormat.SUMMARY,
            )
        )
        result = checkpoint.run(
            batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=run_name)
        )
        (identifier, suite_result), *_ = result.run_results.items()
        failures = []
        for r in suite_result.results:
            if r.success:
                continue
            cfg = r.expectation_config
            column = cfg.kwargs.get("column")
            if column is not None and column not in frame.columns:
                observed, count = "column is missing from the batch", None
            elif cfg.type == "expect_column_values_to_be_of_type":
                observed, count = f"dtype {frame[column].dtype}, expected {cfg.kwargs.get('type_')}", None
            elif cfg.type == "expect_column_values_to_be_in_type_list":
                allowed = list(cfg.kwargs.get("type_list") or [])
                observed, count = f"dtype {frame[column].dtype}, expected one of {allowed}", None
            else:
                observed, count = _observed(r)
            failures.append(
                FailedExpectation(type=cfg.type, column=column, observed=observed, unexpected_count=count)
            )
        make_site_offline(self._docs_dir)  # GX pages load their CSS/JS from CDNs: make them self-contained
        urls = context.get_docs_sites_urls(resource_identifier=identifier, site_name=_SITE)
        return ValidationReport(
            success=bool(suite_result.success),
            suite_name=suite.name,
            suite_version=suite.version,
            suite_hash=suite_hash,
            rows=len(frame),
            evaluated=len(suite_result.results),
            failures=failures,
            data_docs=urls[0]["site_url"] if urls else None,
            backend=self.name,
        )
