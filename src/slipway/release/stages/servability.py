"""Stage 5, servability: the shipped model served by a real server must answer the holdout like offline ORT.

Twice when it can: before registration, in a `python -m slipway.serving` process of this environment
(a broken model never becomes a version); after the image is built, in a container of THAT image (what
the canary will run). Without an image builder or a container runtime the second check is skipped
and the decision says so.
"""

from __future__ import annotations

from pathlib import Path

from slipway.errors import ImageError
from slipway.images.base import ImageBuilder
from slipway.names import Tag
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence, model_output, required
from slipway.release.outcome import StageOutcome, markdown
from slipway.release.packaging import feature_service_meta, serving_bundle
from slipway.serving.bundle import read_bundle
from slipway.serving.servability import (
    Launcher,
    ServabilityReport,
    ServerLaunch,
    check_servability,
    expected_answers,
)

IN_PROCESS = "in-process"


def _outcome(report: ServabilityReport, *, tag: str) -> StageOutcome[ServabilityReport]:
    return StageOutcome(
        stage="servability",
        verdict="passed" if report.passed else "rejected",
        value=report,
        cause=report.cause or "",
        reasons=(report.summary() if report.passed else f"FAIL: {report.summary()}",),
        tags={Tag.SERVABILITY: tag},
        documents={"slipway/servability.json": report.model_dump(mode="json")},
        artifacts=(
            markdown(
                "servability",
                f"# {report.summary()}\n\n```json\n{report.model_dump_json(indent=2)}\n```",
                f"Servability check ({report.served_by})",
            ),
        ),
    )


def check_in_process(
    ctx: ReleaseContext, evidence: Evidence, *, work_dir: Path
) -> StageOutcome[ServabilityReport]:
    """Blocking (a few s); the shipped candidate served by a subprocess; rejected on mismatch, crash or timeout."""
    optimization = required(evidence.optimization, what="an optimization outcome")
    ref = ctx.reference()
    bundle = serving_bundle(
        Path(optimization.artifacts[optimization.shipped_artifact()]),
        dst=work_dir,
        model_name=ctx.model_name,
        model_version=f"candidate-{ctx.release_key()[:12]}",
        ref=ref,
        output=model_output(ctx, evidence),
        feature_service=feature_service_meta(ctx.config, features=ref.features),
    )
    x, _ = ref.holdout_xy()
    report = check_servability(
        bundle,
        x=x,
        expected=expected_answers(bundle, x),
        timeout_s=ctx.config.serving.servability_timeout_s,
    )
    return _outcome(report, tag=IN_PROCESS)


def image_launcher(
    builder: ImageBuilder, *, image_id: str, served_by: str, run_args: tuple[str, ...] = ()
) -> Launcher:
    """Pure; a launcher that runs the built image (by id, nothing pulled) on the check's port."""

    def launch(bundle_dir: Path, port: int) -> ServerLaunch:
        name = f"slipway-smoke-{image_id[:12]}-{port}"
        command, cleanup = builder.server_command(image_id, name=name, port=port, env={}, run_args=run_args)
        return ServerLaunch(command=tuple(command), served_by=served_by, cleanup=tuple(cleanup))

    return launch


def smoke_test_image(
    ctx: ReleaseContext, evidence: Evidence, *, builder: ImageBuilder
) -> StageOutcome[ServabilityReport]:
    """Blocking (seconds); the release's image run as a container against the holdout; skipped (said so) when
    there is no image or no runtime for it; rejected at `servability` on mismatch, crash or timeout."""
    required(evidence.version, what="a registered version")  # the image holds the version's bundle
    image = evidence.image
    if image is None or image.record is None or image.bundle_dir is None:
        return _skipped(f"no image was built: image {image.status if image else 'stage did not run'}")
    record = image.record
    if read_bundle(Path(image.bundle_dir)).meta.feature_service is not None:
        return _skipped(
            "a feature-store model: the serving image has no Feast and no feature repository, so it is served "
            "as a local process"
        )
    try:
        builder.server_command(record.image_id, name="probe", port=0, env={})
    except ImageError as exc:
        return _skipped(f"the image cannot run here: {exc.detail}")
    ref = ctx.reference()
    x, _ = ref.holdout_xy()
    bundle = Path(image.bundle_dir)
    report = check_servability(
        bundle,
        x=x,
        expected=expected_answers(bundle, x),
        timeout_s=ctx.config.serving.servability_timeout_s,
        launcher=image_launcher(
            builder,
            image_id=record.image_id,
            served_by=f"image {record.reference or record.tag}",
            run_args=tuple(ctx.config.deploy.local.podman.run_args),  # this machine's container flags
        ),
    )
    return _outcome(report, tag=f"image {record.reference or record.tag}")


def _skipped(why: str) -> StageOutcome[ServabilityReport]:
    line = f"servability of the image: skipped ({why}); the {IN_PROCESS} check above is the evidence"
    return StageOutcome(
        stage="servability",
        verdict="skipped",
        reasons=(line,),
        tags={Tag.SERVABILITY: f"{IN_PROCESS} only"},
        artifacts=(markdown("servability-image", f"# {line}", "Servability of the image"),),
    )
