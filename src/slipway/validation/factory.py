"""Builds the validator the settings call for."""

from __future__ import annotations

from slipway.settings import Settings
from slipway.validation.base import DataValidator


def make_validator(settings: Settings) -> DataValidator:
    """The Great Expectations validator, with its project and Data Docs under the state folder."""
    from slipway.validation.gx import GreatExpectationsValidator

    return GreatExpectationsValidator(project_dir=settings.gx_path(), docs_dir=settings.data_docs_path())
