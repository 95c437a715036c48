"""The deploy step of a release: canary the registered version against the serving champion, then
promote it (target and alias `champion` move together) or roll the target back.

Plain Python over a DeployTarget and the registry. A rollback is only done on the target here: the
release ledger tags the version rejected (`slipway.release.ledger.conclude`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from slipway.canary.clock import Clock
from slipway.canary.controller import CanaryOutcome, reconcile, run_canary
from slipway.canary.decision import Decision
from slipway.canary.output import Baselines, OutputSpec, offline_baselines
from slipway.config import CanaryConfig
from slipway.data.reference import Reference
from slipway.deploy.base import DeployTarget, ModelRelease
from slipway.errors import DeployError
from slipway.evaluation.scoring import class_output
from slipway.names import CHAMPION, Tag
from slipway.registry.base import ModelRegistry, VersionInfo
from slipway.release.packaging import serving_bundle
from slipway.serving.answers import row_scores
from slipway.serving.bundle import FeatureServiceMeta, read_bundle
from slipway.serving.faults import injects_fault
from slipway.serving.servability import expected_answers


class DeployOutcome(BaseModel):
    """How the deploy step ended."""

    result: Literal["promoted", "rolled_back"]
    reason: str
    stable_version: str | None = Field(default=None, description="What serves after the stage.")
    previous_champion: str | None = None
    reconciled_orphan: bool = Field(
        default=False, description="A canary left by a killed run was rolled back first."
    )
    canary: dict[str, Any] = Field(
        default_factory=dict, description="CanaryOutcome.to_dict() when a canary ran."
    )


def champion_bundle(
    registry: ModelRegistry,
    *,
    champion: VersionInfo,
    dst: Path,
    ref: Reference,
    output: Literal["logits", "probabilities"] = "logits",
    feature_service: FeatureServiceMeta | None = None,
) -> Path:
    """Blocking; the champion's serving bundle rebuilt from its registered shipped ONNX file; DeployError if absent.

    What its graph answers is the version's own `slipway.model.output` tag; `output` only for versions without one.
    `feature_service` (a feature-store project's service) is recorded with the champion's own definition hash
    (its `slipway.features.service_sha256` tag, when it has one): a champion trained on another definition
    refuses Ready.
    """
    artifact = champion.tags.get(Tag.SHIPPED_ARTIFACT)
    if not artifact:
        raise DeployError(
            f"champion {champion.name}/{champion.version} has no {Tag.SHIPPED_ARTIFACT} tag "
            "(registered before the optimization stage existed): promote a newer version first"
        )
    onnx_path = registry.fetch_artifact(
        model_name=champion.name, version=champion.version, path=artifact, dst=dst / "fetched"
    )
    own_hash = champion.tags.get(Tag.FEATURE_SERVICE_HASH)
    if feature_service is not None and own_hash:
        feature_service = feature_service.model_copy(update={"service_hash": own_hash})
    return serving_bundle(
        onnx_path,
        dst=dst / "bundle",
        model_name=champion.name,
        model_version=champion.version,
        ref=ref,
        output=version_output(champion, fallback=output),
        feature_service=feature_service,
    )


def version_output(
    version: VersionInfo, *, fallback: Literal["logits", "probabilities"]
) -> Literal["logits", "probabilities"]:
    """Pure; what a registered classifier's ONNX graph answers (its tag), else `fallback` (`training.output`)."""
    return class_output(version.tags.get(Tag.MODEL_OUTPUT), fallback=fallback)


def output_spec(bundle: Path) -> OutputSpec:
    """Blocking (reads model.json); the task and valid score range of a bundle's model."""
    meta = read_bundle(bundle).meta
    if meta.task == "regression":
        return OutputSpec.regression(meta.value_range or (0.0, 1.0))
    return OutputSpec(task=meta.task, classes=len(meta.classes))


def offline_comparison(
    stable_bundle: Path, canary_bundle: Path, *, ref: Reference
) -> tuple[OutputSpec, Baselines]:
    """Blocking (ms); the canary's output spec, and the two models' differences on the holdout measured by
    the live checks' statistics: what the quality gate approved is not a silent shift."""
    x, _ = ref.holdout_xy()
    spec = output_spec(canary_bundle)
    summaries = [row_scores(spec.task, expected_answers(b, x)) for b in (stable_bundle, canary_bundle)]
    return spec, offline_baselines(stable=summaries[0], canary=summaries[1], spec=spec)


def deploy_release(
    *,
    registry: ModelRegistry,
    target: DeployTarget,
    policy: CanaryConfig,
    stable_ready_timeout_s: float,
    version: VersionInfo,
    release: ModelRelease,
    ref: Reference,
    clock: Clock,
    work_dir: Path,
    traffic: Callable[[DeployTarget], contextlib.AbstractContextManager[None]] | None = None,
    on_decision: Callable[[Decision], None] | None = None,
    on_outcome: Callable[[CanaryOutcome], None] | None = None,
    model_output: Literal["logits", "probabilities"] = "logits",
    stable_env: dict[str, str] | None = None,
) -> DeployOutcome:
    """Blocking (up to the canary deadline); canary -> promote or roll back; the first release is promoted as the stable.

    `traffic(target)` returns a context manager that drives load while the canary runs (local target);
    `stable_env` is the server env of a (re)deployed champion (see `slipway.serving.settings.serve_env`).
    """
    reconciled = reconcile(target)
    champion = registry.get_alias(model_name=version.name, alias=CHAMPION)
    if champion is None and injects_fault(release.env):
        raise DeployError(
            "a canary fault needs a serving champion to canary against; release once without --canary-fault first"
        )
    if champion is None:
        target.deploy_stable(release, ready_timeout_s=policy.readiness_deadline_s)
        reason = (
            "first release: no champion to canary against; promoted on the quality gate, parity and "
            "servability evidence and deployed as the stable"
        )
        registry.promote(model_name=version.name, version=version.version, reason=reason)
        return DeployOutcome(
            result="promoted", reason=reason, stable_version=version.version, reconciled_orphan=reconciled
        )
    bundle = champion_bundle(
        registry,
        champion=champion,
        dst=work_dir / f"champion-{champion.version}",
        ref=ref,
        output=model_output,
        # the same feature service as the candidate's (one definition per store), at the champion's own hash
        feature_service=read_bundle(release.bundle_dir).meta.feature_service
        if release.bundle_dir is not None
        else None,
    )
    spec, baselines = (
        offline_comparison(bundle, release.bundle_dir, ref=ref)
        if release.bundle_dir is not None
        else (output_spec(bundle), Baselines())
    )
    state = target.state()
    if state.stable is None or state.stable.model_version != champion.version:
        target.deploy_stable(
            ModelRelease(
                model_name=champion.name,
                model_version=champion.version,
                bundle_dir=bundle,
                image_ref=champion.tags.get(Tag.IMAGE_REFERENCE),
                env=dict(stable_env or {}),
            ),
            ready_timeout_s=stable_ready_timeout_s,
        )
    with traffic(target) if traffic is not None else contextlib.nullcontext():
        outcome = run_canary(
            target,
            target.metrics_source(),
            release=release,
            policy=policy,
            clock=clock,
            on_decision=on_decision,
            spec=spec,
            baselines=baselines,
        )
    if on_outcome is not None:
        on_outcome(outcome)
    if outcome.result == "promoted":
        registry.promote(model_name=version.name, version=version.version, reason=f"canary: {outcome.reason}")
    return DeployOutcome(
        result=outcome.result,
        reason=outcome.reason,
        stable_version=version.version if outcome.result == "promoted" else champion.version,
        previous_champion=champion.version,
        reconciled_orphan=reconciled,
        canary=outcome.to_dict(),
    )
