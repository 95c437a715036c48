"""The deploy stage of a release: canary the registered version against the serving champion, then
promote it (alias `champion` moves) or roll it back (the version is tagged rejected), as one unit.

Plain Python over a DeployTarget and the registry; `tasks/canary.py` wraps it.
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
from slipway.config import PipelineConfig, ServingConfig
from slipway.data.reference import Reference
from slipway.deploy.base import DeployTarget, MetricsSource, ModelRelease
from slipway.errors import DeployError, UsageError
from slipway.registry.base import CHAMPION, ModelRegistry, VersionInfo
from slipway.serving.bundle import write_bundle
from slipway.settings import Settings

FaultKind = Literal["errors", "latency", "nan", "constant", "flip", "never-ready"]
FAULT_KINDS: tuple[str, ...] = ("errors", "latency", "nan", "constant", "flip", "never-ready")


def serve_env(serving: ServingConfig) -> dict[str, str]:
    """Pure; the server env every deployed arm gets from `serving` (the release's faults go on top)."""
    return {"SLIPWAY_SERVE_WORKERS": str(serving.workers)} if serving.workers != 1 else {}


def fault_env(kind: str | None) -> dict[str, str]:
    """Pure; the server env that injects one fault kind into the canary (empty for None); UsageError if unknown."""
    if kind is None:
        return {}
    table = {
        "errors": {"SLIPWAY_SERVE_FAULT_ERROR_RATE": "0.5"},
        "latency": {"SLIPWAY_SERVE_FAULT_LATENCY_MS": "50"},
        "nan": {"SLIPWAY_SERVE_FAULT_OUTPUT": "nan"},
        "constant": {"SLIPWAY_SERVE_FAULT_OUTPUT": "constant"},
        "flip": {"SLIPWAY_SERVE_FAULT_OUTPUT": "flip"},
        "never-ready": {"SLIPWAY_SERVE_FAULT_NEVER_READY": "true"},
    }
    if kind not in table:
        raise UsageError(f"--canary-fault: unknown kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
    return table[kind]


class DeployOutcome(BaseModel):
    """How the deploy stage ended."""

    result: Literal["promoted", "rolled_back", "skipped"]
    reason: str
    stable_version: str | None = Field(default=None, description="What serves after the stage.")
    previous_champion: str | None = None
    reconciled_orphan: bool = Field(
        default=False, description="A canary left by a killed run was rolled back first."
    )
    canary: dict[str, Any] = Field(
        default_factory=dict, description="CanaryOutcome.to_dict() when a canary ran."
    )


def champion_bundle(registry: ModelRegistry, *, champion: VersionInfo, dst: Path, ref: Reference) -> Path:
    """Blocking; the champion's serving bundle rebuilt from its registered shipped ONNX file; DeployError if absent."""
    artifact = champion.tags.get("slipway.optimize.shipped_artifact")
    if not artifact:
        raise DeployError(
            f"champion {champion.name}/{champion.version} has no slipway.optimize.shipped_artifact tag "
            "(registered before the optimization stage existed): promote a newer version first"
        )
    onnx_path = registry.fetch_artifact(
        model_name=champion.name, version=champion.version, path=artifact, dst=dst / "fetched"
    )
    _, y = ref.holdout_xy()
    return write_bundle(
        dst / "bundle",
        onnx_path=onnx_path,
        model_name=champion.name,
        model_version=champion.version,
        features=list(ref.features),
        classes=sorted({int(v) for v in y}),
    )


def offline_shift(stable_bundle: Path, canary_bundle: Path, *, ref: Reference) -> float:
    """Blocking (ms); KS D between the two models' class-1 scores on the holdout: the shift the gate approved."""
    from slipway.canary.checks import ks_two_sample
    from slipway.serving.servability import expected_probabilities

    x, _ = ref.holdout_xy()
    stable = expected_probabilities(stable_bundle / "model.onnx", x)[:, -1]
    canary = expected_probabilities(canary_bundle / "model.onnx", x)[:, -1]
    d, _ = ks_two_sample(canary, stable)
    return round(float(d), 4)


def deploy_release(
    *,
    registry: ModelRegistry,
    target: DeployTarget,
    metrics: MetricsSource,
    cfg: PipelineConfig,
    version: VersionInfo,
    release: ModelRelease,
    ref: Reference,
    clock: Clock,
    traffic: Callable[[DeployTarget], contextlib.AbstractContextManager[None]] | None = None,
    on_decision: Callable[[Decision], None] | None = None,
    on_outcome: Callable[[CanaryOutcome], None] | None = None,
    settings: Settings | None = None,
) -> DeployOutcome:
    """Blocking (up to the canary deadline); canary -> promote or roll back; the first release is promoted as the stable.

    `traffic(target)` returns a context manager that drives load while the canary runs (local target).
    """
    settings = settings or Settings()
    reconciled = reconcile(target)
    champion = registry.get_alias(model_name=version.name, alias=CHAMPION)
    if champion is None and release.env:
        raise DeployError(
            "a canary fault needs a serving champion to canary against; release once without --canary-fault first"
        )
    if champion is None:
        target.deploy_stable(release, ready_timeout_s=cfg.canary.readiness_deadline_s)
        reason = (
            "first release: no champion to canary against; promoted on the quality gate, parity and "
            "servability evidence and deployed as the stable"
        )
        registry.promote(model_name=version.name, version=version.version, reason=reason)
        return DeployOutcome(
            result="promoted", reason=reason, stable_version=version.version, reconciled_orphan=reconciled
        )
    bundle = champion_bundle(
        registry, champion=champion, dst=settings.work_path() / f"champion-{champion.version}", ref=ref
    )
    policy = cfg.canary
    if release.bundle_dir is not None:
        policy = policy.model_copy(
            update={"shift_baseline": offline_shift(bundle, release.bundle_dir, ref=ref)}
        )
    state = target.state()
    if state.stable is None or state.stable.model_version != champion.version:
        image = champion.tags.get("slipway.image.reference")
        target.deploy_stable(
            ModelRelease(
                model_name=champion.name,
                model_version=champion.version,
                bundle_dir=bundle,
                image_ref=image,
                env=serve_env(cfg.serving),
            ),
            ready_timeout_s=cfg.deploy.ready_timeout_s,
        )
    with traffic(target) if traffic is not None else contextlib.nullcontext():
        outcome = run_canary(
            target, metrics, release=release, policy=policy, clock=clock, on_decision=on_decision
        )
    if on_outcome is not None:
        on_outcome(outcome)
    return _record(registry, outcome, version=version, champion=champion, reconciled=reconciled)


def _record(
    registry: ModelRegistry,
    outcome: CanaryOutcome,
    *,
    version: VersionInfo,
    champion: VersionInfo,
    reconciled: bool,
) -> DeployOutcome:
    if outcome.result == "promoted":
        registry.promote(model_name=version.name, version=version.version, reason=f"canary: {outcome.reason}")
        stable = version.version
    else:
        registry.reject(
            model_name=version.name, version=version.version, stage="canary", reason=outcome.reason
        )
        stable = champion.version
    return DeployOutcome(
        result="promoted" if outcome.result == "promoted" else "rolled_back",
        reason=outcome.reason,
        stable_version=stable,
        previous_champion=champion.version,
        reconciled_orphan=reconciled,
        canary=outcome.to_dict(),
    )
