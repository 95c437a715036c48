"""The `canary:` section: defaults, validation, the repo's slipway.yaml, derived values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from slipway.canary.policy import live_weights, thresholds
from slipway.config import CanaryConfig, load_config

REPO = Path(__file__).resolve().parents[3]


def test_the_repo_config_carries_the_default_policy() -> None:
    assert load_config(REPO / "slipway.yaml").canary == CanaryConfig()


def test_live_weights_exclude_the_promotion() -> None:
    assert live_weights(CanaryConfig()) == [5, 25, 50]
    assert live_weights(CanaryConfig(steps=[10, 30])) == [10, 30]
    assert thresholds(CanaryConfig())["min_samples_per_arm"] == CanaryConfig().min_samples_per_arm


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"steps": [25, 5]}, "strictly increasing"),
        ({"steps": [100]}, "below 100"),
        ({"steps": [0, 50]}, "1..100"),
        ({"steps": []}, "1..100"),
        ({"deadline_s": 30}, "deadline_s"),
        ({"alpha": 0}, "greater than 0"),
        ({"bogus": 1}, "Extra inputs"),
    ],
)
def test_bad_policies_are_rejected_by_name(update: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CanaryConfig.model_validate(update)
