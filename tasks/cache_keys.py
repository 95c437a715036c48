"""Cache keys from the content hashes of a stage's real inputs (never from paths or timestamps)."""

from __future__ import annotations

import hashlib
from typing import Any

from prefect.context import TaskRunContext

from slipway.release.context import ReleaseContext
from slipway.settings import Settings


def _ctx(parameters: dict[str, Any]) -> ReleaseContext:
    ctx = parameters["ctx"]
    if not isinstance(ctx, ReleaseContext):
        raise TypeError(f"expected ReleaseContext, got {type(ctx).__name__}")
    return ctx


def validation_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Same data bytes and same suite content (and the same Data Docs site) -> same validation result."""
    ctx = _ctx(parameters)
    site = hashlib.sha256(str(Settings().data_docs_path()).encode()).hexdigest()[:12]
    return f"slipway-validate-{ctx.data_sha256}-{ctx.suite_sha256}-{site}"


def training_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    """Same data bytes, training config and training code -> same model; None (no caching) for --model-uri."""
    ctx = _ctx(parameters)
    if ctx.model_uri:
        return None
    return f"slipway-train-{ctx.data_sha256}-{ctx.training_config_sha256}-{ctx.training_code_sha256}"
