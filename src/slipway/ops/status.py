"""`slipway status`: the champion (version, image digest, since when) and what the deploy target runs now."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from slipway.deploy.base import ComponentHealth, DeploymentState
from slipway.names import CHAMPION, Tag
from slipway.registry.base import VersionReader

if TYPE_CHECKING:
    from slipway.ops.context import OpsContext

NOT_RECORDED = "unknown (not recorded on the version)"


class DeployView(BaseModel):
    """What the configured deploy target reports, or why it cannot."""

    target: str = Field(description="local, kubernetes or none.")
    stable_version: str | None = None
    canary_version: str | None = Field(default=None, description="A canary in flight, if any.")
    weight: int = Field(default=0, description="Percent of live traffic on the canary.")
    shadow: int = Field(default=0, description="Percent of stable traffic mirrored to the canary.")
    canary_ready: bool = False
    canary_unattended: bool = Field(
        default=False,
        description="The canary's release stopped renewing its traffic lease: nothing analyses it and it gets "
        "no traffic; `slipway rollback` (or the next release) removes it.",
    )
    router_url: str | None = None
    health: list[str] = Field(
        default_factory=list,
        description="Each part the target runs and whether it answers now (router, stable, canary, supervisor: "
        "`HealthState`: ready, not ready, degraded, down, ...), with where it runs and how often it was restarted.",
    )
    note: str | None = Field(default=None, description="Why the state is missing, when it is.")


class ServingStatus(BaseModel):
    """The answer of `slipway status`."""

    model_name: str
    champion_version: str | None
    champion_model: str | None = Field(
        default=None, description="What the champion is: its framework and class (`sklearn Pipeline(...)`)."
    )
    image_digest: str | None = None
    image_reference: str | None = None
    image_status: str | None = Field(default=None, description="built, skipped or failed, with its reason.")
    champion_since: str | None = None
    champion_via: str | None = Field(default=None, description="promotion or rollback.")
    previous_champion: str | None = None
    deploy: DeployView
    warnings: list[str] = Field(default_factory=list)


def deploy_view(
    state: DeploymentState | None,
    *,
    target: str,
    router_url: str | None = None,
    health: list[ComponentHealth] | None = None,
    note: str | None = None,
) -> DeployView:
    """Pure; the view of a target's state (None: state unavailable, `note` says why)."""
    lines = [h.line() for h in health or []]
    if state is None:
        return DeployView(target=target, router_url=router_url, health=lines, note=note)
    return DeployView(
        target=target,
        stable_version=state.stable.model_version if state.stable else None,
        canary_version=state.canary.model_version if state.canary else None,
        weight=state.weight,
        shadow=state.shadow,
        canary_ready=state.canary_ready,
        canary_unattended=state.canary_unattended,
        router_url=router_url,
        health=lines,
        note=note,
    )


def serving_status(*, registry: VersionReader, model_name: str, deploy: DeployView) -> ServingStatus:
    """Non-blocking read (one registry call); the champion with its digest and since-when, and the target's view."""
    champion = registry.get_alias(model_name=model_name, alias=CHAMPION)
    warnings = []
    if champion is None:
        status = ServingStatus(model_name=model_name, champion_version=None, deploy=deploy)
        if deploy.stable_version is not None:
            warnings.append(
                f"the {deploy.target} target serves version {deploy.stable_version} but no champion exists"
            )
        return status.model_copy(update={"warnings": warnings})
    tags = champion.tags
    if deploy.target != "none" and deploy.note is None and deploy.stable_version != champion.version:
        serving = f"version {deploy.stable_version}" if deploy.stable_version else "nothing"
        warnings.append(
            f"the {deploy.target} target serves {serving}, not champion version {champion.version} "
            f"(`slipway rollback --to {champion.version} --reason ...` redeploys it)"
        )
    previous = tags.get(Tag.PREVIOUS_CHAMPION)
    return ServingStatus(
        model_name=model_name,
        champion_version=champion.version,
        champion_model=" ".join(t for t in (tags.get(Tag.FRAMEWORK), tags.get(Tag.MODEL_CLASS)) if t) or None,
        image_digest=tags.get(Tag.IMAGE_DIGEST),
        image_reference=tags.get(Tag.IMAGE_REFERENCE),
        image_status=_image_status(tags),
        champion_since=tags.get(Tag.CHAMPION_SINCE) or tags.get(Tag.PROMOTED_AT),
        champion_via=tags.get(Tag.CHAMPION_VIA) or ("promotion" if tags.get(Tag.DECISION) else None),
        previous_champion=None if previous in (None, "none") else previous,
        deploy=deploy,
        warnings=warnings,
    )


