"""What a killed release leaves, cleaned up by the next release of the same environment once it holds the
release lease: a version with no decision (marked an interrupted error, so every version carries a
decision) and a canary nothing drives (rolled back, even when the new release ends before its own canary)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slipway.names import TAG_VALUE_LIMIT, Tag
from slipway.registry.base import ModelRegistry, utc_now_iso

if TYPE_CHECKING:
    from slipway.deploy.base import DeployTarget


@dataclass(frozen=True)
class Recovery:
    """What `recover` found and did, and what it could not look at (each with why)."""

    interrupted: list[str] = field(default_factory=list)  # versions marked interrupted
    removed_canary: str | None = None  # the version of the orphan canary rolled back
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Pure; one log line per finding."""
        found = []
        if self.interrupted:
            found.append(
                f"marked version(s) {', '.join(self.interrupted)} interrupted: their release ended without a decision"
            )
        if self.removed_canary is not None:
            found.append(f"rolled back canary version {self.removed_canary}: the release that ran it is gone")
        return found + [f"could not check: {p}" for p in self.problems]


def recover(
    *,
    registry: Callable[[], ModelRegistry],
    target: Callable[[], DeployTarget | None],
    model_name: str,
    lease_key: str,
    found_by: str,
    release_key: str,
) -> Recovery:
    """Blocking (a registry listing, a target read, a rollback if needed); idempotent; never raises: call it while
    holding the lease `lease_key`. Marks the lease's undecided versions (`mark_interrupted`) and rolls back any
    canary the target runs (with the lease held, nothing drives it). A backend that fails is named in `problems`."""
    from slipway.canary.controller import reconcile

    interrupted: list[str] = []
    removed: str | None = None
    problems = []
    try:
        interrupted = mark_interrupted(
            registry(), model_name=model_name, lease_key=lease_key, found_by=found_by, release_key=release_key
        )
    except Exception as exc:  # any client's error: the next release looks again
        problems.append(f"registry: {type(exc).__name__}: {exc}")
    try:
        deployed = target()
        if deployed is not None:
            try:
                canary = deployed.state().canary
                if reconcile(deployed):
                    removed = canary.model_version if canary else "(traffic only)"
            finally:
                deployed.close()
    except Exception as exc:  # the canary stage reconciles again, and fails there if the target is away
        problems.append(f"deploy target: {type(exc).__name__}: {exc}")
    return Recovery(interrupted=interrupted, removed_canary=removed, problems=problems)


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
