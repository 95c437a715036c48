"""Rollback task: the audited rollback of the serving model on the configured registry and deploy target."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from slipway.ops.context import open_context
from slipway.ops.rollback import RollbackResult, render_rollback, run_rollback


@task(name="rollback-serving", cache_policy=NO_CACHE, retries=0, timeout_seconds=900)
def rollback_serving(config_path: str, to_version: str | None, reason: str, actor: str) -> RollbackResult:
    """Redeploy a former champion, then move `champion` (idempotent; refusals raise, never retried)."""
    result = run_rollback(
        open_context(config_path=Path(config_path)), to_version=to_version, reason=reason, actor=actor
    )
    create_markdown_artifact(
        key="rollback",
        markdown="# Rollback\n\n" + "\n".join(f"* {line.strip()}" for line in render_rollback(result)),
        description="Audited rollback of the serving model",
    )
    return result
