"""Packaging tasks: servability of the shipped model (in-process, then as its image) and the serving image."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from slipway.images.factory import make_builder
from slipway.registry.factory import make_registry
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence
from slipway.release.outcome import StageOutcome
from slipway.release.packaging import ImageOutcome
from slipway.release.stages.image import build_serving_image
from slipway.release.stages.servability import check_in_process, smoke_test_image
from slipway.serving.servability import ServabilityReport
from slipway.settings import Settings
from tasks.retry import transient_only


@task(name="servability-check", cache_policy=NO_CACHE, timeout_seconds=600)
def check_servable(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[ServabilityReport]:
    """Serve the shipped candidate in a subprocess; its answers on the holdout must match offline ORT."""
    return check_in_process(ctx, evidence, work_dir=ctx.work_dir("bundle-candidate", Settings()))


@task(
    name="build-image",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=[10],
    retry_condition_fn=transient_only,
    timeout_seconds=3600,
)
def build_image(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[ImageOutcome]:
    """Build and push the serving image for the registered version; its digest goes on the version."""
    settings = Settings()
    return build_serving_image(
        ctx,
        evidence,
        builder=make_builder(settings.image_builder, settings=settings),
        registry=make_registry(settings, ctx.config),
        settings=settings,
        work_dir=ctx.work_dir(
            f"bundle-v{evidence.version.version if evidence.version else 'none'}", settings
        ),
    )


@task(name="servability-image", cache_policy=NO_CACHE, timeout_seconds=900)
def smoke_test(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[ServabilityReport]:
    """Run the built image against the holdout exactly as the in-process check did; skipped without an image."""
    settings = Settings()
    return smoke_test_image(ctx, evidence, builder=make_builder(settings.image_builder, settings=settings))
