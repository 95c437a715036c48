"""Thin task around the retrain plan: which batch a scheduled run releases, or why it skips."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from slipway.config import load_config
from slipway.registry.factory import make_registry
from slipway.release.retrain import RetrainPlan, plan_retrain
from slipway.settings import Settings


@task(name="plan-retrain", cache_policy=NO_CACHE, timeout_seconds=600)
def plan(config_path: str) -> RetrainPlan:
    """The newest batch(es) and whether the champion already learned from them; an artifact says which."""
    cfg = load_config(Path(config_path))
    result = plan_retrain(config_path=Path(config_path), registry=make_registry(Settings(), cfg))
    verdict = f"skipped: {result.skip_reason}" if result.skip_reason else "releasing it"
    create_markdown_artifact(
        key="retrain-plan",
        markdown=f"# Retrain\n\n* batch: `{result.data_path}` (sha256 `{result.data_sha256[:12]}`)\n* {verdict}",
        description="Scheduled retraining",
    )
    return result
