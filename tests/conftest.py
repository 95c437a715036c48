"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from slipway.config import DataConfig
from slipway.data.reference import Reference, load_reference
from tests.support.image_tools_lock import image_tools_if_marked


@pytest.fixture(scope="session")
def ref() -> Reference:
    """The breast-cancer reference split with the default config (read-only: do not mutate its frames)."""
    return load_reference(DataConfig())


@pytest.fixture(scope="session")
def holdout_x(ref: Reference) -> np.ndarray:
    """The breast-cancer holdout's features, float32 [N, 30] (read-only)."""
    return ref.holdout_xy()[0]


_TIER_SECONDS: dict[str, float] = {}
_TIER_TESTS: dict[str, set[str]] = {}


def _tier(nodeid: str) -> str:
    parts = nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Adds each test's setup, call and teardown time to its tier (the folder under tests/)."""
    tier = _tier(report.nodeid)
    _TIER_SECONDS[tier] = _TIER_SECONDS.get(tier, 0.0) + report.duration
    _TIER_TESTS.setdefault(tier, set()).add(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per tier: how many tests ran and how long they took (`make test` shows where time goes)."""
    if not _TIER_SECONDS:
        return
    terminalreporter.section("time per test tier")
    for tier in sorted(_TIER_SECONDS, key=lambda t: -_TIER_SECONDS[t]):
        terminalreporter.write_line(
            f"tier {tier}: {len(_TIER_TESTS[tier])} tests, {_TIER_SECONDS[tier]:.1f} s"
        )


_TIER_MARKERS = {"integration": "integration", "e2e": "e2e", "gpu": "gpu"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test's folder is its tier: tests under integration/, e2e/ and gpu/ carry that marker."""
    for item in items:
        marker = _TIER_MARKERS.get(_tier(item.nodeid))
        if marker is not None:
            item.add_marker(marker)


@pytest.fixture(scope="module", autouse=True)
def _image_tools_module(request: pytest.FixtureRequest) -> Iterator[None]:
    """A module marked `image_tools` holds the cross-process image-tools lock through its module fixtures."""
    with image_tools_if_marked(request.node):
        yield


@pytest.fixture(autouse=True)
def _image_tools_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked `image_tools` holds it for its own run (re-entrant inside a marked module)."""
    with image_tools_if_marked(request.node):
        yield
