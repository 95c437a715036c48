"""`decide`, rule by rule, on hand-built windows (no simulator)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from slipway.canary.checks import CheckStatus
from slipway.canary.decision import ControllerState, Decision, Outcome, Phase, decide, initial_state
from slipway.config import CanaryConfig
from slipway.deploy.base import ArmWindow, Observation

from .helpers import live, pairs, small_policy, window

Make = Callable[[int, int], Observation]


def drive(make: Make, *, state: ControllerState, policy: CanaryConfig, windows: int = 40) -> list[Decision]:
    """Feeds windows one by one like the controller; stops at a terminal or final decision."""
    history: list[Observation] = []
    decisions: list[Decision] = []
    for i in range(windows):
        history.append(make(i, state.weight))
        state = replace(state, elapsed_s=(i + 1) * policy.interval_s)
        d = decide(history, state=state, policy=policy)
        decisions.append(d)
        if d.outcome.terminal or d.final:
            break
        state = d.state
    return decisions


def healthy(i: int, weight: int) -> Observation:
    n_c = 2 * weight
    return window(i, weight=weight, n_c=n_c, n_s=200 - n_c)


# -- promotion needs evidence ---------------------------------------------------------------------------


def test_promotes_at_the_last_step_only_with_min_samples_per_arm() -> None:
    policy = small_policy(min_samples_per_arm=400)
    state = live(policy, step=2, weight=50)
    two = [window(i, weight=50, n_c=100, n_s=100) for i in range(2)]
    short = decide(two, state=state, policy=policy)
    assert short.outcome is Outcome.HOLD and "200 canary / 200 stable" in short.reason
    four = [window(i, weight=50, n_c=100, n_s=100) for i in range(4)]
    done = decide(four, state=state, policy=policy)
    assert done.outcome is Outcome.PROMOTE_STEP and done.final and done.next_weight == 100
    assert all(c.status is CheckStatus.PASSED for c in done.checks), done.checks


def test_holds_while_the_step_has_too_few_canary_requests_then_raises_the_weight() -> None:
    policy = small_policy()
    state = live(policy, step=0, weight=5)
    first = decide([window(0, weight=5, n_c=5, n_s=95)], state=state, policy=policy)
    assert first.outcome is Outcome.HOLD and "5 of 20 canary requests" in first.reason
    history = [window(i, weight=5, n_c=10, n_s=190) for i in range(3)]
    raised = decide(history, state=state, policy=policy)
    assert raised.outcome is Outcome.PROMOTE_STEP and not raised.final
    assert raised.next_weight == 25 and raised.state.step == 1 and raised.state.phase_start == 3


def test_whole_path_promotes_healthy_windows() -> None:
    policy = small_policy()
    decisions = drive(healthy, state=initial_state(policy, canary_ready=True), policy=policy)
    assert decisions[-1].final, decisions[-1].reason
    weights = [d.weight for d in decisions]
    assert weights == sorted(weights) and set(weights) == {5, 25, 50}


# -- failures ---------------------------------------------------------------------------------------------


def test_never_raises_the_weight_while_a_check_fails() -> None:
    policy = small_policy(decisive_alpha=1e-300)  # nothing is decisive: the threshold (2) applies
    state = live(policy, step=0, weight=5)

    def slow(i: int, weight: int) -> Observation:
        return window(i, weight=weight, n_c=30, n_s=170, canary={"latency_factor": 2.0})

    decisions = drive(slow, state=state, policy=policy)
    assert [d.outcome for d in decisions] == [Outcome.HOLD, Outcome.ROLLBACK]
    assert decisions[0].next_weight == 5 and decisions[0].check("latency").failed  # type: ignore[union-attr]
    assert "latency" in decisions[-1].reason


def test_p99_twice_the_stables_rolls_back_within_two_windows() -> None:
    policy = small_policy()

    def slow(i: int, weight: int) -> Observation:
        return window(i, weight=weight, n_c=10, n_s=190, canary={"latency_factor": 2.0})

    decisions = drive(slow, state=live(policy, step=0, weight=5), policy=policy)
    assert decisions[-1].outcome is Outcome.ROLLBACK and len(decisions) <= 2
    assert all(d.outcome is not Outcome.PROMOTE_STEP for d in decisions)


def test_nan_outputs_roll_back_at_the_first_window() -> None:
    policy = small_policy()
    obs = window(0, weight=5, n_c=10, n_s=190, canary={"nonfinite": 1})
    d = decide([obs], state=live(policy, step=0, weight=5), policy=policy)
    assert d.outcome is Outcome.ROLLBACK and d.check("nonfinite").failed  # type: ignore[union-attr]


def test_nan_inside_the_scores_list_counts_too() -> None:
    policy = small_policy()
    obs = window(0, weight=5, n_c=10, n_s=190)
    obs.canary.scores[0] = float("nan")
    d = decide([obs], state=live(policy, step=0, weight=5), policy=policy)
    assert d.outcome is Outcome.ROLLBACK and d.check("nonfinite").failed  # type: ignore[union-attr]


def test_constant_predictions_roll_back() -> None:
    policy = small_policy()
    obs = window(0, weight=25, n_c=40, n_s=160, canary={"scores": "constant"})
    d = decide([obs], state=live(policy, step=1, weight=25), policy=policy)
    assert d.outcome is Outcome.ROLLBACK and d.check("collapse").failed  # type: ignore[union-attr]


def test_a_prediction_shift_rolls_back() -> None:
    policy = small_policy()
    history = [window(i, weight=50, n_c=100, n_s=100, canary={"scores": "shifted"}) for i in range(2)]
    d = decide(history, state=live(policy, step=2, weight=50), policy=policy)
    assert d.outcome is Outcome.ROLLBACK
    shift = d.check("shift")
    assert shift is not None and shift.failed and shift.statistic is not None and shift.statistic > 0.1


def test_canary_only_errors_roll_back_at_once() -> None:
    policy = small_policy()
    obs = window(0, weight=5, n_c=10, n_s=190, canary={"errors": 6})
    d = decide([obs], state=live(policy, step=0, weight=5), policy=policy)
    assert d.outcome is Outcome.ROLLBACK and d.check("error_rate").failed  # type: ignore[union-attr]


def test_a_canary_whose_online_store_lacks_entities_rolls_back_at_the_failure_threshold() -> None:
    policy = small_policy()

    def emptier(
        i: int, weight: int
    ) -> Observation:  # 40% of the canary's entities missing, 5% of the stable's
        n_c = 2 * weight
        return window(
            i,
            weight=weight,
            n_c=n_c,
            n_s=200 - n_c,
            canary={"entities": n_c, "missing": n_c * 2 // 5},
            stable={"entities": 200 - n_c, "missing": (200 - n_c) // 20},
        )

    decisions = drive(emptier, state=live(policy, step=0, weight=5), policy=policy)
    last = decisions[-1]
    assert last.outcome is Outcome.ROLLBACK and len(decisions) <= 3  # one window of 10 is short of evidence
    assert all(d.weight == 5 for d in decisions)  # never raised while it fails
    check = last.check("missing_entities")
    assert check is not None and check.failed and "missing_entities" in last.reason
    assert last.window is not None and last.window.canary_missing_entities == 4
    assert last.window.canary_entities == 10 and last.window.stable_missing_entities == 9


def test_impossible_missing_entity_counts_are_an_error() -> None:
    policy = small_policy()
    obs = window(0, weight=5, n_c=10, n_s=190, canary={"entities": 2, "missing": 3})
    d = decide([obs], state=live(policy, step=0, weight=5), policy=policy)
    assert d.outcome is Outcome.ERROR and "3 missing of 2 entities" in d.reason


def test_zero_versus_one_error_is_not_a_failure() -> None:
    policy = small_policy()
    obs = window(0, weight=5, n_c=10, n_s=190, canary={"errors": 1})
    d = decide([obs], state=live(policy, step=0, weight=5), policy=policy)
    check = d.check("error_rate")
    assert check is not None and check.status is CheckStatus.PASSED and d.outcome is Outcome.HOLD


def test_routing_far_below_the_weight_fails_the_share_check() -> None:
    policy = small_policy()
    history = [window(i, weight=25, n_c=2, n_s=198) for i in range(2)]
    d = decide(history, state=live(policy, step=1, weight=25), policy=policy)
    share = d.check("traffic_share")
    assert share is not None and share.failed and d.outcome is not Outcome.PROMOTE_STEP


def routed(obs: Observation, low: float, high: float) -> Observation:
    """The window as a replica-ratio source reports it: the canary's share of Ready pods at its two ends."""
    return replace(obs, routed_share=(low, high))