def _image_status(tags: dict[str, str]) -> str | None:
    status = tags.get(Tag.IMAGE_STATUS)
    if status is None:
        return None
    if status == "built" and not tags.get(Tag.IMAGE_DIGEST):
        return "image built but not pushed to a registry, so it has no digest"
    reason = tags.get(Tag.IMAGE_REASON)
    return f"image {status}: {reason}" if reason else f"image {status}"


def render_status(status: ServingStatus) -> list[str]:
    """Pure; the plain-text lines of `slipway status`."""
    if status.champion_version is None:
        lines = [f"model {status.model_name}: no champion (nothing has been promoted)"]
    else:
        image = status.image_digest or f"none ({status.image_status or 'no image stage recorded'})"
        lines = [
            f"champion: {status.model_name} version {status.champion_version}",
            f"  model: {status.champion_model or NOT_RECORDED}",
            f"  image digest: {image}",
            f"  since: {status.champion_since or NOT_RECORDED}"
            + (f" (by {status.champion_via})" if status.champion_via else ""),
            f"  previous champion: {status.previous_champion or 'none'}",
        ]
    d = status.deploy
    if d.note is not None:
        lines.append(f"deploy target {d.target}: {d.note}")
    else:
        lines.append(f"deploy target {d.target}: stable serves {_version(d.stable_version)}")
        if d.canary_version is None:
            lines.append("  canary: none in flight")
        elif d.canary_unattended:
            lines.append(
                f"  canary: version {d.canary_version} left by a release that is gone (its lease ran out): "
                "no traffic, nothing analyses it; `slipway rollback` removes it"
            )
        else:
            ready = "ready" if d.canary_ready else "not ready"
            lines.append(
                f"  canary: version {d.canary_version} in flight ({ready}, weight {d.weight}%, shadow {d.shadow}%)"
            )
        if d.router_url:
            lines.append(f"  router: {d.router_url}")
        lines.extend(f"  health: {h}" for h in d.health)
    lines.extend(f"warning: {w}" for w in status.warnings)
    return lines


def _version(version: str | None) -> str:
    return f"version {version}" if version else "nothing"


def read_deploy_view(ctx: OpsContext) -> DeployView:
    """Non-blocking (reads the target's state; probes take ms); never raises: a failure becomes the view's note."""
    from slipway.errors import SlipwayError

    if ctx.target_name == "none":
        return DeployView(
            target="none", note="deploy.target is none: Slipway deploys nothing, only the alias moves"
        )
    try:
        target = ctx.target()
    except SlipwayError as exc:
        return DeployView(target=ctx.target_name, note=f"state unavailable: {exc}")
    assert target is not None
    try:
        url = getattr(target, "router_url", None)
        state, health = target.state(), target.health()
        return deploy_view(state, target=ctx.target_name, router_url=url, health=health)
    except Exception as exc:  # an API or transport error of any client: status still answers
        return DeployView(target=ctx.target_name, note=f"state unavailable: {type(exc).__name__}: {exc}")
    finally:
        target.close()


def current_status(ctx: OpsContext) -> ServingStatus:
    """Blocking (imports the registry client); the champion and what the configured target runs."""
    return serving_status(registry=ctx.reader(), model_name=ctx.model_name, deploy=read_deploy_view(ctx))
