"""In-memory registry with the same contract as the MLflow backend (for fast unit tests)."""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any

from slipway.errors import ModelContractError, RegistryError
from slipway.names import CHALLENGER, CHAMPION, Tag
from slipway.registry.base import (
    ModelRegistry,
    Registration,
    RegistryClock,
    RejectedAttempt,
    VersionInfo,
    promotion_tags,
    rejection_summary,
    utc_now_iso,
)


class InMemoryRegistry(ModelRegistry):
    """Keeps versions, aliases and modules in dicts; `models:/NAME/V` and `models:/NAME@ALIAS` resolve."""

    def __init__(self, *, clock: RegistryClock = time.time) -> None:
        self._clock = clock
        self._versions: dict[str, list[VersionInfo]] = {}
        self._modules: dict[tuple[str, str], Any] = {}
        self._aliases: dict[str, dict[str, str]] = {}
        self._descriptions: dict[tuple[str, str], str] = {}
        self.runs: dict[str, dict[str, Any]] = {}

    def _info(self, name: str, version: str) -> VersionInfo:
        base = next(v for v in self._versions[name] if v.version == version)
        aliases = tuple(sorted(a for a, v in self._aliases.get(name, {}).items() if v == version))
        return VersionInfo(
            name=name,
            version=version,
            run_id=base.run_id,
            tags=dict(base.tags),
            aliases=aliases,
            created_at=base.created_at,
            description=self._descriptions.get((name, version), ""),
        )

    def _drop_challenger(self, model_name: str, version: str) -> None:
        aliases = self._aliases.get(model_name, {})
        if aliases.get(CHALLENGER) == version:
            del aliases[CHALLENGER]

    def set_alias(self, *, model_name: str, alias: str, version: str) -> None:
        """Point an alias at a version (tests use it to crown a champion)."""
        self._aliases.setdefault(model_name, {})[alias] = version

    def get_alias(self, *, model_name: str, alias: str) -> VersionInfo | None:
        """Non-blocking read; None when the model or the alias does not exist."""
        version = self._aliases.get(model_name, {}).get(alias)
        return None if version is None else self._info(model_name, version)

    def get_version(self, *, model_name: str, version: str) -> VersionInfo:
        """Non-blocking read; the version with its tags and aliases; RegistryError if it does not exist."""
        self._known(model_name, version)
        return self._info(model_name, version)

    def find_release(self, *, model_name: str, release_key: str) -> VersionInfo | None:
        """Non-blocking read; the version registered for this release key, or None."""
        for v in self._versions.get(model_name, []):
            if v.tags.get(Tag.RELEASE_KEY) == release_key:
                return self._info(model_name, v.version)
        return None

    def load_model(self, *, uri: str) -> Any:
        """Blocking; the model behind a model URI (or a local .onnx file); ModelContractError if it is not loadable."""
        from slipway.frameworks.onnx_model import OnnxAdapter, is_onnx_file

        if is_onnx_file(uri):
            return OnnxAdapter().load(uri)
        if not uri.startswith("models:/"):
            raise ModelContractError(f"cannot load {uri!r}: the in-memory registry knows only models:/ URIs")
        ref = uri.removeprefix("models:/")
        name, sep, alias = ref.partition("@")
        version = self._aliases.get(name, {}).get(alias) if sep else None
        if not sep:
            name, _, version = ref.partition("/")
        module = self._modules.get((name, version or ""))
        if module is None:
            raise ModelContractError(f"cannot load {uri!r}: no such model version")
        return copy.deepcopy(module)

    def register(self, reg: Registration) -> VersionInfo:
        """Blocking; idempotent per release key; creates the version with all tags, then sets `challenger`."""
        existing = self.find_release(model_name=reg.model_name, release_key=reg.release_key)
        if existing is None:
            versions = self._versions.setdefault(reg.model_name, [])
            version = str(len(versions) + 1)
            run_id = uuid.uuid4().hex
            self.runs[run_id] = {
                "params": reg.params,
                "metrics": reg.metrics,
                "documents": copy.deepcopy(reg.documents),
                "artifacts": {k: Path(v).read_bytes() for k, v in reg.artifacts.items()},
            }
            tags = {**reg.tags, Tag.RELEASE_KEY: reg.release_key}
            versions.append(
                VersionInfo(
                    name=reg.model_name, version=version, run_id=run_id, tags=tags, created_at=self._clock()
                )
            )
            self._modules[(reg.model_name, version)] = copy.deepcopy(reg.module)
        else:
            version = existing.version
        self.set_alias(model_name=reg.model_name, alias=CHALLENGER, version=version)
        return self._info(reg.model_name, version)

    def record_rejection(self, reg: Registration, *, stage: str) -> str:
        """Blocking; logs the rejected attempt (params, metrics, reasons) as a run, registers nothing; run id."""
        run_id = uuid.uuid4().hex
        self.runs[run_id] = {
            "params": reg.params,
            "metrics": reg.metrics,
            "documents": reg.documents,
            "stage": stage,
            "model_name": reg.model_name,
            "created_at": self._clock(),
            "tags": {
                **reg.tags,
                Tag.RELEASE_KEY: reg.release_key,
                Tag.DECISION: "rejected",
                Tag.REJECTED_AT: stage,
                Tag.MODEL_NAME: reg.model_name,
                Tag.REJECTION_REASON: rejection_summary(reg.documents, stage=stage),
            },
        }
        return run_id

    def _known(self, model_name: str, version: str) -> VersionInfo:
        for v in self._versions.get(model_name, []):
            if v.version == version:
                return v
        raise RegistryError(f"model version {model_name}/{version} not found")

    def annotate(
        self, *, model_name: str, version: str, tags: dict[str, str], documents: dict[str, Any]
    ) -> VersionInfo:
        """Blocking; idempotent (same values overwrite); adds tags, and documents (JSON-able, or bytes = a file) to its run; RegistryError if unknown."""
        base = self._known(model_name, version)
        versions = self._versions[model_name]
        versions[versions.index(base)] = VersionInfo(
            name=base.name,
            version=base.version,
            run_id=base.run_id,
            tags={**base.tags, **tags},
            created_at=base.created_at,
        )
        if base.run_id is not None:
            self.runs[base.run_id]["documents"].update(copy.deepcopy(documents))
        return self._info(model_name, version)

    def fetch_artifact(self, *, model_name: str, version: str, path: str, dst: Path) -> Path:
        """Blocking; copies one artifact file of a version's run (a path under the run) to `dst / path`; RegistryError if absent."""
        base = self._known(model_name, version)
        run = self.runs.get(base.run_id or "", {})
        blob = run.get("artifacts", {}).get(path)
        if blob is None and path in run.get("documents", {}):  # documents are run files too, as in MLflow
            doc = run["documents"][path]
            blob = doc if isinstance(doc, bytes) else json.dumps(doc, indent=2, default=str).encode()
        if blob is None:
            raise RegistryError(f"artifact {path!r} of {model_name}/{version} not found")
        out = dst / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(blob)
        return out

    def promote(self, *, model_name: str, version: str, reason: str) -> VersionInfo:
        """Blocking; idempotent; moves `champion` to the version, records the previous champion and the reason on it."""
        self._known(model_name, version)
        previous = self.get_alias(model_name=model_name, alias=CHAMPION)
        self._drop_challenger(model_name, version)
        if previous is not None and previous.version == version:
            return self._info(model_name, version)
        tags = promotion_tags(
            existing=self._known(model_name, version).tags,
            reason=reason,
            previous=previous.version if previous else None,
            now=utc_now_iso(),
        )
        self.annotate(model_name=model_name, version=version, tags=tags, documents={})
        self.set_alias(model_name=model_name, alias=CHAMPION, version=version)
        return self._info(model_name, version)

    def reject(self, *, model_name: str, version: str, stage: str, reason: str) -> VersionInfo:
        """Blocking; idempotent; tags the version rejected at `stage` with the reason, drops `challenger`; `champion` never moves."""
        self._known(model_name, version)
        self._drop_challenger(model_name, version)
        return self.annotate(
            model_name=model_name,
            version=version,
            tags={
                Tag.DECISION: "rejected",
                Tag.REJECTED_AT: stage,
                Tag.REJECTION_REASON: reason[:500],
            },
            documents={},
        )

    def describe(self, *, model_name: str, version: str, description: str) -> VersionInfo:
        """Blocking; idempotent; sets the version's description; RegistryError if unknown."""
        self._known(model_name, version)
        self._descriptions[(model_name, version)] = description
        return self._info(model_name, version)

    def list_versions(self, *, model_name: str) -> list[VersionInfo]:
        """Non-blocking read; every version with its tags and aliases, newest first; [] for an unknown model."""
        versions = self._versions.get(model_name, [])
        return [self._info(model_name, v.version) for v in sorted(versions, key=lambda v: -int(v.version))]

    def list_rejections(self, *, model_name: str) -> list[RejectedAttempt]:
        """Non-blocking read; the attempts `record_rejection` logged for this model, newest first; [] if none."""
        found = [
            RejectedAttempt(
                run_id=run_id,
                stage=str(run["stage"]),
                created_at=float(run["created_at"]),
                reason=run["tags"][Tag.REJECTION_REASON],
                tags=dict(run["tags"]),
            )
            for run_id, run in self.runs.items()
            if "stage" in run and run["model_name"] == model_name
        ]
        return sorted(found, key=lambda r: -r.created_at)

    def set_champion(self, *, model_name: str, version: str, tags: dict[str, str]) -> VersionInfo:
        """Blocking; idempotent; writes `tags` on the version, then moves `champion` to it (no promotion record); RegistryError if unknown."""
        self.annotate(model_name=model_name, version=version, tags=tags, documents={})
        self.set_alias(model_name=model_name, alias=CHAMPION, version=version)
        return self._info(model_name, version)