def test_a_stable_the_hpa_grew_lowers_the_expected_share_and_is_no_routing_failure() -> None:
    policy = small_policy()
    # weight 25 on 3 + 1 pods, then the HPA grows the stable to 9: the canary draws a tenth, as its pods should
    history = [routed(window(i, weight=25, n_c=30, n_s=270), 0.1, 0.25 if i == 0 else 0.1) for i in range(4)]
    d = decide(history, state=live(policy, step=1, weight=25), policy=policy)
    share = d.check("traffic_share")
    assert share is not None and share.status is CheckStatus.PASSED, share
    assert d.outcome is Outcome.PROMOTE_STEP and d.next_weight == 50, d.reason
    # The same windows judged against the bare weight are a routing failure (what the HPA did before)
    bare = [replace(o, routed_share=None) for o in history]
    assert decide(bare, state=live(policy, step=1, weight=25), policy=policy).outcome is Outcome.ROLLBACK


def test_a_canary_starved_while_its_pods_should_draw_traffic_rolls_back_and_never_promotes() -> None:
    policy = small_policy()
    history = [routed(window(i, weight=25, n_c=0, n_s=200), 0.2, 0.25) for i in range(2)]
    d = decide(history, state=live(policy, step=1, weight=25), policy=policy)
    share = d.check("traffic_share")
    assert share is not None and share.failed and d.outcome is Outcome.ROLLBACK, d.reason


