"""Audited rollback of the serving model: redeploy a previous champion as the stable, then move `champion`.

Order of effects, so that a failure at any step leaves the registry telling the truth:
1. plan (pure): which version, or a refusal naming it, or "already champion" (a no-op);
2. redeploy it as the target's stable (a failure stops here: the alias never moves, the champion serves);
3. tag the outgoing champion, then tag the restored version and move `champion` to it (one call);
4. append the audit record (idempotent per rollback id; a re-run after a crash here appends it).
A re-run with the same `--to` is a no-op; a bare re-run after a rollback is a no-op too (it never walks
further back on its own: pass `--to` for that).
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from slipway.deploy.base import DeployTarget, ModelRelease
from slipway.errors import DeployError, RegistryError, UsageError
from slipway.names import CHAMPION, Tag
from slipway.ops.audit import AuditRecord, append_record, read_records
from slipway.registry.base import ModelRegistry, VersionInfo, utc_now_iso

if TYPE_CHECKING:
    from slipway.config import PipelineConfig
    from slipway.ops.context import OpsContext

ROLLBACK = Tag.ROLLBACK_PREFIX


class RollbackRefused(UsageError):
    """The requested rollback is not allowed (unknown, rejected or never-promoted version; no champion)."""


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback will do: restore `to_version` in place of `from_version`, or nothing (`noop`)."""

    model_name: str
    from_version: str | None
    to_version: str
    noop: bool
    message: str


class RollbackResult(BaseModel):
    """What a rollback did."""

    model_name: str
    from_version: str | None
    to_version: str
    noop: bool = Field(description="The registry was already right (already champion / already rolled back).")
    redeployed: bool = Field(description="The deploy target (re)deployed `to_version` as the stable.")
    target: str = Field(description="local, kubernetes, fake or none.")
    rollback_id: str | None = None
    at: str | None = None
    actor: str | None = None
    removed_canary: str | None = Field(
        default=None, description="The version of a canary its release had left behind, removed first."
    )
    message: str


def registered_release(
    registry: ModelRegistry, *, work_dir: Path, cfg: PipelineConfig
) -> Callable[[VersionInfo], ModelRelease]:
    """How a version is served again: its bundle rebuilt from the registered shipped ONNX file, image by digest."""
    from slipway.features.joined import project_reference
    from slipway.release.canary_stage import champion_bundle
    from slipway.release.packaging import feature_service_meta
    from slipway.serving.settings import serve_env

    def build(v: VersionInfo) -> ModelRelease:
        # the same folder the release's deploy stage uses for a champion, so both describe one stable
        ref = project_reference(cfg)  # only when a target needs a bundle (not for deploy.target none)
        bundle = champion_bundle(
            registry,
            champion=v,
            dst=work_dir / f"champion-{v.version}",
            ref=ref,
            output=cfg.training.output,
            # a feature-store project's version answers entities again, at its own definition hash
            feature_service=feature_service_meta(cfg, features=ref.features),
        )
        return ModelRelease(
            model_name=v.name,
            model_version=v.version,
            bundle_dir=bundle,
            image_ref=v.tags.get(Tag.IMAGE_REFERENCE),
            env=serve_env(cfg),  # what a release deploys it with: workers, prediction log
        )

    return build


