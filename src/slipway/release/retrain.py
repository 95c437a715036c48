"""Scheduled retraining: pick the newest batch(es), skip when the champion already learned from them."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from slipway.config import load_config
from slipway.hashing import file_sha256
from slipway.names import CHAMPION, Tag
from slipway.registry.base import ModelRegistry
from slipway.release.context import resolve_batch


class RetrainPlan(BaseModel):
    """What one scheduled run will release, or why it does nothing."""

    data_path: str = Field(description="The batch file (or the combined newest batches) to release.")
    data_sha256: str = Field(description="Its content hash.")
    skip_reason: str | None = Field(default=None, description="Why no release runs (None: release it).")


def plan_retrain(*, config_path: Path, registry: ModelRegistry) -> RetrainPlan:
    """Blocking (reads the batch folder and the registry); UsageError when no batch exists."""
    cfg = load_config(config_path)
    path = resolve_batch(config=cfg, data=None)
    sha = file_sha256(path)
    champion = registry.get_alias(model_name=cfg.registry.model_name, alias=CHAMPION)
    skip = None
    if champion is not None and champion.tags.get(Tag.DATA_SHA256) == sha:
        skip = (
            f"up to date: champion {champion.name} version {champion.version} was trained on this batch "
            f"({path.name}, sha256 {sha[:12]}); drop a new batch into {cfg.batches_path()}"
        )
    return RetrainPlan(data_path=str(path), data_sha256=sha, skip_reason=skip)
