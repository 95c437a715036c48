"""The fake target's synthetic windows: split by weight, faults on the arm that carries them, stale on demand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from slipway.deploy.base import ArmWindow, ModelRelease
from slipway.deploy.fake import FakeTarget, FakeWorld


def deployed(canary_env: dict[str, str] | None = None, *, weight: int = 20, shadow: int = 0) -> FakeTarget:
    target = FakeTarget(FakeWorld(), requests_per_window=1000, seed=1)
    target.deploy_stable(ModelRelease("m", "1", Path("/b1")), ready_timeout_s=1)
    assert target.start_canary(ModelRelease("m", "2", Path("/b2"), env=canary_env or {}), ready_timeout_s=1)
    target.set_traffic(weight=weight, shadow=shadow)
    return target


def test_windows_split_by_weight_and_advance_the_clock() -> None:
    target = deployed()
    first, second = target.observe(weight=20), target.observe(weight=20)
    assert first.stable.requests + first.canary.requests == 1000
    assert 150 <= first.canary.requests <= 250
    assert (first.end_s, second.start_s) == (target.window_s, target.window_s)
    assert not first.stale and first.canary.errors == 0


@pytest.mark.parametrize(
    ("env", "check"),
    [
        ({"SLIPWAY_SERVE_FAULT_ERROR_RATE": "1"}, lambda a: a.errors == a.requests),
        ({"SLIPWAY_SERVE_FAULT_OUTPUT": "nan"}, lambda a: a.nonfinite == a.requests and not a.scores),
        ({"SLIPWAY_SERVE_FAULT_OUTPUT": "constant"}, lambda a: set(a.scores) == {0.5}),
        ({"SLIPWAY_SERVE_FAULT_LATENCY_MS": "500"}, lambda a: min(a.latencies_ms) > 500),
    ],
)
def test_faults_land_on_the_canary(env: dict[str, str], check: Callable[[ArmWindow], bool]) -> None:
    obs = deployed(env).observe(weight=20)
    assert check(obs.canary)
    assert obs.stable.errors == obs.stable.nonfinite == 0 and max(obs.stable.latencies_ms) < 500


def test_flip_shows_in_shadow_pairs() -> None:
    obs = deployed({"SLIPWAY_SERVE_FAULT_OUTPUT": "flip"}, weight=0, shadow=50).observe(weight=0)
    pairs = np.asarray(obs.shadow_pairs)
    assert 400 <= len(pairs) <= 600
    np.testing.assert_allclose(pairs[:, 1], 1 - pairs[:, 0])


def test_metrics_down_and_wrong_weight_are_stale() -> None:
    target = deployed()
    assert target.observe(weight=50).stale
    target.world.metrics_down = True
    obs = target.observe(weight=20)
    assert obs.stale and obs.source_error and obs.canary.requests == 0
