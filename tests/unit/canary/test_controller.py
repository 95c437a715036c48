"""`run_canary` and `reconcile` on the seeded simulator: the fault catalogue's bounds on a few seeds per class."""

from __future__ import annotations

import json

import pytest

from slipway.canary.clock import FakeClock, RealClock
from slipway.canary.controller import reconcile, run_canary
from slipway.canary.decision import Decision, Outcome
from slipway.canary.simulate import (
    CLASSES,
    FAULT_CLASSES,
    FakeSimTarget,
    Fault,
    SimParams,
    make_fault,
    run_one,
    simulate,
)
from slipway.config import CanaryConfig
from slipway.deploy.base import ModelRelease, Observation
from slipway.errors import DeployError

POLICY = CanaryConfig()
SEEDS = range(3)
FIRST = POLICY.steps[0]
# peak canary weight allowed per fault class (the catalogue: F2 never above the first step)
PEAK = {"F1": 0, "F2": FIRST, "F3": FIRST, "F4": FIRST, "F5": FIRST, "F10": FIRST}


def _target(fault: Fault, *, seed: int = 0) -> tuple[FakeSimTarget, FakeClock]:
    import numpy as np

    clock = FakeClock()
    target = FakeSimTarget(clock=clock, fault=fault, params=SimParams(), rng=np.random.default_rng(seed))
    target.deploy_stable(ModelRelease("m", "1"), ready_timeout_s=1.0)
    return target, clock


@pytest.mark.parametrize("cls", FAULT_CLASSES)
def test_every_fault_rolls_back_within_its_bounds(cls: str) -> None:
    for seed in SEEDS:
        result = run_one(cls, seed=seed, policy=POLICY)
        assert result.result == "rolled_back", (cls, seed, result.reason)
        assert result.peak_weight <= PEAK.get(cls, 50), (cls, seed, result.peak_weight)
        assert result.restored and result.post_stable_share == 1.0


@pytest.mark.parametrize("cls", ["aa", "retrain", "F11"])
def test_healthy_canaries_and_a_blip_on_both_arms_promote(cls: str) -> None:
    for seed in SEEDS:
        result = run_one(cls, seed=seed, policy=POLICY)
        assert result.result == "promoted", (cls, seed, result.reason)
        assert result.peak_weight == 100 and result.restored


def test_catalogue_time_bounds_on_a_few_seeds() -> None:
    ready = POLICY.readiness_deadline_s / POLICY.interval_s
    for seed in SEEDS:
        assert run_one("F1", seed=seed, policy=POLICY).intervals <= ready + 1
        assert run_one("F2", seed=seed, policy=POLICY).windows <= 2
        assert run_one("F3", seed=seed, policy=POLICY).windows <= 2
        assert run_one("F5", seed=seed, policy=POLICY).windows <= 3


def test_f1_never_sends_traffic_to_the_canary() -> None:
    outcome, target = simulate("F1", seed=0, policy=POLICY)
    assert outcome.result == "rolled_back" and outcome.peak_weight == 0
    assert not any(c.startswith("set_traffic") for c in target.calls)
    assert target.calls[-1] == "rollback"


def test_f8_bad_config_rolls_back_to_the_stable_with_its_old_env() -> None:
    outcome, target = simulate("F8", seed=1, policy=POLICY)
    state = target.state()
    assert outcome.result == "rolled_back" and state.canary is None
    assert state.stable is not None and state.stable.env == {} and state.weight == 0


def test_the_simulation_is_deterministic_per_seed_and_never_sleeps() -> None:
    import time

    started = time.perf_counter()
    a = run_one("F6", seed=5, policy=POLICY)
    assert a == run_one("F6", seed=5, policy=POLICY)
    assert time.perf_counter() - started < 10  # simulated minutes, real seconds