def test_a_split_that_has_not_followed_the_hpa_yet_holds_the_weight() -> None:
    policy = small_policy()
    # the canary's pods draw their share (1 of 11), but that is far below 25%: hold, do not raise or roll back
    history = [routed(window(i, weight=25, n_c=18, n_s=182), 1 / 11, 1 / 11) for i in range(3)]
    d = decide(history, state=live(policy, step=1, weight=25), policy=policy)
    share = d.check("traffic_share")
    assert share is not None and share.status is CheckStatus.INSUFFICIENT, share
    assert d.outcome is Outcome.HOLD and "traffic_share" in d.reason


def test_canary_metrics_identical_to_the_stables_roll_back() -> None:
    policy = small_policy()
    obs = window(0, weight=50, n_c=100, n_s=100)
    obs.canary = obs.stable
    d = decide([obs], state=live(policy, step=2, weight=50), policy=policy)
    assert d.outcome is Outcome.ROLLBACK and "reads the stable" in d.reason


# -- the environment ------------------------------------------------------------------------------------


def test_a_blip_on_both_arms_holds_and_does_not_roll_back() -> None:
    policy = small_policy()
    state = live(policy, step=1, weight=25)
    history = [window(i, weight=25, n_c=50, n_s=150) for i in range(2)]
    history.append(window(2, weight=25, n_c=50, n_s=150, canary={"errors": 20}, stable={"errors": 60}))
    d = decide(history, state=state, policy=policy)
    assert d.outcome is Outcome.HOLD and "environment off" in d.reason
    assert d.state.failure_streak == 0 and d.state.hard_streak == 0
    history.append(window(3, weight=25, n_c=50, n_s=150))
    after = decide(history, state=d.state, policy=policy)
    assert after.outcome is Outcome.PROMOTE_STEP and after.next_weight == 50


