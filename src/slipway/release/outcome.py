"""What every release stage returns: one `StageOutcome`, whatever the stage.

A stage is a plain function `(ctx, evidence, ...clients) -> StageOutcome`. Its verdict says whether
the release goes on (passed, skipped) or stops here (rejected, error); its reasons are lines for the
release result; its tags, documents and files go onto the MLflow run of the release (the version,
or the rejected attempt); its `patch` fills the typed fields of the `ReleaseResult`; its artifacts
are what the Prefect UI shows for it. `value` is what later stages read (through the ledger's
`Evidence`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from slipway.names import Stage, Verdict
from slipway.release.result import ResultPatch

T = TypeVar("T")

ArtifactKind = Literal["markdown", "table", "link"]


@dataclass(frozen=True)
class Artifact:
    """One Prefect artifact a stage publishes: markdown text, table rows, or a link."""

    kind: ArtifactKind
    key: str
    body: str | list[dict[str, Any]]
    description: str
    link_text: str | None = None


@dataclass(frozen=True)
class StageOutcome(Generic[T]):
    """One stage's conclusion and everything it leaves behind (see the module docstring)."""

    stage: Stage
    verdict: Verdict
    value: T | None = None
    cause: str = ""  # one line: why the verdict is rejected or error (tagged on the version)
    reasons: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    documents: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, Path] = field(default_factory=dict)
    patch: ResultPatch = field(default_factory=ResultPatch)
    artifacts: tuple[Artifact, ...] = ()
    cached: bool = False

    @property
    def stops(self) -> bool:
        """Pure; True when the release ends at this stage (rejected or error)."""
        return self.verdict in ("rejected", "error")

    def with_cached(self, cached: bool) -> StageOutcome[T]:
        """Pure; the same outcome, marked as read from the result cache (or not)."""
        from dataclasses import replace

        return replace(self, cached=cached)


def markdown(key: str, body: str, description: str) -> Artifact:
    """Pure; a markdown artifact."""
    return Artifact(kind="markdown", key=key, body=body, description=description)


def table(key: str, rows: list[dict[str, Any]], description: str) -> Artifact:
    """Pure; a table artifact (one dict per row)."""
    return Artifact(kind="table", key=key, body=rows, description=description)


def link(key: str, url: str, text: str) -> Artifact:
    """Pure; a link artifact."""
    return Artifact(kind="link", key=key, body=url, description=text, link_text=text)