def test_the_controller_calls_the_target_in_order_and_reports_each_decision() -> None:
    seen: list[Decision] = []
    target, clock = _target(make_fault("aa", __import__("numpy").random.default_rng(0), SimParams()))
    outcome = run_canary(
        target, target, release=ModelRelease("m", "2"), policy=POLICY, clock=clock, on_decision=seen.append
    )
    assert outcome.result == "promoted" and seen == outcome.decisions
    weights = [c for c in target.calls if c.startswith("set_traffic")]
    assert weights == ["set_traffic 0/50", "set_traffic 5/0", "set_traffic 25/0", "set_traffic 50/0"]
    assert target.calls[-1] == "promote" and target.state().stable == ModelRelease("m", "2")
    assert outcome.canary_version == "2" and outcome.stable_version == "1"
    assert len(outcome.timeline) == len(outcome.decisions)
    doc = json.loads(json.dumps(outcome.to_dict(), allow_nan=False))
    assert doc["result"] == "promoted" and doc["policy"]["steps"] == POLICY.steps


class _BrokenMetrics:
    """A metrics source whose backend is down: every call raises."""

    def observe(self, *, weight: int) -> Observation:
        raise ConnectionError("metrics backend unreachable")


def test_a_metrics_source_that_raises_is_stale_and_rolls_back_at_the_stale_limit() -> None:
    target, clock = _target(Fault("aa", score_mode="identity"))
    outcome = run_canary(
        target,
        _BrokenMetrics(),  # type: ignore[arg-type]
        release=ModelRelease("m", "2"),
        policy=POLICY,
        clock=clock,
    )
    assert outcome.result == "rolled_back" and "fail closed" in outcome.reason
    assert len(outcome.decisions) == POLICY.stale_limit
    assert all(d.outcome is not Outcome.PROMOTE_STEP for d in outcome.decisions)
    assert target.state().canary is None


def test_a_deploy_call_that_fails_ends_as_error_with_a_rollback(monkeypatch: pytest.MonkeyPatch) -> None:
    target, clock = _target(Fault("aa", score_mode="identity"))

    def refuse(*, weight: int, shadow: int) -> None:
        raise DeployError("router refused the weight")

    monkeypatch.setattr(target, "set_traffic", refuse)
    outcome = run_canary(target, target, release=ModelRelease("m", "2"), policy=POLICY, clock=clock)
    assert outcome.result == "rolled_back" and outcome.decisions[-1].outcome is Outcome.ERROR
    assert "router refused" in outcome.reason and target.calls[-1] == "rollback"


def test_an_unexpected_exception_rolls_back_and_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    target, clock = _target(Fault("aa", score_mode="identity"))

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("slipway.canary.controller.decide", boom)
    with pytest.raises(KeyboardInterrupt):
        run_canary(target, target, release=ModelRelease("m", "2"), policy=POLICY, clock=clock)
    assert target.calls[-1] == "rollback" and target.state().canary is None


def test_reconcile_rolls_back_a_canary_left_by_a_killed_run_and_is_idempotent() -> None:
    target, _ = _target(Fault("aa", score_mode="identity"))
    target.start_canary(ModelRelease("m", "2"), ready_timeout_s=60.0)
    target.set_traffic(weight=25, shadow=0)  # ... and then the orchestrator was killed
    assert reconcile(target) is True
    state = target.state()
    assert state.canary is None and state.weight == 0 and state.stable == ModelRelease("m", "1")
    assert reconcile(target) is False and target.calls.count("rollback") == 1


def test_clocks() -> None:
    fake = FakeClock(5.0)
    fake.sleep(2.5)
    fake.sleep(-1.0)
    assert fake.now() == 7.5
    real = RealClock()
    before = real.now()
    real.sleep(0)
    assert real.now() >= before


def test_every_class_has_a_fault_model() -> None:
    import numpy as np

    for cls in CLASSES:
        assert make_fault(cls, np.random.default_rng(0), SimParams()).name == cls
    with pytest.raises(ValueError, match="unknown simulation class"):
        make_fault("F99", np.random.default_rng(0), SimParams())


def test_start_canary_giving_up_early_still_rolls_back_for_readiness(monkeypatch: pytest.MonkeyPatch) -> None:
    target, clock = _target(Fault("aa", score_mode="identity"))
    monkeypatch.setattr(target, "start_canary", lambda release, *, ready_timeout_s: False)
    outcome = run_canary(target, target, release=ModelRelease("m", "2"), policy=POLICY, clock=clock)
    assert outcome.result == "rolled_back" and "Ready" in outcome.reason
    assert outcome.decisions[-1].outcome is Outcome.ROLLBACK and outcome.peak_weight == 0
