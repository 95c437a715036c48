"""Quality gate task: holdout metrics vs floors and the champion."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from slipway.registry.factory import make_registry
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence, GateEvidence
from slipway.release.outcome import StageOutcome
from slipway.release.stages.quality_gate import quality_gate
from slipway.settings import Settings
from tasks.retry import transient_only


@task(
    name="quality-gate",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
    timeout_seconds=600,
)
def gate(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[GateEvidence]:
    """The challenger and the champion on the same holdout; the decision with every number."""
    return quality_gate(ctx, evidence, registry=make_registry(Settings(), ctx.config))