def test_a_smaller_blip_on_both_arms_is_judged_against_the_stable_and_passes() -> None:
    policy = small_policy()
    history = [window(i, weight=50, n_c=100, n_s=100) for i in range(3)]
    history.append(window(3, weight=50, n_c=100, n_s=100, canary={"errors": 15}, stable={"errors": 15}))
    d = decide(history, state=live(policy, step=2, weight=50), policy=policy)
    check = d.check("error_rate")
    assert check is not None and check.status is CheckStatus.PASSED and d.outcome is not Outcome.ROLLBACK


# -- missing metrics, deadlines, readiness, bad input ---------------------------------------------------


def test_stale_windows_hold_then_roll_back_at_the_limit() -> None:
    policy = small_policy(stale_limit=3)
    state = live(policy, step=0, weight=5)
    history = [window(0, weight=5, n_c=10, n_s=190)]
    d = decide(history, state=state, policy=policy)
    outcomes = []
    for i in range(1, 4):
        history.append(window(i, weight=5, n_c=0, n_s=0, stale=True))
        d = decide(history, state=d.state, policy=policy)
        outcomes.append(d.outcome)
    assert outcomes == [Outcome.HOLD, Outcome.HOLD, Outcome.ROLLBACK]
    assert "fail closed" in d.reason


def test_an_empty_or_repeated_window_counts_as_stale() -> None:
    policy = small_policy()
    state = live(policy, step=0, weight=5)
    first = window(0, weight=5, n_c=10, n_s=190)
    repeated = decide([first, first], state=state, policy=policy)
    assert repeated.outcome is Outcome.HOLD and repeated.state.stale_streak == 1
    empty = Observation(10.0, 20.0, 5, ArmWindow(), ArmWindow())
    assert decide([first, empty], state=state, policy=policy).state.stale_streak == 1


def test_a_source_error_is_stale_and_never_promotes() -> None:
    policy = small_policy()
    obs = window(0, weight=50, n_c=400, n_s=400)
    obs.source_error = "prometheus: connection refused"
    d = decide([obs], state=live(policy, step=2, weight=50), policy=policy)
    assert d.outcome is Outcome.HOLD and "connection refused" in d.reason


def test_the_deadline_rolls_back_even_when_the_evidence_would_promote() -> None:
    policy = small_policy()
    four = [window(i, weight=50, n_c=100, n_s=100) for i in range(4)]
    state = live(policy, step=2, weight=50, elapsed_s=policy.deadline_s)
    d = decide(four, state=state, policy=policy)
    assert d.outcome is Outcome.ROLLBACK and "deadline" in d.reason


def test_never_ready_by_the_readiness_deadline_rolls_back() -> None:
    policy = small_policy()
    waiting = initial_state(policy, canary_ready=False, elapsed_s=10.0)
    assert decide([], state=waiting, policy=policy).outcome is Outcome.HOLD
    late = replace(waiting, elapsed_s=policy.readiness_deadline_s)
    d = decide([], state=late, policy=policy)
    assert d.outcome is Outcome.ROLLBACK and "Ready" in d.reason


def test_a_canary_that_drops_out_of_ready_while_live_rolls_back() -> None:
    policy = small_policy()
    state = live(policy, step=1, weight=25, canary_ready=False)
    d = decide([window(0, weight=25, n_c=50, n_s=150)], state=state, policy=policy)
    assert d.outcome is Outcome.ROLLBACK


def test_contradictory_inputs_are_an_error() -> None:
    policy = small_policy()
    state = live(policy, step=0, weight=5)
    wrong_weight = decide([window(0, weight=25, n_c=50, n_s=150)], state=state, policy=policy)
    assert wrong_weight.outcome is Outcome.ERROR and wrong_weight.outcome.terminal
    bad = window(0, weight=5, n_c=10, n_s=190)
    bad.canary.errors = 11
    assert decide([bad], state=state, policy=policy).outcome is Outcome.ERROR
    assert decide([], state=state, policy=policy).outcome is Outcome.ERROR