def default_actor() -> str:
    """The operator's login name (`unknown` if the system has none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _was_promoted(v: VersionInfo) -> bool:
    return v.tags.get(Tag.DECISION) == "promoted" or Tag.PROMOTED_AT in v.tags or CHAMPION in v.aliases


def plan_rollback(
    *,
    model_name: str,
    champion: VersionInfo | None,
    requested: str | None,
    lookup: Callable[[str], VersionInfo | None],
) -> RollbackPlan:
    """Reads only through `lookup` (version -> VersionInfo, None if unknown); the plan, or RollbackRefused naming the version."""
    if requested is None:
        if champion is None:
            raise RollbackRefused(f"model {model_name} has no champion: nothing serves, nothing to roll back")
        if champion.tags.get(Tag.CHAMPION_VIA) == "rollback":
            return RollbackPlan(
                model_name=model_name,
                from_version=champion.version,
                to_version=champion.version,
                noop=True,
                message=(
                    f"champion version {champion.version} is already the result of a rollback from version "
                    f"{champion.tags.get(ROLLBACK + 'from')} at {champion.tags.get(ROLLBACK + 'at')}; nothing to do "
                    "(pass --to VERSION to roll back further)"
                ),
            )
        previous = champion.tags.get(Tag.PREVIOUS_CHAMPION, "none")
        if previous == "none":
            raise RollbackRefused(
                f"champion version {champion.version} records no previous champion (it was the first one "
                "promoted): pass --to VERSION"
            )
        requested = previous
    wanted = lookup(requested)
    if wanted is None:
        raise RollbackRefused(f"version {requested!r} of model {model_name} does not exist")
    if champion is not None and champion.version == wanted.version:
        return RollbackPlan(
            model_name=model_name,
            from_version=champion.version,
            to_version=wanted.version,
            noop=True,
            message=f"version {wanted.version} is already the champion; nothing to do",
        )
    if wanted.tags.get(Tag.DECISION) == "rejected":
        raise RollbackRefused(
            f"version {wanted.version} of model {model_name} was rejected at stage "
            f"{wanted.tags.get(Tag.REJECTED_AT, 'unknown')} "
            f"({wanted.tags.get(Tag.REJECTION_REASON, 'no reason recorded')[:200]}); refusing to serve it"
        )
    if not _was_promoted(wanted):
        raise RollbackRefused(
            f"version {wanted.version} of model {model_name} was never promoted (it never held champion); "
            "refusing to serve it: roll back only to a former champion"
        )
    return RollbackPlan(
        model_name=model_name,
        from_version=champion.version if champion else None,
        to_version=wanted.version,
        noop=False,
        message=f"rolling back champion {champion.version if champion else 'none'} -> version {wanted.version}",
    )


def _lookup(registry: ModelRegistry, *, model_name: str, version: str) -> VersionInfo | None:
    try:
        return registry.get_version(model_name=model_name, version=version)
    except RegistryError:
        return None


def _reconcile_audit(champion: VersionInfo, *, audit_path: Path, target: str) -> None:
    """A rollback that crashed after moving the alias but before its audit line: append it now."""
    tags = champion.tags
    rid = tags.get(ROLLBACK + "id")
    if (
        champion.tags.get(Tag.CHAMPION_VIA) != "rollback"
        or not rid
        or tags.get(ROLLBACK + "to") != champion.version
    ):
        return
    if any(r.id == rid for r in read_records(audit_path)):
        return
    append_record(
        audit_path,
        AuditRecord(
            id=rid,
            action="rollback",
            model_name=champion.name,
            from_version=tags.get(ROLLBACK + "from") or None,
            to_version=champion.version,
            reason=tags.get(ROLLBACK + "reason", ""),
            actor=tags.get(ROLLBACK + "by", "unknown"),
            at=tags.get(ROLLBACK + "at", ""),
            target=target,
        ),
    )


def rollback_serving(
    *,
    registry: ModelRegistry,
    target: DeployTarget | None,
    model_name: str,
    to_version: str | None,
    reason: str,
    actor: str,
    release_for: Callable[[VersionInfo], ModelRelease],
    audit_path: Path,
    ready_timeout_s: float,
    now: Callable[[], str] = utc_now_iso,
) -> RollbackResult:
    """Blocking (until the restored stable is ready); idempotent; RollbackRefused/DeployError name the version."""
    reason = reason.strip()
    if not reason:
        raise UsageError(
            "--reason: say why you roll back (it is recorded on both versions and in the audit log)"
        )
    target_name = target.name if target is not None else "none"
    champion = registry.get_alias(model_name=model_name, alias=CHAMPION)
    plan = plan_rollback(
        model_name=model_name,
        champion=champion,
        requested=to_version,
        lookup=lambda v: _lookup(registry, model_name=model_name, version=v),
    )
    orphan = _remove_orphan_canary(target) if target is not None else None
    left = f"; removed canary version {orphan}, which a release that is gone left behind" if orphan else ""
    if plan.noop:
        assert champion is not None  # a no-op needs a champion
        _reconcile_audit(champion, audit_path=audit_path, target=target_name)
        message, redeployed = plan.message + left, False
        stable = target.state().stable if target is not None else None
        if target is not None and (stable is None or stable.model_version != champion.version):
            # the registry already says so, but the target does not serve it (stopped, or a crash): reconcile
            _redeploy(target, release_for(champion), plan=plan, ready_timeout_s=ready_timeout_s)
            serving = f"version {stable.model_version}" if stable else "nothing"
            message, redeployed = (
                f"{message} in the registry; the {target_name} target served {serving}: redeployed it",
                True,
            )
        return RollbackResult(
            model_name=model_name,
            from_version=plan.from_version,
            to_version=plan.to_version,
            noop=True,
            redeployed=redeployed,
            target=target_name,
            removed_canary=orphan,
            message=message,
        )
    wanted = registry.get_version(model_name=model_name, version=plan.to_version)
    if target is not None:
        _redeploy(target, release_for(wanted), plan=plan, ready_timeout_s=ready_timeout_s)
    at = now()
    rid = uuid.uuid4().hex[:16]
    record = {
        ROLLBACK + "id": rid,
        ROLLBACK + "at": at,
        ROLLBACK + "by": actor[:250],
        ROLLBACK + "reason": reason[:500],
        ROLLBACK + "from": plan.from_version or "none",
        ROLLBACK + "to": plan.to_version,
    }
    try:
        if plan.from_version is not None:
            registry.annotate(model_name=model_name, version=plan.from_version, tags=record, documents={})
        registry.set_champion(
            model_name=model_name,
            version=plan.to_version,
            tags={**record, Tag.CHAMPION_SINCE: at, Tag.CHAMPION_VIA: "rollback"},
        )
    except RegistryError:
        if target is not None and champion is not None:  # put the old champion back where it was
            target.deploy_stable(release_for(champion), ready_timeout_s=ready_timeout_s)
        raise
    append_record(
        audit_path,
        AuditRecord(
            id=rid,
            action="rollback",
            model_name=model_name,
            from_version=plan.from_version,
            to_version=plan.to_version,
            reason=reason,
            actor=actor,
            at=at,
            target=target_name,
        ),
    )
    where = (
        f"redeployed on the {target_name} target"
        if target is not None
        else "deploy target none: only the alias moved, nothing was redeployed"
    )
    return RollbackResult(
        model_name=model_name,
        from_version=plan.from_version,
        to_version=plan.to_version,
        noop=False,
        redeployed=target is not None,
        target=target_name,
        rollback_id=rid,
        at=at,
        actor=actor,
        removed_canary=orphan,
        message=f"champion {plan.from_version or 'none'} -> version {plan.to_version}; {where}{left}",
    )


def _remove_orphan_canary(target: DeployTarget) -> str | None:
    """Blocking; the version of a canary no live release drives (its lease ran out, or nobody holds the release
    lock), after rolling it back; None without one; DeployError (nothing changed) while a release runs it."""
    state = target.state()
    if state.canary is None:
        return None
    holder = target.release_lock().holder()
    if holder is not None and not state.canary_unattended:
        raise DeployError(
            f"the {target.name} target has a canary in flight (version {state.canary.model_version}, weight "
            f"{state.weight}%) driven by {holder.describe()}: let it finish (it promotes or rolls back), then roll "
            "back; nothing changed"
        )
    target.rollback()
    return state.canary.model_version


def _redeploy(
    target: DeployTarget, release: ModelRelease, *, plan: RollbackPlan, ready_timeout_s: float
) -> None:
    state = target.state()
    if state.canary is not None:
        raise DeployError(
            f"the {target.name} target has a canary in flight (version {state.canary.model_version}, weight "
            f"{state.weight}%): let its release finish (it promotes or rolls back), then roll back; nothing changed"
        )
    try:
        target.deploy_stable(release, ready_timeout_s=ready_timeout_s)
    except DeployError as exc:
        raise DeployError(
            f"rollback to version {plan.to_version} of {plan.model_name}: redeploy on the {target.name} target "
            f"failed, so champion stays version {plan.from_version} and the registry is unchanged: {exc}"
        ) from None


def run_rollback(ctx: OpsContext, *, to_version: str | None, reason: str, actor: str) -> RollbackResult:
    """Blocking; `rollback_serving` on the configured registry and deploy target (closed afterwards)."""
    registry = ctx.registry()
    target = ctx.target()
    try:
        return rollback_serving(
            registry=registry,
            target=target,
            model_name=ctx.model_name,
            to_version=to_version,
            reason=reason,
            actor=actor,
            release_for=registered_release(registry, work_dir=ctx.settings.work_path(), cfg=ctx.cfg),
            audit_path=ctx.audit_path,
            ready_timeout_s=ctx.cfg.deploy.ready_timeout_s,
        )
    finally:
        if target is not None:
            target.close()


def render_rollback(result: RollbackResult) -> list[str]:
    """Pure; the plain-text lines of `slipway rollback`."""
    if result.noop:
        return [result.message]
    return [
        f"rolled back {result.model_name}: {result.message}",
        f"  recorded on versions {result.from_version} and {result.to_version} and in the audit log "
        f"(id {result.rollback_id}, by {result.actor} at {result.at})",
    ]
