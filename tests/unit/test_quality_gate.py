"""The quality gate: floors on a first release, floors plus allowed regression against a champion."""

from __future__ import annotations

import math

import pytest

from slipway.config import QualityGateConfig
from slipway.gate.quality import GateDecision, MetricCheck, decide

CFG = QualityGateConfig(
    thresholds={"accuracy": 0.90, "roc_auc": 0.95},
    max_regression={"accuracy": 0.02, "roc_auc": 0.01},
)
GOOD = {"accuracy": 0.95, "roc_auc": 0.99, "f1": 0.96}
CHAMPION = {"accuracy": 0.96, "roc_auc": 0.995, "f1": 0.97}


def _first(challenger: dict[str, float], cfg: QualityGateConfig = CFG) -> GateDecision:
    return decide(challenger=challenger, champion=None, champion_version=None, cfg=cfg)


def _vs(challenger: dict[str, float], champion: dict[str, float] = CHAMPION) -> GateDecision:
    return decide(challenger=challenger, champion=champion, champion_version="3", cfg=CFG)


def _check(decision: GateDecision, metric: str, kind: str) -> MetricCheck:
    (check,) = [c for c in decision.checks if c.metric == metric and c.kind == kind]
    return check


# -- first release -------------------------------------------------------------------------------


def test_first_release_uses_thresholds_only_and_says_so() -> None:
    d = _first(GOOD)
    assert d.passed is True
    assert d.first_release is True
    assert d.champion_version is None
    assert "first release" in d.reasons[0]
    assert "no champion" in d.reasons[0]
    assert {c.kind for c in d.checks} == {"threshold"}
    assert sorted(c.metric for c in d.checks) == ["accuracy", "roc_auc"]
    assert d.reasons[-1] == "gate passed"


def test_first_release_check_carries_value_limit_and_no_champion() -> None:
    d = _first(GOOD)
    acc = _check(d, "accuracy", "threshold")
    assert (acc.value, acc.limit, acc.champion, acc.passed) == (0.95, 0.90, None, True)
    auc = _check(d, "roc_auc", "threshold")
    assert (auc.value, auc.limit, auc.champion, auc.passed) == (0.99, 0.95, None, True)
    # each check has its own human line, between the header and the verdict
    assert d.reasons[1:-1] == [c.text() for c in d.checks]
    assert d.reasons[1] == "ok: accuracy 0.9500 >= floor 0.9000"


def test_value_exactly_at_the_floor_passes() -> None:
    assert _first({"accuracy": 0.90, "roc_auc": 0.95}).passed is True


def test_failing_a_floor_rejects_and_names_the_metric() -> None:
    d = _first({"accuracy": 0.85, "roc_auc": 0.99})
    assert d.passed is False
    acc = _check(d, "accuracy", "threshold")
    assert acc.passed is False
    assert _check(d, "roc_auc", "threshold").passed is True
    assert acc.text().startswith("FAIL: accuracy 0.8500")
    assert "FAIL: accuracy" in "\n".join(d.reasons)
    assert {c.metric for c in d.checks if not c.passed} == {"accuracy"}


def test_metrics_without_a_floor_are_not_checked() -> None:
    # f1 is terrible but has no threshold configured: it must not decide anything
    d = _first({"accuracy": 0.95, "roc_auc": 0.99, "f1": 0.0})
    assert d.passed is True
    assert "f1" not in {c.metric for c in d.checks}


# -- against a champion ----------------------------------------------------------------------------


def test_champion_path_header_names_the_champion_version() -> None:
    d = _vs(GOOD)
    assert d.first_release is False
    assert d.champion_version == "3"
    assert "champion version 3" in d.reasons[0]
    assert "first release" not in d.reasons[0]
    kinds = sorted((c.metric, c.kind) for c in d.checks)
    assert kinds == [
        ("accuracy", "threshold"),
        ("accuracy", "vs_champion"),
        ("roc_auc", "threshold"),
        ("roc_auc", "vs_champion"),
    ]


