"""The feature_consistency gate task (feature-store projects; skipped otherwise)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from slipway.features.factory import make_feature_store
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence
from slipway.release.outcome import StageOutcome
from slipway.release.stages.features import check_feature_consistency
from slipway.settings import Settings


@task(name="feature-consistency", cache_policy=NO_CACHE, timeout_seconds=1800)
def feature_consistency(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[Any]:
    """Online == historical features for the holdout's entities, after materializing (never cached: the store moves)."""
    return check_feature_consistency(ctx, store=make_feature_store(ctx.config, settings=Settings()))
