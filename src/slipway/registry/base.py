"""The model-registry interface. A version is only ever created complete (model + lineage tags)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slipway.names import Tag
from slipway.registry.links import RunLinks

RegistryClock = Callable[[], float]  # seconds since the epoch (time.time in production)


def utc_now_iso() -> str:
    """The current UTC time as an ISO 8601 string with seconds (what the timestamp tags hold)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def promotion_tags(
    *, existing: dict[str, str], reason: str, previous: str | None, now: str
) -> dict[str, str]:
    """Pure; the tags `promote` writes: decision, reason, previous champion, since when (first promotion kept)."""
    tags = {
        Tag.DECISION: "promoted",
        Tag.PROMOTION_REASON: reason[:500],
        Tag.PREVIOUS_CHAMPION: previous or "none",
        Tag.CHAMPION_SINCE: now,
        Tag.CHAMPION_VIA: "promotion",
    }
    if Tag.PROMOTED_AT not in existing:
        tags[Tag.PROMOTED_AT] = now
    return tags


def rejection_summary(documents: dict[str, Any], *, stage: str) -> str:
    """Pure; one line saying why an attempt was rejected, from the documents of its registration."""
    gate = documents.get("slipway/quality_gate.json")
    if stage == "quality_gate" and isinstance(gate, dict):
        reasons = [str(r) for r in gate.get("reasons") or []]
        failed = [r for r in reasons if r.startswith("FAIL")]
        return "; ".join(failed + reasons[-1:])[:500] or "rejected by the quality gate"
    for doc_name in ("slipway/optimization_error.json", "slipway/servability.json"):
        doc = documents.get(doc_name)
        if isinstance(doc, dict) and doc.get("cause"):
            return f"{stage}: {doc['cause']}"[:500]
    return f"rejected at stage {stage}"


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version as the pipeline sees it."""

    name: str
    version: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    created_at: float | None = None  # seconds since the epoch, when the version was registered
    description: str = ""  # the short text people read on the version's page (decision, why, links)

    @property
    def uri(self) -> str:
        """`models:/NAME/VERSION`, loadable by any MLflow client."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Registration:
    """Everything one registration writes: the model, how it was made, and why it passed."""

    model_name: str
    module: Any
    input_example: np.ndarray
    params: dict[str, Any]
    metrics: dict[str, float]
    tags: dict[str, str]
    release_key: str
    documents: dict[str, Any] = field(default_factory=dict)
    # extra files logged with the model (e.g. "onnx/model.fp32.onnx" -> local path); keys are artifact paths
    artifacts: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class RejectedAttempt:
    """A release attempt a gate rejected: logged as a run, no model version (see `record_rejection`)."""

    run_id: str
    stage: str
    created_at: float  # seconds since the epoch
    reason: str
    tags: dict[str, str] = field(default_factory=dict)


class VersionReader(ABC):
    """The read half of a registry: versions with tags and aliases, rejected attempts (what `slipway why/status/history` read)."""

    @abstractmethod
    def get_alias(self, *, model_name: str, alias: str) -> VersionInfo | None:
        """Non-blocking read; None when the model or the alias does not exist."""

    @abstractmethod
    def get_version(self, *, model_name: str, version: str) -> VersionInfo:
        """Non-blocking read; the version with its tags and aliases; RegistryError if it does not exist."""

    @abstractmethod
    def list_versions(self, *, model_name: str) -> list[VersionInfo]:
        """Non-blocking read; every version with its tags and aliases, newest first; [] for an unknown model."""

    @abstractmethod
    def list_rejections(self, *, model_name: str) -> list[RejectedAttempt]:
        """Non-blocking read; the attempts `record_rejection` logged for this model, newest first; [] if none."""


class ModelRegistry(VersionReader):
    """Where released models live; backends receive their clients."""

    @abstractmethod
    def find_release(self, *, model_name: str, release_key: str) -> VersionInfo | None:
        """Non-blocking read; the version registered for this release key, or None."""

    @abstractmethod
    def load_model(self, *, uri: str) -> Any:
        """Blocking; the model behind a model URI (or a local .onnx file), of a supported framework; ModelContractError
        if it is not loadable or of no supported flavor."""

    @abstractmethod
    def register(self, reg: Registration) -> VersionInfo:
        """Blocking; idempotent per release key; creates the version with all tags, then sets `challenger`."""

    @abstractmethod
    def record_rejection(self, reg: Registration, *, stage: str) -> str:
        """Blocking; logs the rejected attempt (params, metrics, reasons) as a run, registers nothing; run id."""

    @abstractmethod
    def annotate(
        self, *, model_name: str, version: str, tags: dict[str, str], documents: dict[str, Any]
    ) -> VersionInfo:
        """Blocking; idempotent (same values overwrite); adds tags, and documents (JSON-able, or bytes = a file) to its run; RegistryError if unknown."""

    @abstractmethod
    def fetch_artifact(self, *, model_name: str, version: str, path: str, dst: Path) -> Path:
        """Blocking; copies one artifact file of a version's run (a path under the run) to `dst / path`; RegistryError if absent."""

    @abstractmethod
    def promote(self, *, model_name: str, version: str, reason: str) -> VersionInfo:
        """Blocking; idempotent; moves `champion` to the version, records the previous champion and the reason
        on it, and takes `challenger` off it (it is decided)."""

    @abstractmethod
    def reject(self, *, model_name: str, version: str, stage: str, reason: str) -> VersionInfo:
        """Blocking; idempotent; tags the version rejected at `stage` with the reason and takes `challenger`
        off it; `champion` never moves."""

    @abstractmethod
    def describe(self, *, model_name: str, version: str, description: str) -> VersionInfo:
        """Blocking; idempotent; sets the version's description (Markdown on the MLflow page); RegistryError if unknown."""

    def run_links(self, *, run_id: str) -> RunLinks | None:
        """Non-blocking read; links to the run's page and files in a UI a teammate can open; None without one."""
        return None

    @abstractmethod
    def set_champion(self, *, model_name: str, version: str, tags: dict[str, str]) -> VersionInfo:
        """Blocking; idempotent; writes `tags` on the version, then moves `champion` to it (no promotion record); RegistryError if unknown."""
