"""What every operations command needs, built lazily: settings, the pipeline config, the registry, the target."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slipway.config import PipelineConfig
    from slipway.deploy.base import DeployTarget
    from slipway.registry.base import ModelRegistry, VersionReader
    from slipway.settings import Settings

AUDIT_FILE = "audit.jsonl"


@dataclass(frozen=True)
class OpsContext:
    """Settings and config of one command; the registry and target are made on request (MLflow is slow to import)."""

    settings: Settings
    cfg: PipelineConfig

    @property
    def model_name(self) -> str:
        """The registered model this config releases."""
        return self.cfg.registry.model_name

    @property
    def target_name(self) -> str:
        """The configured deploy target: local, kubernetes or none."""
        return self.cfg.deploy.target

    @property
    def audit_path(self) -> Path:
        """Where operations append their audit records (`<reports>/audit.jsonl`; not created here)."""
        return self.settings.reports_path() / AUDIT_FILE

    def registry(self) -> ModelRegistry:
        """Blocking (imports MLflow, ~1.5 s); the configured registry."""
        from slipway.registry.factory import make_registry

        return make_registry(self.settings, self.cfg)

    def reader(self) -> VersionReader:
        """Non-blocking; reads an MLflow SQLite store directly (milliseconds), any other store through MLflow."""
        from slipway.errors import RegistryError
        from slipway.registry.factory import tracking_uri
        from slipway.registry.sqlite_reader import SqliteVersionReader, sqlite_path

        path = sqlite_path(tracking_uri(self.settings))
        if path is not None and path.is_file():
            reader = SqliteVersionReader(db_path=path, experiment=self.cfg.registry.experiment)
            try:
                reader.list_versions(model_name=self.model_name)  # checks the schema once
            except RegistryError:
                return self.registry()  # a store this reader does not know: MLflow reads it
            return reader
        return self.registry()

    def target(self) -> DeployTarget | None:
        """The configured deploy target (kubernetes: from deploy.kubernetes); None for `none`; DeployError if unreachable."""
        from slipway.deploy.factory import make_target

        return make_target(self.cfg, settings=self.settings)


def open_context(*, config_path: Path, settings: Settings | None = None) -> OpsContext:
    """Blocking (reads the config file); ConfigError naming the file or key when it is missing or invalid."""
    from slipway.config import load_config
    from slipway.settings import Settings

    return OpsContext(settings=settings or Settings(), cfg=load_config(config_path))
