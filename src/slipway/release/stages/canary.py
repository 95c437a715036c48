"""Stage 9, canary -> promote or roll back on the configured deploy target (`deploy.target: none` skips it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from slipway.canary.clock import Clock
from slipway.canary.controller import CanaryOutcome
from slipway.canary.decision import Decision
from slipway.canary.report import decision_rows, plot_png, render_markdown, version_tags
from slipway.deploy.base import DeployTarget, ModelRelease
from slipway.deploy.loadgen import replaying
from slipway.names import Tag
from slipway.registry.base import ModelRegistry, VersionInfo
from slipway.release.canary_stage import DeployOutcome, deploy_release
from slipway.release.context import ReleaseContext
from slipway.release.evidence import CANARY_DATA, CANARY_PLOT, CANARY_REPORT
from slipway.release.ledger import Evidence, model_output, required
from slipway.release.outcome import Artifact, StageOutcome, markdown, table
from slipway.release.packaging import feature_service_meta, serving_bundle
from slipway.release.result import ResultPatch
from slipway.reporting.cells import shorten
from slipway.serving.faults import fault_env
from slipway.serving.settings import serve_env


def canary(
    ctx: ReleaseContext,
    evidence: Evidence,
    *,
    registry: ModelRegistry,
    target: DeployTarget | None,
    clock: Clock,
    work_dir: Path,
    reports_dir: Path,
    on_decision: Callable[[Decision], None] | None = None,
) -> StageOutcome[DeployOutcome]:
    """Blocking (up to canary.deadline_s); passed = promoted, rejected = rolled back (the champion serves),
    error = the target cannot run this policy or image (named; nothing deployed), skipped = no target.

    `on_decision` sees every window's decision as it is made (live progress); its exceptions roll the
    canary back, so a publisher must swallow its own.
    """
    if target is None:
        return StageOutcome(
            stage="canary",
            verdict="skipped",
            reasons=("deploy.target is none: registered without a canary; the champion is unchanged",),
        )
    version = required(evidence.version, what="a registered version")
    image = evidence.image
    image_ref = image.record.reference if image and image.record else None
    policy = ctx.config.canary
    problems = target.capabilities().problems(
        steps=policy.steps, shadow_intervals=policy.shadow_intervals, image_ref=image_ref
    )
    if problems:
        cause = f"deploy.target {target.name}: " + "; ".join(problems)
        return StageOutcome(stage="canary", verdict="error", cause=cause, reasons=(f"ERROR: {cause}",))
    ref = ctx.reference()
    bundle = Path(image.bundle_dir) if image and image.bundle_dir else _bundle(ctx, evidence, work_dir)
    outcomes: list[CanaryOutcome] = []
    deployed = deploy_release(
        registry=registry,
        target=target,
        policy=policy,
        stable_ready_timeout_s=ctx.config.deploy.ready_timeout_s,
        version=version,
        release=ModelRelease(
            model_name=version.name,
            model_version=version.version,
            bundle_dir=bundle,
            image_ref=image_ref,
            env=serve_env(ctx.config) | fault_env(ctx.canary_fault),
        ),
        ref=ref,
        clock=clock,
        work_dir=work_dir,
        traffic=replaying(ref.holdout_xy()[0], rate_rps=ctx.config.deploy.load_rps),
        on_outcome=outcomes.append,
        model_output=ctx.config.training.output,
        stable_env=serve_env(ctx.config),
        on_decision=on_decision,
    )
    if (
        ctx.recovered_canary is not None
    ):  # rolled back when this release took the lease (`recover_environment`)
        deployed = deployed.model_copy(update={"reconciled_orphan": True})
    artifacts: list[Artifact] = [
        markdown(
            "canary",
            f"# Canary {deployed.result}\n\n* {deployed.reason}\n* serving now: version {deployed.stable_version}",
            "Canary outcome",
        )
    ]
    if outcomes:
        artifacts += _evidence(outcomes[0], version=version, registry=registry, reports_dir=reports_dir)
    promoted = deployed.result == "promoted"
    return StageOutcome(
        stage="canary",
        verdict="passed" if promoted else "rejected",
        value=deployed,
        cause="" if promoted else f"canary: {deployed.reason}",
        reasons=(
            f"canary {deployed.result}: {deployed.reason}",
            f"serving: version {deployed.stable_version}",
        ),
        patch=ResultPatch(deploy=deployed.model_dump(mode="json")),
        artifacts=tuple(artifacts),
    )


def canary_plan(ctx: ReleaseContext, evidence: Evidence, *, target: str) -> str:
    """Pure; one line saying what the canary is about to do (the progress artifact's first text)."""
    policy = ctx.config.canary
    version = evidence.version.version if evidence.version else "?"
    steps = " → ".join(f"{w}%" for w in policy.steps)
    shadow = f"{policy.shadow_intervals} shadow window(s), then " if policy.shadow_intervals else ""
    return (
        f"deploying v{version} on target {target}: {shadow}weights {steps}, one decision every "
        f"{policy.interval_s:g} s (deadline {policy.deadline_s:g} s)"
    )


def _bundle(ctx: ReleaseContext, evidence: Evidence, work_dir: Path) -> Path:
    version = required(evidence.version, what="a registered version")
    optimization = required(evidence.optimization, what="an optimization outcome")
    ref = ctx.reference()
    return serving_bundle(
        Path(optimization.artifacts[optimization.shipped_artifact()]),
        dst=work_dir / f"bundle-{version.version}",
        model_name=version.name,
        model_version=version.version,
        ref=ref,
        output=model_output(ctx, evidence),
        feature_service=feature_service_meta(ctx.config, features=ref.features),
    )


def _evidence(
    outcome: CanaryOutcome, *, version: VersionInfo, registry: ModelRegistry, reports_dir: Path
) -> list[Artifact]:
    """Every decision as a table, the deciding checks as markdown, the PNG plot; all on the version's run
    too, and the artifacts link there (the plot inline) when the registry has a UI to link to."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    png_path = reports_dir / f"canary-{version.name}-v{version.version}.png"
    png = plot_png(
        outcome.timeline, title=f"{version.name} v{version.version}: {outcome.result}", path=png_path
    )
    report = render_markdown(outcome)
    registry.annotate(
        model_name=version.name,
        version=version.version,
        tags=version_tags(outcome, prefix=Tag.CANARY_PREFIX),
        documents={CANARY_DATA: outcome.to_dict(), CANARY_PLOT: png, CANARY_REPORT: report.encode()},
    )
    run = registry.run_links(run_id=version.run_id) if version.run_id else None
    if run is not None:
        plot = f"![canary plot: weight, error rate, p99, shift]({run.artifact_file(CANARY_PLOT)})"
        more = (
            f"[plot]({run.artifact_page(CANARY_PLOT)}) · [every decision and check (JSON)]"
            f"({run.artifact_page(CANARY_DATA)}) · [this report]({run.artifact_page(CANARY_REPORT)})"
        )
    else:
        plot, more = f"Plot: `{png_path}` on the worker (no MLflow server to link to).", ""
    result_line = f"**{outcome.result}**: {shorten(outcome.reason, 120)}"
    return [
        table(
            "canary-decisions",
            decision_rows(outcome.decisions),
            f"Every canary decision; a cut reason is whole in `reason_full` (last column). {more}".strip(),
        ),
        markdown("canary-analysis", f"{plot}\n\n{more}\n\n{report}", f"{result_line} {more}".strip()),
    ]