def test_regression_beyond_the_margin_rejects() -> None:
    # accuracy 0.93 vs champion 0.96 - 0.02 = 0.94: above the floor but regressed too far
    d = _vs({"accuracy": 0.93, "roc_auc": 0.99})
    assert d.passed is False
    assert _check(d, "accuracy", "threshold").passed is True
    vs = _check(d, "accuracy", "vs_champion")
    assert vs.passed is False
    assert vs.champion == pytest.approx(0.96)
    assert vs.limit == pytest.approx(0.94)
    assert vs.value == pytest.approx(0.93)
    assert {c.metric for c in d.checks if not c.passed} == {"accuracy"}


def test_regression_within_the_margin_passes() -> None:
    # 0.945 >= 0.96 - 0.02 and 0.986 >= 0.995 - 0.01
    d = _vs({"accuracy": 0.945, "roc_auc": 0.986})
    assert d.passed is True, d.reasons
    assert all(c.passed for c in d.checks)


def test_regression_exactly_at_the_margin_passes() -> None:
    d = _vs({"accuracy": 0.94, "roc_auc": 0.985})
    assert d.passed is True, d.reasons


def test_better_than_champion_passes() -> None:
    d = _vs({"accuracy": 0.99, "roc_auc": 0.999})
    assert d.passed is True
    assert d.reasons[-1] == "gate passed"


def test_floor_still_applies_against_a_weak_champion() -> None:
    # champion itself is below the floor: matching it is not enough
    weak = {"accuracy": 0.80, "roc_auc": 0.90}
    d = _vs({"accuracy": 0.85, "roc_auc": 0.99}, champion=weak)
    assert d.passed is False
    assert _check(d, "accuracy", "vs_champion").passed is True
    assert _check(d, "accuracy", "threshold").passed is False


def test_every_check_carries_value_limit_and_champion() -> None:
    d = _vs({"accuracy": 0.95, "roc_auc": 0.99})
    for c in d.checks:
        assert isinstance(c.value, float) and isinstance(c.limit, float)
        if c.kind == "threshold":
            assert c.champion is None
            assert c.limit == CFG.thresholds[c.metric]
        else:
            assert c.champion == CHAMPION[c.metric]
            assert c.limit == pytest.approx(CHAMPION[c.metric] - CFG.max_regression[c.metric])
            assert f"champion {c.champion:.4f}" in c.text()
    # and the decision is serialisable as the document registration logs
    dumped = d.model_dump(mode="json")
    assert {"metric", "kind", "value", "limit", "champion", "passed"} <= set(dumped["checks"][0])


# -- fail closed -----------------------------------------------------------------------------------


def test_missing_metric_fails_closed() -> None:
    d = _first({"accuracy": 0.99})
    assert d.passed is False
    auc = _check(d, "roc_auc", "threshold")
    assert auc.passed is False
    assert math.isnan(auc.value)
    assert "roc_auc" in d.reasons[-1]


@pytest.mark.parametrize("metric", ["accuracy", "roc_auc"])
def test_nan_metric_fails_closed(metric: str) -> None:
    d = _first({**GOOD, metric: math.nan})
    assert d.passed is False
    assert _check(d, metric, "threshold").passed is False
    assert {c.metric for c in d.checks if not c.passed} == {metric}


def test_nan_metric_fails_closed_against_a_champion() -> None:
    d = _vs({**GOOD, "roc_auc": math.nan})
    assert d.passed is False
    assert _check(d, "roc_auc", "vs_champion").passed is False


def test_champion_missing_a_metric_fails_closed() -> None:
    # a champion whose roc_auc cannot be measured gives no limit to compare with: do not pass blindly
    d = _vs(GOOD, champion={"accuracy": 0.96})
    assert d.passed is False
    assert _check(d, "roc_auc", "vs_champion").passed is False


def test_label_flipped_model_is_rejected() -> None:
    flipped = {"accuracy": 0.07, "roc_auc": 0.003, "f1": 0.09}
    first = _first(flipped)
    assert first.passed is False
    assert {c.metric for c in first.checks if not c.passed} == {"accuracy", "roc_auc"}
    vs = _vs(flipped)
    assert vs.passed is False
    assert not any(c.passed for c in vs.checks)
