"""The model-registry interface. A version is only ever created complete (model + lineage tags)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHALLENGER = "challenger"
CHAMPION = "champion"
RELEASE_KEY_TAG = "slipway.release_key"


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version as the pipeline sees it."""

    name: str
    version: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

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


class ModelRegistry(ABC):
    """Where released models live; backends receive their clients."""

    @abstractmethod
    def get_alias(self, *, model_name: str, alias: str) -> VersionInfo | None:
        """Non-blocking read; None when the model or the alias does not exist."""

    @abstractmethod
    def get_version(self, *, model_name: str, version: str) -> VersionInfo:
        """Non-blocking read; the version with its tags and aliases; RegistryError if it does not exist."""

    @abstractmethod
    def find_release(self, *, model_name: str, release_key: str) -> VersionInfo | None:
        """Non-blocking read; the version registered for this release key, or None."""

    @abstractmethod
    def load_model(self, *, uri: str) -> Any:
        """Blocking; the torch module behind a model URI; ModelContractError if it is not loadable."""

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
        """Blocking; idempotent; moves `champion` to the version, records the previous champion and the reason on it."""

    @abstractmethod
    def reject(self, *, model_name: str, version: str, stage: str, reason: str) -> VersionInfo:
        """Blocking; idempotent; tags the version rejected at `stage` with the reason; `champion` never moves."""
