"""Fixtures shared by every test tier."""

from __future__ import annotations

import pytest

from slipway.config import DataConfig
from slipway.data.reference import Reference, load_reference


@pytest.fixture(scope="session")
def ref() -> Reference:
    """The breast-cancer reference split with the default config (read-only: do not mutate its frames)."""
    return load_reference(DataConfig())
