"""Builds the configured feature store (one place for the CLI, the release stages and the serving bundle)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

from slipway.config import PipelineConfig
from slipway.errors import ConfigError
from slipway.settings import Settings

if TYPE_CHECKING:
    from slipway.features.base import FeatureStore

ONLINE_STORE_ENV: Final = "SLIPWAY_FEATURES_ONLINE_STORE"


def online_store_url(cfg: PipelineConfig) -> str | None:
    """Non-blocking; the online-store override: $SLIPWAY_FEATURES_ONLINE_STORE, else `features.online_store`."""
    return os.environ.get(ONLINE_STORE_ENV) or cfg.features.online_store


def make_feature_store(cfg: PipelineConfig, *, settings: Settings) -> FeatureStore | None:
    """Non-blocking (Feast is imported on first use of the store); None for `features.store: none`. ConfigError
    when the repository folder does not exist; FeatureStoreError for an unusable online-store URL."""
    features = cfg.features
    if features.store == "none":
        return None
    from slipway.features.feast_repo import online_store_override
    from slipway.features.feast_store import FeastFeatureStore

    assert features.repo is not None and features.service is not None  # the config validates both
    repo = cfg.resolve(features.repo)
    if not repo.is_dir():
        raise ConfigError(f"features.repo: {repo} is not a folder")
    url = online_store_url(cfg)
    override = online_store_override(url, base_dir=cfg.base_dir) if url else None
    return FeastFeatureStore(
        repo=repo, service=features.service, state_dir=settings.home / "features", online_store=override
    )
