"""Builds the configured registry backend from settings (the one place that creates MLflow clients)."""

from __future__ import annotations

import os

from slipway.config import PipelineConfig
from slipway.registry.base import ModelRegistry
from slipway.settings import Settings


def tracking_uri(settings: Settings) -> str:
    """The MLflow tracking URI these settings resolve to."""
    return settings.resolved_tracking_uri(env_uri=os.environ.get("MLFLOW_TRACKING_URI"))


def make_registry(settings: Settings, cfg: PipelineConfig) -> ModelRegistry:
    """An MlflowRegistry on the resolved tracking URI (SQLite under the state folder by default)."""
    from mlflow import MlflowClient

    from slipway.registry.links import ui_base
    from slipway.registry.mlflow_backend import MlflowRegistry

    uri = tracking_uri(settings)
    if uri.startswith("sqlite:"):
        settings.home_path().mkdir(parents=True, exist_ok=True)
    return MlflowRegistry(
        client=MlflowClient(tracking_uri=uri, registry_uri=uri),
        tracking_uri=uri,
        experiment=cfg.registry.experiment,
        artifact_location=settings.resolved_artifact_location(tracking_uri=uri),
        ui_url=ui_base(tracking_uri=uri, explicit=settings.mlflow_ui_url),
    )
