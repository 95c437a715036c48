"""Packaging tasks: servability check of the shipped model, then the serving image (built, pushed, pinned)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from slipway.data.reference import load_reference
from slipway.images.factory import make_builder
from slipway.optimize.stage import OptimizationOutcome
from slipway.registry.base import VersionInfo
from slipway.registry.factory import make_registry
from slipway.release.packaging import ImageOutcome, build_image, make_bundle, servability
from slipway.release.steps import ReleaseInputs, release_key
from slipway.serving.servability import ServabilityReport
from slipway.settings import Settings
from tasks.retry import transient_only


def _bundle_dir(inputs: ReleaseInputs, version: str) -> Path:
    return Settings().work_path() / f"bundle-{release_key(inputs)[:16]}-{version}"


@task(name="servability-check", cache_policy=NO_CACHE, timeout_seconds=600)
def check_servable(inputs: ReleaseInputs, outcome: OptimizationOutcome) -> ServabilityReport:
    """Serve the shipped candidate in a subprocess; its answers on the holdout must match offline ORT."""
    cfg = inputs.config()
    ref = load_reference(cfg.data)
    bundle = make_bundle(
        outcome,
        dst=_bundle_dir(inputs, "candidate"),
        model_name=cfg.registry.model_name,
        model_version=f"candidate-{release_key(inputs)[:12]}",
        ref=ref,
    )
    report = servability(bundle, ref=ref, timeout_s=cfg.serving.servability_timeout_s)
    create_markdown_artifact(
        key="servability",
        markdown=f"# {report.summary()}\n\n```json\n{report.model_dump_json(indent=2)}\n```",
        description="Servability check",
    )
    return report


@task(
    name="build-image",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=[10],
    retry_condition_fn=transient_only,
    timeout_seconds=3600,
)
def build_serving_image(
    inputs: ReleaseInputs, outcome: OptimizationOutcome, version: VersionInfo
) -> ImageOutcome:
    """Build and push the serving image for the registered version; its digest goes on the version."""
    settings = Settings()
    cfg = inputs.config()
    bundle = make_bundle(
        outcome,
        dst=_bundle_dir(inputs, version.version),
        model_name=version.name,
        model_version=version.version,
        ref=load_reference(cfg.data),
    )
    image = build_image(
        make_builder(settings.image_builder, settings=settings),
        bundle=bundle,
        model_name=version.name,
        model_version=version.version,
        git_commit=inputs.git.get("commit", "unknown"),
        settings=settings,
    )
    make_registry(settings, cfg).annotate(
        model_name=version.name,
        version=version.version,
        tags=image.tags(),
        documents={"slipway/image.json": image.model_dump(mode="json")},
    )
    create_markdown_artifact(key="image", markdown=f"# {image.summary()}", description="Serving image")
    return image
