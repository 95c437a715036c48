"""The first task of a release: read config, suite and batch, and hash every input."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from slipway.release.steps import ReleaseInputs, prepare, resolve_batch


@task(name="prepare-release", cache_policy=NO_CACHE, timeout_seconds=300)
def prepare_release(
    config_path: str, data: str | None, model_uri: str | None, commit: str | None = None
) -> ReleaseInputs:
    """Resolve (newest batch, URL) and hash the release's inputs; fails with the config/data error's message."""
    path = resolve_batch(config_path=Path(config_path), data=data)
    return prepare(config_path=Path(config_path), data_path=path, model_uri=model_uri, commit=commit)
