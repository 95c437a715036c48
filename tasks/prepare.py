"""The first task of a release: read config, suite and batch, and hash every input."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from slipway.release.steps import ReleaseInputs, prepare


@task(name="prepare-release", cache_policy=NO_CACHE, timeout_seconds=300)
def prepare_release(config_path: str, data: str, model_uri: str | None) -> ReleaseInputs:
    """Resolve and hash the release's inputs; fails with the config/data error's message."""
    return prepare(config_path=Path(config_path), data_path=Path(data), model_uri=model_uri)
