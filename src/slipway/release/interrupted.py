"""Versions whose release is gone: a release killed (or whose machine was lost) after registration leaves a
version with no decision. The next release of the same environment, once it holds the release lease,
marks each such version of that lease as an interrupted error, so every version carries a decision."""

from __future__ import annotations

from slipway.names import TAG_VALUE_LIMIT, Tag
from slipway.registry.base import ModelRegistry, utc_now_iso


def interrupted_tags(*, lease_key: str, found_by: str, at: str) -> dict[str, str]:
    """Pure; the tags that mark a version whose release ended without a decision."""
    reason = (
        f"interrupted: the release that registered this version (under release lease {lease_key}) ended "
        f"without a decision: killed, or its machine lost; found by {found_by}"
    )
    return {
        Tag.DECISION: "error",
        Tag.ERROR_REASON: reason[:TAG_VALUE_LIMIT],
        Tag.INTERRUPTED: f"{at} by {found_by}"[:TAG_VALUE_LIMIT],
    }


def mark_interrupted(
    registry: ModelRegistry, *, model_name: str, lease_key: str, found_by: str, release_key: str
) -> list[str]:
    """Blocking (one listing, one write per version marked); idempotent; call it only while holding the lease
    `lease_key`: then any version registered under that lease without a decision belongs to a release that is
    gone. Marks each one (decision `error`, `slipway.interrupted`) and returns their numbers, oldest first. A
    version of `release_key` (the release running now: a re-run gets that version back and decides it) is left."""
    orphans = [
        v
        for v in registry.list_versions(model_name=model_name)
        if v.tags.get(Tag.RELEASE_LEASE) == lease_key
        and not v.tags.get(Tag.DECISION)
        and v.tags.get(Tag.RELEASE_KEY) != release_key
    ]
    tags = interrupted_tags(lease_key=lease_key, found_by=found_by, at=utc_now_iso())
    for version in orphans:
        registry.annotate(model_name=model_name, version=version.version, tags=tags, documents={})
    return sorted((v.version for v in orphans), key=int)
