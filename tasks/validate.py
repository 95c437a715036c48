"""Validation gate tasks."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from slipway.release.steps import ReleaseInputs, validate_batch
from slipway.reporting.markdown import validation_markdown
from slipway.settings import Settings
from slipway.validation.base import ValidationReport
from slipway.validation.factory import make_validator
from tasks.cache_keys import validation_key


@task(name="validate-batch", cache_key_fn=validation_key, persist_result=True, timeout_seconds=600)
def validate(inputs: ReleaseInputs, run_name: str) -> ValidationReport:
    """Great Expectations on the batch; cached on (data sha256, suite sha256)."""
    return validate_batch(inputs, validator=make_validator(Settings()), run_name=run_name)


@task(name="publish-validation", cache_policy=NO_CACHE)
def publish_validation(report: ValidationReport) -> None:
    """Markdown summary and Data Docs link as Prefect artifacts."""
    create_markdown_artifact(
        key="validation-report", markdown=validation_markdown(report), description="Data validation gate"
    )
    if report.data_docs:
        create_link_artifact(key="data-docs", link=report.data_docs, link_text="Great Expectations Data Docs")
