"""Cache keys from the content hashes of a stage's real inputs (never from paths or timestamps)."""

from __future__ import annotations

import hashlib
from typing import Any

from prefect.context import TaskRunContext

from slipway.release.steps import ReleaseInputs
from slipway.settings import Settings


def _inputs(parameters: dict[str, Any]) -> ReleaseInputs:
    inputs = parameters["inputs"]
    if not isinstance(inputs, ReleaseInputs):
        raise TypeError(f"expected ReleaseInputs, got {type(inputs).__name__}")
    return inputs


def validation_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Same data bytes and same suite content (and the same Data Docs site) -> same validation result."""
    i = _inputs(parameters)
    site = hashlib.sha256(str(Settings().data_docs_path()).encode()).hexdigest()[:12]
    return f"slipway-validate-{i.data_sha256}-{i.suite_sha256}-{site}"


def training_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Same data bytes, training config and training code -> same model."""
    i = _inputs(parameters)
    return f"slipway-train-{i.data_sha256}-{i.training_config_sha256}-{i.training_code_sha256}"
