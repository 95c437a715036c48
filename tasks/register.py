"""Registration tasks: register a passed challenger, or record a rejected attempt."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from slipway.registry.base import Registration, VersionInfo
from slipway.registry.factory import make_registry, tracking_uri
from slipway.release.result import ReleaseResult
from slipway.release.steps import ReleaseInputs
from slipway.reporting.markdown import decision_markdown, registration_markdown
from slipway.settings import Settings
from tasks.retry import transient_only


@task(
    name="register-model",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
    timeout_seconds=600,
)
def register(inputs: ReleaseInputs, registration: Registration) -> VersionInfo:
    """Register the challenger (idempotent per release key) and publish its lineage."""
    settings = Settings()
    version = make_registry(settings, inputs.config()).register(registration)
    create_markdown_artifact(
        key="registration",
        markdown=registration_markdown(version, tracking_uri=tracking_uri(settings)),
        description="MLflow registration",
    )
    return version


@task(
    name="record-rejection",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
    timeout_seconds=600,
)
def record_rejection(inputs: ReleaseInputs, registration: Registration, stage: str) -> str:
    """Log the rejected attempt as an MLflow run (no model version is created)."""
    return make_registry(Settings(), inputs.config()).record_rejection(registration, stage=stage)


@task(name="publish-decision", cache_policy=NO_CACHE)
def publish_decision(result: ReleaseResult) -> str:
    """The final decision as a Markdown artifact and a JSON report under the state folder."""
    create_markdown_artifact(
        key="release-decision", markdown=decision_markdown(result), description="Release"
    )
    create_table_artifact(
        key="release-summary",
        table=result.summary_rows(),
        description="Release decision, version, image digest and commit (read back by `slipway remote release`)",
    )
    folder = Settings().reports_path()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"release-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.json"
    path.write_text(json.dumps(result.as_json_dict(), indent=2, sort_keys=True) + "\n")
    return str(path)
