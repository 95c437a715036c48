"""The canary policy (`CanaryConfig`, the `canary:` section of slipway.yaml) and the values derived from it.

The model itself lives in `slipway.config` with every other section; this module re-exports it and
answers the questions the decision and the controller ask of it.
"""

from __future__ import annotations

from typing import Any

from slipway.config import CanaryConfig

PROMOTED_WEIGHT = 100

__all__ = ["PROMOTED_WEIGHT", "CanaryConfig", "live_weights", "thresholds"]


def live_weights(policy: CanaryConfig) -> list[int]:
    """Pure; the weights analysed with live traffic, in order (every step below 100; 100 is the promotion)."""
    return [w for w in policy.steps if w < PROMOTED_WEIGHT]


def thresholds(policy: CanaryConfig) -> dict[str, Any]:
    """Pure; the policy as a flat JSON-safe dict, recorded next to every decision."""
    return policy.model_dump(mode="json")
