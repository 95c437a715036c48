"""Registration tasks: register a passed challenger; conclude the release (the one place that records a
rejection in the registry); publish the decision (artifacts and the report JSON)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from slipway.deploy.factory import make_target
from slipway.registry.base import VersionInfo
from slipway.registry.factory import make_registry, tracking_uri
from slipway.release.context import ReleaseContext
from slipway.release.interrupted import Recovery, recover
from slipway.release.ledger import Evidence, Ledger, conclude
from slipway.release.outcome import StageOutcome
from slipway.release.report import decision_artifacts, write_report
from slipway.release.result import ReleaseResult, ResultPatch
from slipway.release.stages.registration import register_version
from slipway.settings import Settings
from tasks.artifacts import publish_artifacts
from tasks.retry import transient_only


@task(
    name="register-model",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
    timeout_seconds=600,
)
def register(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[VersionInfo]:
    """Register the challenger (idempotent per release key) with its lineage."""
    settings = Settings()
    return register_version(
        ctx, evidence, registry=make_registry(settings, ctx.config), tracking_uri=tracking_uri(settings)
    )


@task(name="recover-environment", cache_policy=NO_CACHE)
def recover_environment(ctx: ReleaseContext, found_by: str) -> Recovery:
    """What a killed release left in this environment: its undecided versions marked interrupted, its canary
    rolled back. Called once the lease is held; a backend that fails here fails nothing (it is named)."""
    if ctx.lease_key is None:
        raise ValueError("recover_environment runs only once the release holds its lease (ctx.lease_key)")
    settings = Settings()
    return recover(
        registry=lambda: make_registry(settings, ctx.config),
        target=lambda: make_target(ctx.config, settings=settings),
        model_name=ctx.model_name,
        lease_key=ctx.lease_key,
        found_by=found_by,
        release_key=ctx.release_key(),
    )


@task(
    name="conclude-release",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
    timeout_seconds=600,
)
def conclude_release(
    ctx: ReleaseContext, ledger: Ledger, flow_run_id: str | None, run_url: str | None
) -> ResultPatch:
    """Record the decision in the registry (a rejected attempt's run, or the version's rejection/error tags),
    then the evidence: the release record and a description on the version, links a teammate can open."""
    return conclude(
        ctx, ledger, registry=make_registry(Settings(), ctx.config), flow_run_id=flow_run_id, run_url=run_url
    )


@task(name="publish-decision", cache_policy=NO_CACHE)
def publish_decision(result: ReleaseResult) -> str:
    """The decision as artifacts (`release-decision`, `release-summary`) and the report JSON; its path."""
    publish_artifacts(decision_artifacts(result))
    return str(write_report(result, reports_dir=Settings().reports_path()))