# -- shadow -----------------------------------------------------------------------------------------------


def _shadow(p: list[tuple[float, float]], *, n_s: int = 200) -> Observation:
    return window(0, weight=0, n_c=0, n_s=n_s, pairs=p)


def test_good_shadow_pairs_start_the_first_live_step() -> None:
    policy = small_policy(shadow_intervals=1, shadow_percent=50)
    state = initial_state(policy, canary_ready=True)
    assert state.phase is Phase.SHADOW and state.shadow == 50
    d = decide([_shadow(pairs(100))], state=state, policy=policy)
    assert d.outcome is Outcome.PROMOTE_STEP and d.next_weight == 5 and d.state.phase is Phase.LIVE
    assert d.state.live_start == 1 and d.state.shadow == 0


def test_too_few_shadow_pairs_hold() -> None:
    policy = small_policy(shadow_intervals=1, shadow_percent=10)
    d = decide([_shadow(pairs(15), n_s=150)], state=initial_state(policy, canary_ready=True), policy=policy)
    assert d.outcome is Outcome.HOLD


def test_nan_flipped_or_shifted_shadow_outputs_roll_back_before_any_live_traffic() -> None:
    policy = small_policy(shadow_intervals=1, shadow_percent=50)
    state = initial_state(policy, canary_ready=True)
    for kind, check in (("nan", "shadow_nonfinite"), ("flip", "shadow_agreement"), ("shift", "shadow_shift")):
        d = decide([_shadow(pairs(100, canary=kind))], state=state, policy=policy)
        assert d.outcome is Outcome.ROLLBACK, kind
        assert d.check(check).failed, (kind, d.checks)  # type: ignore[union-attr]


def test_a_canary_slower_on_the_same_shadowed_requests_rolls_back_before_any_live_traffic() -> None:
    policy = small_policy(shadow_intervals=1, shadow_percent=50)
    state = initial_state(policy, canary_ready=True)
    slow = window(0, weight=0, n_c=0, n_s=200, pairs=pairs(100), added_ms=50.0)
    d = decide([slow], state=state, policy=policy)
    assert d.outcome is Outcome.ROLLBACK and d.check("shadow_latency").failed  # type: ignore[union-attr]
    within = window(0, weight=0, n_c=0, n_s=200, pairs=pairs(100), added_ms=2.0)
    assert decide([within], state=state, policy=policy).outcome is Outcome.PROMOTE_STEP


def test_missing_shadow_pairs_mean_the_canary_fails_its_copies() -> None:
    policy = small_policy(shadow_intervals=1, shadow_percent=50)
    d = decide([_shadow(pairs(20))], state=initial_state(policy, canary_ready=True), policy=policy)
    assert d.outcome is Outcome.ROLLBACK and d.check("shadow_errors").failed  # type: ignore[union-attr]


# -- the record ------------------------------------------------------------------------------------------


def test_decide_is_pure_and_its_record_is_json() -> None:
    policy = small_policy()
    history = [window(i, weight=50, n_c=100, n_s=100) for i in range(4)]
    before = [replace(o) for o in history]
    state = live(policy, step=2, weight=50, canary_version="7", stable_version="6")
    a = decide(history, state=state, policy=policy)
    assert a == decide(history, state=state, policy=policy) and history == before
    doc = json.loads(json.dumps(a.to_dict(), allow_nan=False))
    assert doc["canary_version"] == "7" and doc["stable_version"] == "6"
    names = {c["name"] for c in doc["checks"]}
    assert {"error_rate", "latency", "shift", "traffic_share", "collapse", "nonfinite", "invalid"} <= names
    error = next(c for c in doc["checks"] if c["name"] == "error_rate")
    assert {"statistic", "p_value", "effect", "threshold", "n_canary", "n_stable"} <= set(error)
