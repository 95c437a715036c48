"""Validation gate task."""

from __future__ import annotations

from prefect import task

from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence
from slipway.release.outcome import StageOutcome
from slipway.release.stages.validation import validate_batch
from slipway.settings import Settings
from slipway.validation.base import ValidationReport
from slipway.validation.factory import make_validator
from tasks.cache_keys import validation_key


@task(name="validate-batch", cache_key_fn=validation_key, persist_result=True, timeout_seconds=600)
def validate(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[ValidationReport]:
    """Great Expectations on the batch; cached on (data sha256, suite sha256)."""
    return validate_batch(ctx, validator=make_validator(Settings()))
