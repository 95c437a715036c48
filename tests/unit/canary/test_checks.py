"""The statistics under the checks agree with scipy's reference implementations, and each check's edges."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, hypergeom, ks_2samp  # type: ignore[import-untyped]

from slipway.canary import checks as ck
from slipway.canary.checks import CheckStatus, Severity
from slipway.config import CanaryConfig
from slipway.deploy.base import ArmWindow, Observation

from .helpers import window

POLICY = CanaryConfig()


def test_stratified_exact_test_matches_hypergeom_on_one_stratum_and_monte_carlo_on_three() -> None:
    assert ck.stratified_upper_p([(200, 6, 10)], 5) == pytest.approx(hypergeom.sf(4, 200, 6, 10), rel=1e-9)
    strata = [(200, 8, 10), (150, 5, 40), (100, 3, 50)]
    rng = np.random.default_rng(1)
    draws = sum(rng.hypergeometric(k, m - k, n, size=100_000) for m, k, n in strata)
    assert ck.stratified_upper_p(strata, 6) == pytest.approx(float(np.mean(draws >= 6)), abs=0.004)
    assert ck.stratified_upper_p(strata, 0) == 1.0


def test_two_sided_binomial_by_doubling_is_close_to_scipys_minlike_p() -> None:
    for k, n, p in [(1, 200, 0.05), (3, 200, 0.05), (30, 200, 0.05), (100, 4000, 0.025), (10, 200, 0.05)]:
        ours, ref = ck.binom_two_sided(k, n, p), binomtest(k, n, p).pvalue
        assert 0.5 * ref <= ours <= min(1.0, 2.5 * ref), (k, n, p)


def test_ks_matches_scipy_exact_and_asymptotic() -> None:
    rng = np.random.default_rng(0)
    for n1, n2 in [(50, 80), (1000, 3000)]:
        a, b = rng.normal(0, 1, n1), rng.normal(0.1, 1, n2)
        d, p = ck.ks_two_sample(a, b)
        ref = ks_2samp(a, b)
        assert d == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue, rel=0.1)


def test_error_rate_is_insufficient_without_canary_traffic_and_hard_only_when_gross() -> None:
    empty = ck.error_rate([window(0, weight=5, n_c=0, n_s=200)], policy=POLICY)
    assert empty.status is CheckStatus.INSUFFICIENT
    gross = ck.error_rate([window(0, weight=5, n_c=20, n_s=180, canary={"errors": 12})], policy=POLICY)
    assert gross.failed and gross.severity is Severity.HARD
    mild = [
        window(i, weight=50, n_c=1000, n_s=1000, canary={"errors": 40}, stable={"errors": 5})
        for i in range(3)
    ]
    result = ck.error_rate(mild, policy=POLICY)
    assert result.failed and result.severity is Severity.STATISTICAL and result.p_value is not None


def test_missing_entities_judges_the_canarys_rate_against_the_stables_on_the_same_windows() -> None:
    def windows(c: tuple[int, int], s: tuple[int, int], n: int = 3) -> list[Observation]:
        return [
            window(
                i,
                weight=10,
                n_c=c[0],
                n_s=s[0],
                canary={"entities": c[0], "missing": c[1]},
                stable={"entities": s[0], "missing": s[1]},
            )
            for i in range(n)
        ]

    nothing = ck.missing_entities([window(0, weight=10, n_c=20, n_s=180)], policy=POLICY)
    assert nothing.status is CheckStatus.PASSED and "no entity lookups on the canary" in nothing.detail
    # a stable without a feature service answers entities 400: no lookups there, nothing to compare with
    only_canary = [window(0, weight=10, n_c=20, n_s=180, canary={"entities": 20, "missing": 20})]
    vector_stable = ck.missing_entities(only_canary, policy=POLICY)
    assert vector_stable.status is CheckStatus.PASSED
    assert "no window with entity lookups on both arms" in vector_stable.detail
    same = ck.missing_entities(windows((40, 2), (360, 18)), policy=POLICY)  # unknown patients on both arms
    assert same.status is CheckStatus.PASSED and same.p_value is not None and same.p_value > POLICY.alpha
    emptier = ck.missing_entities(windows((40, 12), (360, 18)), policy=POLICY)  # 30% vs 5%
    assert emptier.failed and emptier.severity is Severity.STATISTICAL
    assert emptier.p_value is not None and emptier.p_value < POLICY.alpha
    assert emptier.effect == pytest.approx(0.25) and emptier.statistic == pytest.approx(0.3)
    assert (emptier.n_canary, emptier.n_stable) == (120, 1080) and "canary 36/120" in emptier.detail
    tolerant = CanaryConfig(max_missing_entity_rate=0.3)
    assert ck.missing_entities(windows((40, 12), (360, 18)), policy=tolerant).status is CheckStatus.PASSED


def test_latency_needs_samples_and_fails_on_a_doubled_tail() -> None:
    rng = np.random.default_rng(0)
    stable = 20 * np.exp(rng.normal(0, 0.25, 400))
    assert ck.latency(stable[:3], stable, policy=POLICY).status is CheckStatus.INSUFFICIENT
    assert (
        ck.latency(20 * np.exp(rng.normal(0, 0.25, 50)), stable, policy=POLICY).status is CheckStatus.PASSED
    )
    slow = ck.latency(40 * np.exp(rng.normal(0, 0.25, 50)), stable, policy=POLICY)
    assert slow.failed and slow.statistic is not None and slow.statistic > POLICY.max_p99_ratio


def test_latency_needs_more_added_tail_than_the_budget() -> None:
    rng = np.random.default_rng(1)
    stable = 2 * np.exp(rng.normal(0, 0.25, 2000))
    fast_doubled = ck.latency(4 * np.exp(rng.normal(0, 0.25, 500)), stable, policy=POLICY)
    assert (
        fast_doubled.p_value is not None and fast_doubled.p_value < POLICY.alpha
    )  # significant and > 1.5x...
    assert fast_doubled.statistic is not None and fast_doubled.statistic > POLICY.max_p99_ratio
    assert fast_doubled.status is CheckStatus.PASSED  # ...but 2 ms more is within the budget
    plus_50 = ck.latency(2 * np.exp(rng.normal(0, 0.25, 500)) + 50, stable, policy=POLICY)
    assert plus_50.failed


def test_shadow_latency_cancels_a_noisy_machine_and_catches_added_ms() -> None:
    rng = np.random.default_rng(2)
    machine = 60 * np.exp(rng.normal(0, 0.8, 300))  # both copies of a request meet the same machine

    def paired(added_ms: float) -> list[tuple[float, float]]:
        own = np.exp(rng.normal(0, 0.1, (2, machine.size)))
        return list(zip((machine * own[0]).tolist(), (machine * own[1] + added_ms).tolist(), strict=True))

    assert ck.shadow_latency(paired(0.0)[:10], policy=POLICY).status is CheckStatus.INSUFFICIENT
    assert ck.shadow_latency(paired(0.0), policy=POLICY).status is CheckStatus.PASSED
    assert ck.shadow_latency(paired(5.0), policy=POLICY).status is CheckStatus.PASSED  # within the budget
    slow = ck.shadow_latency(paired(50.0), policy=POLICY)
    assert slow.failed and slow.statistic == pytest.approx(50.0, abs=10.0)
    # the same +50 ms judged unpaired (live) is lost in the machine's noise
    live = ck.latency(machine * np.exp(rng.normal(0, 0.1, 300)) + 50, machine[::-1].copy(), policy=POLICY)
    assert live.status is CheckStatus.PASSED


def test_collapse_by_std_and_by_a_single_label() -> None:
    rng = np.random.default_rng(0)
    stable = 1 / (1 + np.exp(-(np.where(rng.random(500) < 0.4, 2.5, -2.5) + rng.normal(0, 1.5, 500))))

    def arm(scores: np.ndarray) -> ck.Pooled:  # a binary arm: labels from P(positive) >= 0.5
        return ck.pool([ArmWindow(requests=scores.size, scores=scores.tolist())])

    assert ck.collapse(arm(np.full(50, 0.3)), arm(stable), policy=POLICY).failed
    one_label = np.clip(stable[stable < 0.5][:60] * 0.8 + rng.normal(0, 0.1, 60), 0, 0.49)
    assert ck.collapse(arm(one_label), arm(stable), policy=POLICY).failed
    assert ck.collapse(arm(stable[:100]), arm(stable[100:]), policy=POLICY).status is CheckStatus.PASSED
    assert ck.collapse(arm(stable[:5]), arm(stable), policy=POLICY).status is CheckStatus.INSUFFICIENT


def test_shift_needs_samples_and_an_effect_above_the_floor() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 20_000)
    assert ck.shift(base[:50], base[50:], policy=POLICY).status is CheckStatus.INSUFFICIENT
    tiny = ck.shift(base[:10_000] + 0.08, base[10_000:], policy=POLICY)  # significant, but D < 0.1
    assert tiny.p_value is not None and tiny.p_value < POLICY.alpha and not tiny.failed
    assert ck.shift(base[:500] + 0.5, base[500:], policy=POLICY).failed


def test_psi_is_zero_for_the_same_sample_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(0)
    x = rng.random(5000)
    assert ck.psi(x, x) == pytest.approx(0.0, abs=1e-9)
    assert ck.psi(np.clip(x + 0.3, 0, 1), x) > 0.25


def test_stable_health_marks_a_stable_above_the_limit_inconclusive() -> None:
    off = window(0, weight=25, n_c=50, n_s=150, stable={"errors": 50})
    assert ck.stable_health(off, policy=POLICY).status is CheckStatus.INCONCLUSIVE
    assert ck.stable_health(window(0, weight=25, n_c=50, n_s=150), policy=POLICY).status is CheckStatus.PASSED


def test_a_canary_that_sheds_more_than_the_stable_under_the_same_load_fails_like_errors() -> None:
    shedding = [
        window(
            i,
            weight=50,
            n_c=1000,
            n_s=1000,
            canary={"errors": 40, "shed": 40},
            stable={"errors": 5, "shed": 5},
        )
        for i in range(3)
    ]
    result = ck.error_rate(shedding, policy=POLICY)
    assert result.failed and result.n_canary == 3000
    equal = [
        window(
            i,
            weight=50,
            n_c=1000,
            n_s=1000,
            canary={"errors": 30, "shed": 30},
            stable={"errors": 30, "shed": 30},
        )
        for i in range(3)
    ]
    assert ck.error_rate(equal, policy=POLICY).status is CheckStatus.PASSED


def test_a_stable_that_only_sheds_still_lets_the_window_judge() -> None:
    shedding = window(0, weight=25, n_c=50, n_s=150, stable={"errors": 50, "shed": 50})
    assert ck.stable_health(shedding, policy=POLICY).status is CheckStatus.PASSED
    failing = window(0, weight=25, n_c=50, n_s=150, stable={"errors": 50, "shed": 10})
    assert ck.stable_health(failing, policy=POLICY).status is CheckStatus.INCONCLUSIVE


def test_every_result_serializes_without_nan() -> None:
    result = ck.CheckResult(
        "x", CheckStatus.PASSED, Severity.HARD, statistic=float("inf"), p_value=float("nan")
    )
    doc = result.to_dict()
    assert doc["statistic"] is None and doc["p_value"] is None and doc["status"] == "passed"


def test_latency_tolerates_a_canary_process_that_meets_a_few_more_stalls() -> None:
    """The CI case: a loaded node stalls the healthy canary's process on 3% more requests than the stable's; its p99
    is 1.5x+ the stable's and significantly more requests pass the stable's p95, but not a tenth of them."""
    rng = np.random.default_rng(3)
    stable = 15 * np.exp(rng.normal(0, 0.35, 2900))
    own = np.exp(rng.normal(0, 0.35, 2900))
    canary = 15 * np.where(rng.random(2900) < 0.03, own * 4, own)
    result = ck.latency(canary, stable, policy=POLICY)
    assert result.p_value is not None and result.p_value < POLICY.alpha
    assert result.statistic is not None and result.statistic > POLICY.max_p99_ratio
    assert result.effect is not None and result.effect < POLICY.min_latency_exceedance
    assert result.status is CheckStatus.PASSED
    every_request = ck.latency(stable[:2000] * 2, stable, policy=POLICY)  # a real slowdown passes the floor
    assert every_request.failed


def test_latency_p_value_holds_its_size_against_a_small_stable_sample() -> None:
    """Same distribution on both arms, 30 stable requests: the stable's p95 is a noisy estimate, and the exact
    exceedance test accounts for it (a binomial test against it as a constant rejects far more often)."""
    rng = np.random.default_rng(4)
    p_values = []
    for _ in range(2000):
        stable, canary = rng.lognormal(3, 0.3, 30), rng.lognormal(3, 0.3, 60)
        p = ck.latency(canary, stable, policy=POLICY).p_value
        assert p is not None
        p_values.append(p)
    assert np.mean(np.asarray(p_values) < 0.05) <= 0.06


def test_collapse_judges_a_sharper_multiclass_retrain_by_its_offline_std() -> None:
    """The CI case: a 3-class retrain whose top-class probability is ~1 on every row (std 0.0005 against the
    champion's 0.08) while it predicts all three labels as the champion does. Offline, on the holdout, it is as
    sharp: confident, not collapsed. The same live answers from a model that spread its scores offline fail."""
    from slipway.canary.output import OutputSpec, offline_baselines

    rng = np.random.default_rng(5)
    spec = OutputSpec(task="multiclass", classes=3)
    labels = rng.integers(0, 3, 600)
    champion = np.clip(0.85 + rng.normal(0, 0.08, 600), 0.34, 1.0)
    sharp = 1.0 - np.abs(rng.normal(0, 5e-4, 600))

    def arm(scores: np.ndarray, rows: slice) -> ck.Pooled:
        window = ArmWindow(
            requests=scores[rows].size, scores=scores[rows].tolist(), labels=labels[rows].tolist()
        )
        return ck.pool([window], spec)

    base = offline_baselines(
        stable=(champion[:300], labels[:300]), canary=(sharp[:300], labels[:300]), spec=spec
    )
    assert base.score_std_ratio < 0.02
    live = ck.collapse(arm(sharp, slice(300, 442)), arm(champion, slice(300, 600)), policy=POLICY, spec=spec)
    assert live.failed  # without the offline evidence, this looks like a collapse
    judged = ck.collapse(
        arm(sharp, slice(300, 442)),
        arm(champion, slice(300, 600)),
        policy=POLICY,
        spec=spec,
        baseline_std_ratio=base.score_std_ratio,
    )
    assert judged.status is CheckStatus.PASSED
    flat = np.full(142, 0.34)  # a model that spread offline answering ~1/3 everywhere live
    assert ck.collapse(
        arm(np.concatenate([np.zeros(300), flat]), slice(300, 442)),
        arm(champion, slice(300, 600)),
        policy=POLICY,
        spec=spec,
        baseline_std_ratio=1.0,
    ).failed
