"""The first task of a release: read config, suite and batch once, and hash every input."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from slipway.release.context import ReleaseContext, prepare


@task(name="prepare-release", cache_policy=NO_CACHE, timeout_seconds=300)
def prepare_release(
    config_path: str, data: str | None, model_uri: str | None, commit: str | None, canary_fault: str | None
) -> ReleaseContext:
    """The release's frozen inputs; fails with the config/data error's message."""
    return prepare(
        config_path=Path(config_path),
        data=data,
        model_uri=model_uri,
        commit=commit,
        canary_fault=canary_fault,
    )
