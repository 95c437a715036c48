"""`slipway history`: every release the registry knows, newest first, with its decision and the reason.

Versions carry their decision as tags (promoted, rolled back at the canary, rejected, registered, error at
the image stage); attempts a gate rejected before registration are runs without a version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from slipway.names import CHAMPION, Tag
from slipway.ops.status import DeployView
from slipway.registry.base import RejectedAttempt, VersionInfo, VersionReader


class HistoryEntry(BaseModel):
    """One release: a registered version, or a rejected attempt (a run, no version)."""

    kind: Literal["version", "attempt"]
    version: str | None = None
    run_id: str | None = None
    created_at: str | None = Field(default=None, description="UTC ISO 8601 time it was registered/logged.")
    decision: str = Field(description="promoted, rolled_back, rejected, registered or error.")
    stage: str | None = Field(default=None, description="Where it was decided (quality_gate, canary, ...).")
    reason: str = ""
    champion: bool = Field(default=False, description="Holds the champion alias now.")
    notes: list[str] = Field(default_factory=list, description="Later operations, e.g. a rollback.")
    sort_key: float = Field(default=0.0, exclude=True)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def version_entry(v: VersionInfo) -> HistoryEntry:
    """Pure; a version's decision and reason from its tags."""
    tags = v.tags
    decision, stage, reason = "registered", "register", "registered; not deployed (challenger)"
    if tags.get(Tag.DECISION) == "promoted":
        decision, stage, reason = "promoted", "canary", tags.get(Tag.PROMOTION_REASON, "")
    elif tags.get(Tag.DECISION) == "rejected":
        stage = tags.get(Tag.REJECTED_AT, "unknown")
        decision = "rolled_back" if stage == "canary" else "rejected"
        reason = tags.get(Tag.REJECTION_REASON, "")
    elif tags.get(Tag.DECISION) == "error":
        stage = tags.get(Tag.ERROR_AT, "unknown (interrupted)" if Tag.INTERRUPTED in tags else "unknown")
        decision, reason = "error", tags.get(Tag.ERROR_REASON, "")
    elif tags.get(Tag.IMAGE_STATUS) == "failed":
        decision, stage, reason = "error", "image", tags.get(Tag.IMAGE_REASON, "image build failed")
    notes = []
    rollback_id = tags.get(Tag.ROLLBACK_ID)
    if rollback_id and tags.get(Tag.ROLLBACK_FROM) == v.version:
        notes.append(
            f"demoted by rollback to version {tags.get(Tag.ROLLBACK_TO)} at {tags.get(Tag.ROLLBACK_AT)} "
            f"by {tags.get(Tag.ROLLBACK_BY)}: {tags.get(Tag.ROLLBACK_REASON)}"
        )
    elif rollback_id and tags.get(Tag.ROLLBACK_TO) == v.version:
        notes.append(
            f"restored as champion by rollback from version {tags.get(Tag.ROLLBACK_FROM)} at "
            f"{tags.get(Tag.ROLLBACK_AT)} by {tags.get(Tag.ROLLBACK_BY)}: {tags.get(Tag.ROLLBACK_REASON)}"
        )
    return HistoryEntry(
        kind="version",
        version=v.version,
        run_id=v.run_id,
        created_at=_iso(v.created_at),
        decision=decision,
        stage=stage,
        reason=reason,
        champion=CHAMPION in v.aliases,
        notes=notes,
        sort_key=v.created_at or 0.0,
    )


def attempt_entry(r: RejectedAttempt) -> HistoryEntry:
    """Pure; a rejected attempt (no version was registered)."""
    return HistoryEntry(
        kind="attempt",
        run_id=r.run_id,
        created_at=_iso(r.created_at),
        decision="rejected",
        stage=r.stage,
        reason=r.reason,
        sort_key=r.created_at,
    )


def release_history(
    *, registry: VersionReader, model_name: str, limit: int, deploy: DeployView | None = None
) -> list[HistoryEntry]:
    """Non-blocking reads (two registry queries); versions and rejected attempts, newest first, at most `limit`;
    `deploy` (the target's view) tells an undecided version that is the canary now from one never deployed."""
    entries = [_as_canary(version_entry(v), deploy) for v in registry.list_versions(model_name=model_name)]
    entries += [attempt_entry(r) for r in registry.list_rejections(model_name=model_name)]
    entries.sort(key=lambda e: e.sort_key, reverse=True)
    return entries[: max(limit, 0)]


def _as_canary(entry: HistoryEntry, deploy: DeployView | None) -> HistoryEntry:
    """Pure; an undecided version the target runs as its canary, said so (in flight, or left by a dead release)."""
    if deploy is None or entry.decision != "registered" or entry.version != deploy.canary_version:
        return entry
    reason = (
        "canary left by a release that is gone (its lease ran out): no traffic; `slipway rollback` removes it"
        if deploy.canary_unattended
        else f"canary in flight on the {deploy.target} target (weight {deploy.weight}%, shadow {deploy.shadow}%)"
    )
    return entry.model_copy(update={"stage": "canary", "reason": reason})


def render_history(entries: list[HistoryEntry], *, model_name: str) -> list[str]:
    """Pure; the plain-text lines of `slipway history`."""
    if not entries:
        return [f"model {model_name}: no releases recorded"]
    lines = []
    for e in entries:
        what = (
            f"version {e.version}"
            if e.kind == "version"
            else f"attempt (run {(e.run_id or '')[:12]}, no version)"
        )
        crown = " [champion]" if e.champion else ""
        lines.append(f"{e.created_at or 'unknown time'}  {what}{crown}: {e.decision} at {e.stage}")
        if e.reason:
            lines.append(f"    reason: {e.reason}")
        lines.extend(f"    note: {n}" for n in e.notes)
    return lines
