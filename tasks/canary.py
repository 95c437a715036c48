"""Deploy task: canary the registered version on the configured target, then promote or roll back."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from slipway.canary.clock import RealClock
from slipway.deploy.factory import make_target
from slipway.registry.factory import make_registry
from slipway.release.canary_stage import DeployOutcome
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence
from slipway.release.outcome import StageOutcome
from slipway.release.stages.canary import canary, canary_plan
from slipway.settings import Settings
from tasks.progress import CanaryProgress


@task(name="canary-deploy", cache_policy=NO_CACHE, timeout_seconds=3600)
def canary_deploy(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[DeployOutcome]:
    """Canary -> promote or roll back on the configured target (never retried: it moves live traffic)."""
    settings = Settings()
    target = make_target(ctx.config, settings=settings)
    progress = CanaryProgress()
    if target is not None:
        progress.start(canary_plan(ctx, evidence, target=target.name))
    try:
        outcome = canary(
            ctx,
            evidence,
            registry=make_registry(settings, ctx.config),
            target=target,
            clock=RealClock(),
            work_dir=settings.work_path(),  # champion bundles: the folder `slipway rollback` uses too
            reports_dir=settings.reports_path(),
            on_decision=progress,
        )
        progress.finish(outcome)
        return outcome
    finally:
        if target is not None:
            target.close()
