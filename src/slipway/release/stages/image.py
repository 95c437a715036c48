"""Stage 8, the serving image: built, pushed, its digest on the version; skipped with what to install."""

from __future__ import annotations

from pathlib import Path

from slipway.images.base import ImageBuilder
from slipway.registry.base import ModelRegistry
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence, model_output, required
from slipway.release.outcome import StageOutcome, markdown
from slipway.release.packaging import ImageOutcome, build_image, feature_service_meta, serving_bundle
from slipway.release.result import ResultPatch
from slipway.settings import Settings


def build_serving_image(
    ctx: ReleaseContext,
    evidence: Evidence,
    *,
    builder: ImageBuilder,
    registry: ModelRegistry,
    settings: Settings,
    work_dir: Path,
) -> StageOutcome[ImageOutcome]:
    """Blocking (seconds to minutes); passed when built, skipped without a builder, error when the build fails.

    The version's serving bundle is written either way (the local process target serves it). A feature-store
    model's image holds the bundle but neither Feast nor the feature repository: such an image is not Ready
    (serve it as a local process; see README, Serving by entity key).
    """
    version = required(evidence.version, what="a registered version")
    optimization = required(evidence.optimization, what="an optimization outcome")
    ref = ctx.reference()
    bundle = serving_bundle(
        Path(optimization.artifacts[optimization.shipped_artifact()]),
        dst=work_dir,
        model_name=version.name,
        model_version=version.version,
        ref=ref,
        output=model_output(ctx, evidence),
        feature_service=feature_service_meta(ctx.config, features=ref.features, settings=settings),
    )
    image = build_image(
        builder,
        bundle=bundle,
        model_name=version.name,
        model_version=version.version,
        git_commit=ctx.git.get("commit", "unknown"),
        source_dir=ctx.config.base_dir,
        settings=settings,
    )
    registry.annotate(
        model_name=version.name,
        version=version.version,
        tags=image.tags(),
        documents={"slipway/image.json": image.model_dump(mode="json")},
    )
    verdict = {"built": "passed", "skipped": "skipped"}.get(image.status, "error")
    return StageOutcome(
        stage="image",
        verdict="passed" if verdict == "passed" else "skipped" if verdict == "skipped" else "error",
        value=image,
        cause=image.reason if verdict == "error" else "",
        reasons=(image.summary(),),
        tags=image.tags(),
        patch=ResultPatch(image=image.model_dump(mode="json")),
        artifacts=(markdown("image", f"# {image.summary()}", "Serving image"),),
    )
