"""MLflow backend: runs hold params/metrics/documents, versions carry lineage tags, aliases mark roles."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from slipway.errors import ModelContractError, RegistryError
from slipway.names import CHALLENGER, CHAMPION, Tag
from slipway.registry.base import (
    ModelRegistry,
    Registration,
    RejectedAttempt,
    VersionInfo,
    promotion_tags,
    rejection_summary,
    utc_now_iso,
)
from slipway.registry.links import RunLinks


def _flat_params(params: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in params.items()}


def _log_as(art_path: str, local: Path) -> None:
    """Log `local` under the artifact path `art_path` (MLflow keeps the local file name, so stage a copy)."""
    import mlflow

    folder, _, fname = art_path.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / fname
        shutil.copyfile(local, staged)
        mlflow.log_artifact(str(staged), artifact_path=folder or None)


class MlflowRegistry(ModelRegistry):
    """Registry on an MLflow tracking server or SQLite store; receives its client."""

    def __init__(
        self,
        *,
        client: Any,
        tracking_uri: str,
        experiment: str,
        artifact_location: str | None,
        ui_url: str | None = None,
    ) -> None:
        self._client = client
        self._tracking_uri = tracking_uri
        self._experiment = experiment
        self._artifact_location = artifact_location
        self._ui_url = ui_url  # where people open the UI (links); None: no server to link to

    def _to_info(self, mv: Any) -> VersionInfo:
        created = getattr(mv, "creation_timestamp", None)
        return VersionInfo(
            name=mv.name,
            version=str(mv.version),
            run_id=mv.run_id,
            tags=dict(mv.tags or {}),
            aliases=tuple(sorted(mv.aliases or ())),
            created_at=created / 1000.0 if created else None,
            description=getattr(mv, "description", None) or "",
        )

    def _drop_challenger(self, model_name: str, version: str) -> None:
        """Takes `challenger` off `version` (a decided version is no challenger); no-op when it points elsewhere."""
        current = self.get_alias(model_name=model_name, alias=CHALLENGER)
        if current is not None and current.version == version:
            self._client.delete_registered_model_alias(model_name, CHALLENGER)

    def _experiment_id(self) -> str:
        exp = self._client.get_experiment_by_name(self._experiment)
        if exp is not None:
            return str(exp.experiment_id)
        return str(
            self._client.create_experiment(self._experiment, artifact_location=self._artifact_location)
        )

    def get_alias(self, *, model_name: str, alias: str) -> VersionInfo | None:
        """Non-blocking read; None when the model or the alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self._client.get_model_version_by_alias(model_name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise RegistryError(f"registry read of {model_name}@{alias} failed: {exc.message}") from None
        return self._to_info(mv)

    def get_version(self, *, model_name: str, version: str) -> VersionInfo:
        """Non-blocking read; the version with its tags and aliases; RegistryError if it does not exist."""
        return self._to_info(self._version(model_name, version))

    def find_release(self, *, model_name: str, release_key: str) -> VersionInfo | None:
        """Non-blocking read; the version registered for this release key, or None."""
        hits = self._client.search_model_versions(
            f"name='{model_name}' and tag.`{Tag.RELEASE_KEY}`='{release_key}'",
            order_by=["version_number ASC"],
            max_results=1,
        )
        if not hits:
            return None
        # search results may lack aliases; read the version itself
        return self._to_info(self._client.get_model_version(model_name, hits[0].version))

    def load_model(self, *, uri: str) -> Any:
        """Blocking; the model behind a model URI (or a local .onnx file), by its flavor's adapter; ModelContractError
        if it is not loadable or of no supported flavor."""
        import mlflow
        from mlflow.exceptions import MlflowException

        from slipway.frameworks.factory import adapter_for_flavors
        from slipway.frameworks.onnx_model import OnnxAdapter, is_onnx_file

        if is_onnx_file(uri):
            return OnnxAdapter().load(uri)
        mlflow.set_tracking_uri(self._tracking_uri)
        try:
            flavors = mlflow.models.get_model_info(uri).flavors
        except MlflowException as exc:
            raise ModelContractError(f"cannot load model {uri!r}: {exc.message}") from None
        except OSError as exc:
            raise ModelContractError(f"cannot load model {uri!r}: {exc}") from None
        return adapter_for_flavors(flavors, uri=uri).load(uri)

    def register(self, reg: Registration) -> VersionInfo:
        """Blocking; idempotent per release key; creates the version with all tags, then sets `challenger`."""
        existing = self.find_release(model_name=reg.model_name, release_key=reg.release_key)
        if existing is None:
            existing = self._create_version(reg)
        self._client.set_registered_model_alias(reg.model_name, CHALLENGER, existing.version)
        return self._to_info(self._client.get_model_version(reg.model_name, existing.version))

    def _log_run(
        self, reg: Registration, *, run_name: str, extra_tags: dict[str, str], model_required: bool = True
    ) -> tuple[str, Any]:
        import mlflow

        from slipway.frameworks.factory import adapter_for

        mlflow.set_tracking_uri(self._tracking_uri)
        with mlflow.start_run(experiment_id=self._experiment_id(), run_name=run_name) as run:
            mlflow.log_params(_flat_params(reg.params))
            mlflow.log_metrics(reg.metrics)
            mlflow.set_tags({**reg.tags, **extra_tags, Tag.RELEASE_KEY: reg.release_key})
            self._log_documents(run.info.run_id, reg.documents)
            for art_path, local in reg.artifacts.items():
                _log_as(art_path, Path(local))
            info = None
            if reg.module is not None:
                try:
                    info = adapter_for(reg.module).log(reg.module, input_example=reg.input_example)
                except ModelContractError as exc:
                    if model_required:
                        raise
                    mlflow.set_tag(Tag.MODEL_LOGGED, f"false: {exc}"[:500])
        return run.info.run_id, info

    def _create_version(self, reg: Registration) -> VersionInfo:
        import mlflow
        from mlflow.exceptions import MlflowException

        run_id, info = self._log_run(reg, run_name=f"release-{reg.release_key[:12]}", extra_tags={})
        try:
            mv = mlflow.register_model(
                info.model_uri, reg.model_name, tags={**reg.tags, Tag.RELEASE_KEY: reg.release_key}
            )
        except MlflowException as exc:
            raise RegistryError(
                f"registering {reg.model_name} from run {run_id} failed: {exc.message}"
            ) from None
        return VersionInfo(name=mv.name, version=str(mv.version), run_id=run_id, tags=dict(mv.tags or {}))

    def record_rejection(self, reg: Registration, *, stage: str) -> str:
        """Blocking; logs the rejected attempt (params, metrics, reasons) as a run, registers nothing; run id."""
        run_id, _ = self._log_run(
            reg,
            run_name=f"rejected-{stage}-{reg.release_key[:12]}",
            extra_tags={
                Tag.DECISION: "rejected",
                Tag.REJECTED_AT: stage,
                Tag.MODEL_NAME: reg.model_name,
                Tag.REJECTION_REASON: rejection_summary(reg.documents, stage=stage),
            },
            model_required=False,
        )
        return run_id

    def _version(self, model_name: str, version: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self._client.get_model_version(model_name, version)
        except MlflowException as exc:
            raise RegistryError(f"model version {model_name}/{version} not found: {exc.message}") from None

    def _log_documents(self, run_id: str, documents: dict[str, Any]) -> None:
        """Blocking; each document onto the run under its path: JSON-able as JSON, bytes as the file itself."""
        import tempfile

        for fname, doc in documents.items():
            if isinstance(
                doc, bytes
            ):  # a binary file (a PNG plot, the drift reference), stored under its path
                folder, _, name = fname.rpartition("/")
                with tempfile.TemporaryDirectory() as tmp:
                    local = Path(tmp) / name
                    local.write_bytes(doc)
                    self._client.log_artifact(run_id, str(local), folder or None)
            else:
                self._client.log_dict(run_id, doc, fname)

    def annotate(
        self, *, model_name: str, version: str, tags: dict[str, str], documents: dict[str, Any]
    ) -> VersionInfo:
        """Blocking; idempotent (same values overwrite); adds tags, and documents (JSON-able, or bytes = a file) to its run; RegistryError if unknown."""
        mv = self._version(model_name, version)
        for key, value in tags.items():
            self._client.set_model_version_tag(model_name, version, key, value)
        self._log_documents(mv.run_id, documents)
        return self._to_info(self._version(model_name, version))

    def fetch_artifact(self, *, model_name: str, version: str, path: str, dst: Path) -> Path:
        """Blocking; copies one artifact file of a version's run to `dst / path`; RegistryError if absent."""
        from mlflow.exceptions import MlflowException

        mv = self._version(model_name, version)
        out = dst / path
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            # artifact stores disagree on where a file lands (local: dst/NAME, S3: dst/PATH): download aside
            with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
                got = Path(self._client.download_artifacts(mv.run_id, path, tmp))
                if not got.is_file():
                    raise RegistryError(f"artifact {path!r} of {model_name}/{version} is not a file")
                got.replace(out)
        except (MlflowException, OSError) as exc:
            raise RegistryError(
                f"artifact {path!r} of {model_name}/{version} (run {mv.run_id}) cannot be fetched: {exc}"
            ) from None
        return out

    def promote(self, *, model_name: str, version: str, reason: str) -> VersionInfo:
        """Blocking; idempotent; moves `champion` to the version, records the previous champion and the reason on it."""
        target = self.get_version(model_name=model_name, version=version)
        previous = self.get_alias(model_name=model_name, alias=CHAMPION)
        self._drop_challenger(model_name, version)
        if previous is not None and previous.version == version:
            return self.get_version(
                model_name=model_name, version=version
            )  # keep the first promotion's record
        tags = promotion_tags(
            existing=target.tags,
            reason=reason,
            previous=previous.version if previous else None,
            now=utc_now_iso(),
        )
        for key, value in tags.items():
            self._client.set_model_version_tag(model_name, version, key, value)
        self._client.set_registered_model_alias(model_name, CHAMPION, version)
        return self.get_version(model_name=model_name, version=version)

    def reject(self, *, model_name: str, version: str, stage: str, reason: str) -> VersionInfo:
        """Blocking; idempotent; tags the version rejected at `stage` with the reason, drops `challenger`; `champion` never moves."""
        self.get_version(model_name=model_name, version=version)
        self._drop_challenger(model_name, version)
        tags = {
            Tag.DECISION: "rejected",
            Tag.REJECTED_AT: stage,
            Tag.REJECTION_REASON: reason[:500],
        }
        for key, value in tags.items():
            self._client.set_model_version_tag(model_name, version, key, value)
        return self.get_version(model_name=model_name, version=version)

    def describe(self, *, model_name: str, version: str, description: str) -> VersionInfo:
        """Blocking; idempotent; sets the version's description (Markdown on its MLflow page); RegistryError if unknown."""
        self._version(model_name, version)
        self._client.update_model_version(model_name, version, description=description)
        return self.get_version(model_name=model_name, version=version)

    def run_links(self, *, run_id: str) -> RunLinks | None:
        """Non-blocking read; links into the MLflow UI for the run's files; None without a UI URL (SQLite)."""
        if self._ui_url is None:
            return None
        run = self._client.get_run(run_id)
        return RunLinks(ui=self._ui_url, experiment_id=str(run.info.experiment_id), run_id=run_id)

    def list_versions(self, *, model_name: str) -> list[VersionInfo]:
        """Non-blocking read; every version with its tags and aliases, newest first; [] for an unknown model."""
        from mlflow.exceptions import MlflowException

        try:
            model = self._client.get_registered_model(model_name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise RegistryError(f"registry read of model {model_name} failed: {exc.message}") from None
        # search results carry no aliases: take them from the registered model (alias -> version)
        aliases: dict[str, list[str]] = {}
        for alias, version in (getattr(model, "aliases", None) or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        found: list[Any] = []
        token = None
        while True:
            page = self._client.search_model_versions(
                f"name='{model_name}'", order_by=["version_number DESC"], page_token=token
            )
            found.extend(page)
            token = getattr(page, "token", None)
            if not token:
                break
        return [
            VersionInfo(
                name=mv.name,
                version=str(mv.version),
                run_id=mv.run_id,
                tags=dict(mv.tags or {}),
                aliases=tuple(sorted(aliases.get(str(mv.version), []))),
                created_at=mv.creation_timestamp / 1000.0 if mv.creation_timestamp else None,
                description=getattr(mv, "description", None) or "",
            )
            for mv in sorted(found, key=lambda mv: -int(mv.version))
        ]

    def list_rejections(self, *, model_name: str) -> list[RejectedAttempt]:
        """Non-blocking read; the attempts `record_rejection` logged for this model, newest first; [] if none."""
        exp = self._client.get_experiment_by_name(self._experiment)
        if exp is None:
            return []
        runs = self._client.search_runs(
            [exp.experiment_id],
            filter_string="tags.`slipway.decision` = 'rejected'",
            order_by=["attributes.start_time DESC"],
            max_results=1000,
        )
        return [
            RejectedAttempt(
                run_id=run.info.run_id,
                stage=run.data.tags.get(Tag.REJECTED_AT, "unknown"),
                created_at=run.info.start_time / 1000.0,
                reason=run.data.tags.get(Tag.REJECTION_REASON)
                or f"rejected at stage {run.data.tags.get(Tag.REJECTED_AT, 'unknown')}",
                tags=dict(run.data.tags),
            )
            for run in runs
            # runs logged before the model-name tag existed belong to this config's experiment
            if run.data.tags.get(Tag.MODEL_NAME, model_name) == model_name
        ]

    def set_champion(self, *, model_name: str, version: str, tags: dict[str, str]) -> VersionInfo:
        """Blocking; idempotent; writes `tags` on the version, then moves `champion` to it (no promotion record); RegistryError if unknown."""
        self._version(model_name, version)
        for key, value in tags.items():
            self._client.set_model_version_tag(model_name, version, key, value)
        self._client.set_registered_model_alias(model_name, CHAMPION, version)
        return self.get_version(model_name=model_name, version=version)
