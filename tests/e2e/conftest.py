"""Shared e2e fixtures: one real Prefect server on loopback for every module that runs many CLI releases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.prefect_server import prefect_server


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Prefect API URL (started once, ~20 s; stopped after the session)."""
    with prefect_server(tmp_path_factory.mktemp("prefect")) as url:
        yield url
