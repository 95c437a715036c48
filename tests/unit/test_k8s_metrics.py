"""PodMetricsSource's pure parts: parsing the serving exposition, differencing scrapes, rebuilding samples from buckets.

Also: the canary checks stay sound on binned data (both arms on the same grid), and a stand-in
target (pods + their exposition text, no HTTP) drives the source's stale/reset rules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from slipway.canary import checks
from slipway.config import CanaryConfig
from slipway.deploy import k8s_manifests as m
from slipway.deploy.base import ArmWindow
from slipway.deploy.k8s_metrics import (
    PodCounters,
    PodMetricsSource,
    arm_window,
    difference,
    parse_metrics,
)
from slipway.deploy.kubernetes import replica_capabilities
from slipway.errors import DeployError
from slipway.serving.metrics import LATENCY_BUCKETS, SCORE_BUCKETS, ServingMetrics

POLICY = CanaryConfig(shadow_intervals=0, shift_min_samples=100)


def served(
    *,
    version: str = "2",
    ok: int = 0,
    errors: int = 0,
    scores: list[float] | None = None,
    seconds: float = 0.002,
) -> ServingMetrics:
    """A real ServingMetrics after `ok` 200s and `errors` 500s, one row each with these scores."""
    metrics = ServingMetrics()
    for _ in range(ok):
        metrics.request(status=200, version=version, seconds=seconds)
    for _ in range(errors):
        metrics.request(status=500, version=version, seconds=seconds)
    values = np.asarray(scores or [], dtype=float)
    labels: list[int | None] = [None if not np.isfinite(v) else int(v >= 0.5) for v in values]
    metrics.outputs(version=version, labels=labels, scores=values)
    return metrics


def counters(metrics: ServingMetrics) -> PodCounters:
    return parse_metrics(metrics.exposition().decode())


def test_parse_reads_requests_errors_nonfinite_and_buckets() -> None:
    c = counters(served(ok=7, errors=3, scores=[0.1, 0.9, math.nan, 0.3]))
    assert (c.requests, c.errors, c.nonfinite, c.versions) == (10, 3, 1, frozenset({"2"}))
    assert sum(n for _, n in c.latency) == 10 and len(c.latency) == len(LATENCY_BUCKETS) + 1
    assert sum(n for _, n in c.scores) == 3 and len(c.scores) == len(SCORE_BUCKETS) + 1
    assert c.created > 0


def test_a_fresh_server_exposes_no_version_and_no_counts() -> None:
    c = counters(ServingMetrics())
    assert (c.requests, c.versions, c.latency) == (0, frozenset(), ())


def test_difference_is_what_happened_between_scrapes() -> None:
    metrics = served(ok=5, scores=[0.2] * 5)
    before = counters(metrics)
    metrics.request(status=500, version="2", seconds=0.01)
    metrics.outputs(version="2", labels=[1, 1], scores=np.array([0.8, 0.8]))
    delta = difference(counters(metrics), before)
    assert (delta.requests, delta.errors, delta.nonfinite) == (1, 1, 0)
    assert sum(n for _, n in delta.scores) == 2
    assert [le for le, n in delta.scores if n] == [0.8]  # (0.78, 0.8]
    assert sum(n for _, n in delta.latency) == 1


def test_entity_lookups_and_missing_entities_difference_into_the_arms_window() -> None:
    metrics = served(ok=2)
    metrics.entities(version="2", looked_up=3, missing=1, seconds=0.001)
    before = counters(metrics)
    assert (before.entities, before.missing) == (3, 1)
    metrics.entities(version="2", looked_up=5, missing=2, seconds=0.001)
    metrics.entities(version="2", looked_up=1, missing=0, seconds=0.001)
    delta = difference(counters(metrics), before)
    assert (delta.entities, delta.missing) == (6, 2)
    window = arm_window([delta, delta])
    assert (window.entities, window.missing_entities) == (12, 4)


def test_a_restarted_server_counts_in_full() -> None:
    old = counters(served(ok=50))
    new = counters(served(ok=4))  # a new process: counters went down, `_created` moved
    assert difference(new, old) == new
    assert difference(new, None) == new
    # a reset seen by the counts alone (same `_created`) also counts in full
    assert difference(new, PodCounters(requests=10, created=new.created)) == new


def test_arm_window_rebuilds_one_sample_per_observation_on_the_shared_grid() -> None:
    a = counters(served(ok=3, scores=[0.49, 0.51, 0.999]))
    b = counters(served(ok=2, errors=1, scores=[0.0001, 1.0], seconds=0.05))
    w = arm_window([a, b])
    assert (w.requests, w.errors, w.nonfinite, w.invalid) == (6, 1, 0, 0)
    assert len(w.latencies_ms) == 6 and len(w.scores) == 5
    # labels survive the binning: 0.5 is a bucket edge
    assert [s >= 0.5 for s in sorted(w.scores)] == [False, False, True, True, True]
    assert all(0 < s < 1 for s in w.scores)
    fast, slow = sorted(w.latencies_ms)[:3], sorted(w.latencies_ms)[3:]
    assert all(2 / 1.19 < v < 2 * 1.19 for v in fast)  # inside the bucket of 2 ms
    assert all(50 / 1.19 < v < 50 * 1.19 for v in slow)  # inside the bucket of 50 ms


def test_scores_above_one_are_schema_invalid() -> None:
    c = counters(served(ok=2, scores=[1.5, 0.2]))
    w = arm_window([c])
    assert (w.invalid, len(w.scores)) == (1, 1)


def test_predicted_classes_come_back_as_one_label_per_row_and_difference_per_class() -> None:
    metrics = ServingMetrics()
    metrics.outputs(version="1", labels=[0, 2, 2, None], scores=np.array([0.7, 0.6, 0.9, math.nan]))
    before = counters(metrics)
    metrics.outputs(version="1", labels=[1, 2], scores=np.array([0.5, 0.8]))
    assert sorted(arm_window([counters(metrics)]).labels) == [0, 1, 2, 2, 2]
    delta = difference(counters(metrics), before)
    assert sorted(arm_window([delta]).labels) == [1, 2]


def test_a_swapped_multiclass_canary_fails_the_label_shift_check_from_scraped_counts() -> None:
    from slipway.canary.output import OutputSpec

    spec = OutputSpec(task="multiclass", classes=3)
    rng = np.random.default_rng(4)
    truth = rng.choice(3, size=600, p=[0.6, 0.3, 0.1])

    def scraped(labels: np.ndarray) -> checks.Pooled:
        metrics = ServingMetrics()
        metrics.outputs(version="1", labels=[int(k) for k in labels], scores=rng.uniform(0.5, 1, labels.size))
        return checks.pool([arm_window([counters(metrics)])], spec)

    stable, same, swapped = scraped(truth), scraped(rng.permutation(truth)), scraped((truth + 1) % 3)
    assert (
        checks.label_shift(same.labels, stable.labels, policy=POLICY, spec=spec).status
        is checks.CheckStatus.PASSED
    )
    assert checks.label_shift(swapped.labels, stable.labels, policy=POLICY, spec=spec).failed


def test_regression_values_are_rebuilt_in_their_own_range_and_outside_it_count_as_invalid() -> None:
    from slipway.canary.output import OutputSpec

    metrics = ServingMetrics()
    metrics.score_values((-50.0, 150.0))  # validity range: [-250, 350]
    values = np.array([-40.0, 0.0, 75.0, 149.0, -300.0, 400.0])
    metrics.outputs(version="1", labels=[None] * 0, scores=values)
    c = counters(metrics)
    assert c.scores == () and sum(n for _, n in c.values) == 6
    w = arm_window([c])
    assert w.invalid == 2 and len(w.scores) == 4
    assert all(-250 <= v <= 350 for v in w.scores)
    for raw, rebuilt in zip(sorted(values[:4]), sorted(w.scores), strict=True):
        assert abs(raw - rebuilt) <= 200 / 50  # inside the one bucket of width span/50
    pooled = checks.pool([w], OutputSpec.regression((-50.0, 150.0)))
    assert (pooled.invalid, pooled.scores.size) == (2, 4)


def binned(values: np.ndarray, *, latency: bool = False) -> list[float]:
    """`values` through a real ServingMetrics histogram and back (what the kubernetes source sees)."""
    metrics = ServingMetrics()
    if latency:
        for v in values:
            metrics.request(status=200, version="1", seconds=float(v) / 1000.0)
        return arm_window([counters(metrics)]).latencies_ms
    metrics.outputs(version="1", labels=[int(v >= 0.5) for v in values], scores=values)
    return arm_window([counters(metrics)]).scores


def pooled(scores: np.ndarray) -> checks.Pooled:
    """One binary arm from its scores alone (labels: score >= 0.5)."""
    return checks.pool([ArmWindow(scores=[float(v) for v in scores])])


@pytest.mark.parametrize("seed", range(5))
def test_ks_on_binned_scores_never_exceeds_the_raw_statistic(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stable = 1 / (1 + np.exp(-rng.normal(0, 2.5, 600)))
    canary = 1 / (1 + np.exp(-rng.normal(0.4 * (seed % 2), 2.5, 600)))
    raw_d, _ = checks.ks_two_sample(canary, stable)
    bin_d, _ = checks.ks_two_sample(np.asarray(binned(canary)), np.asarray(binned(stable)))
    assert bin_d <= raw_d + 1e-12  # ties on one grid can only hide a shift, never invent one


def test_binned_shift_check_passes_the_same_model_and_fails_a_flipped_one() -> None:
    rng = np.random.default_rng(1)
    base = 1 / (1 + np.exp(-(rng.normal(0, 1, 800) * 3 + 1.0)))  # skewed toward class 1, like the holdout
    other = 1 / (1 + np.exp(-(rng.normal(0, 1, 800) * 3 + 1.0)))
    stable, same, flipped = (np.asarray(binned(v)) for v in (base, other, 1.0 - other))
    assert checks.shift(same, stable, policy=POLICY).status is checks.CheckStatus.PASSED
    assert checks.shift(flipped, stable, policy=POLICY).failed


def test_binned_collapse_check_fails_a_constant_canary_but_not_two_arms_inside_one_bucket() -> None:
    rng = np.random.default_rng(3)
    real = np.asarray(binned(1 / (1 + np.exp(-rng.normal(0, 3, 400)))))
    constant = np.asarray(binned(np.full(200, 0.73)))
    assert checks.collapse(pooled(constant), pooled(real), policy=POLICY).failed
    # a saturated model on both arms: some stable scores fall below the 0.999 edge, none of the canary's
    stable_raw, canary_raw = 1 - rng.uniform(0, 1.1e-3, 400), 1 - rng.uniform(0, 1e-3, 200)
    assert (
        checks.collapse(pooled(canary_raw), pooled(stable_raw), policy=POLICY).status
        is checks.CheckStatus.PASSED
    )
    stable, canary = np.asarray(binned(stable_raw)), np.asarray(binned(canary_raw))
    assert checks.collapse(pooled(canary), pooled(stable), policy=POLICY).status is checks.CheckStatus.PASSED


@pytest.mark.parametrize(("factor", "fails"), [(1.0, False), (3.0, True)])
def test_binned_latency_check_keeps_the_p99_ratio_within_one_bucket(factor: float, fails: bool) -> None:
    rng = np.random.default_rng(2)
    stable_raw = rng.lognormal(np.log(2.0), 0.3, 1000)
    canary_raw = rng.lognormal(np.log(2.0), 0.3, 300) * factor
    stable, canary = (
        np.asarray(binned(stable_raw, latency=True)),
        np.asarray(binned(canary_raw, latency=True)),
    )
    ratio_only = POLICY.model_copy(
        update={"max_added_latency_ms": 0.0}
    )  # binning is on trial, not the budget
    result = checks.latency(canary, stable, policy=ratio_only)
    assert result.failed is fails
    raw = np.quantile(canary_raw, 0.99) / np.quantile(stable_raw, 0.99)
    assert result.statistic is not None
    assert raw / 2**0.5 <= result.statistic <= raw * 2**0.5  # each p99 off by at most one bucket (2**0.25)


# -- the source's rules, over a stand-in target ---------------------------------------------------------


class PodsStandIn:
    """What PodMetricsSource asks a KubernetesTarget: arm_pods, pod_proxy_get (served from dicts), follow_stable."""

    def __init__(self) -> None:
        self.pods: dict[str, list[dict[str, Any]]] = {"stable": [], "canary": []}
        self.text: dict[str, str | Exception] = {}
        self.follows = 0
        self.follow_error: Exception | None = None

    def follow_stable(self) -> bool:
        self.follows += 1
        if self.follow_error is not None:
            raise self.follow_error
        return False

    def add(self, arm: str, name: str, metrics: ServingMetrics, *, version: str, ready: bool = True) -> None:
        self.pods[arm].append(
            {
                "metadata": {"name": name, "uid": f"uid-{name}", "labels": {m.LABEL_VERSION: version}},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                    "containerStatuses": [{"restartCount": 0}],
                },
            }
        )
        self.text[name] = metrics.exposition().decode()

    def arm_pods(self, arm: str) -> list[dict[str, Any]]:
        return self.pods[arm]

    def pod_proxy_get(self, pod: str, *, port: int, path: str) -> str:
        value = self.text[pod]
        if isinstance(value, Exception):
            raise value
        return value


def source_over(pods: PodsStandIn) -> PodMetricsSource:
    clock = iter(range(100))
    return PodMetricsSource(pods, clock=lambda: float(next(clock)))  # type: ignore[arg-type]


def test_windows_difference_per_pod_and_skip_pods_that_are_not_ready() -> None:
    pods, s1, c1 = PodsStandIn(), served(version="1", ok=10), served(version="2", ok=2)
    pods.add("stable", "s1", s1, version="1")
    pods.add("canary", "c1", c1, version="2")
    pods.add("canary", "c-starting", served(version="2", ok=99), version="2", ready=False)
    source = source_over(pods)
    first = source.observe(weight=10)
    assert first.stale and first.source_error == "first scrape: a baseline"
    for _ in range(5):
        s1.request(status=200, version="1", seconds=0.001)
    c1.request(status=503, version="2", seconds=0.001)
    pods.text["s1"], pods.text["c1"] = s1.exposition().decode(), c1.exposition().decode()
    obs = source.observe(weight=10)
    assert not obs.stale, obs.source_error
    assert (obs.stable.requests, obs.canary.requests, obs.canary.errors) == (5, 1, 1)
    assert (obs.start_s, obs.end_s) == (0.0, 1.0)


def test_a_ready_pod_that_cannot_be_scraped_makes_the_window_stale() -> None:
    pods = PodsStandIn()
    pods.add("stable", "s1", served(version="1", ok=1), version="1")
    pods.add("canary", "c1", served(version="2", ok=1), version="2")
    source = source_over(pods)
    source.observe(weight=10)
    pods.text["c1"] = DeployError("kubernetes: GET pod c1 via the API proxy: HTTP 503: connection refused")
    obs = source.observe(weight=10)
    assert obs.stale and obs.source_error is not None and "canary pod c1" in obs.source_error


def test_metrics_of_another_version_than_the_arm_serves_make_the_window_stale() -> None:
    pods = PodsStandIn()
    pods.add("stable", "s1", served(version="1", ok=1), version="1")
    pods.add("canary", "c1", served(version="1", ok=1), version="2")  # the canary pod answers as v1
    source = source_over(pods)
    source.observe(weight=10)
    obs = source.observe(weight=10)
    assert obs.stale and obs.source_error is not None
    assert "canary pod c1: metrics of model version(s) ['1'], but the pod serves 2" in obs.source_error


def test_a_failed_rebaseline_makes_the_next_window_stale() -> None:
    pods = PodsStandIn()
    pods.add("stable", "s1", served(version="1", ok=1), version="1")
    source = source_over(pods)
    source.observe(weight=0)
    pods.text["s1"] = DeployError("timed out")
    source.rebaseline()
    pods.text["s1"] = served(version="1", ok=3).exposition().decode()
    obs = source.observe(weight=10)
    assert obs.stale and obs.source_error is not None and "after the traffic change" in obs.source_error


def test_each_window_carries_the_replica_ratio_at_its_two_ends() -> None:
    pods = PodsStandIn()
    pods.add("stable", "s1", served(version="1", ok=1), version="1")
    pods.add("canary", "c1", served(version="2", ok=1), version="2")
    pods.add("canary", "c-starting", served(version="2"), version="2", ready=False)  # draws no traffic
    source = source_over(pods)
    source.observe(weight=50)
    assert source.observe(weight=50).routed_share == (0.5, 0.5)
    # When the HPA adds two stable pods during the next window, the canary's share falls from 1/2 to 1/4
    pods.add("stable", "s2", served(version="1"), version="1")
    pods.add("stable", "s3", served(version="1"), version="1")
    assert source.observe(weight=50).routed_share == (0.25, 0.5)
    assert source.observe(weight=50).routed_share == (0.25, 0.25)


def test_the_canary_follows_the_stable_after_each_live_window_and_a_failed_follow_makes_the_next_stale() -> (
    None
):
    pods = PodsStandIn()
    pods.add("stable", "s1", served(version="1", ok=1), version="1")
    pods.add("canary", "c1", served(version="2", ok=1), version="2")
    source = source_over(pods)
    source.observe(weight=0)
    assert pods.follows == 0  # nothing to follow at weight 0
    source.observe(weight=10)
    assert pods.follows == 1
    pods.follow_error = DeployError(
        "kubernetes: Deployment ns/a-canary not ready after 60 s: 1/2 replicas ready"
    )
    assert not source.observe(weight=10).stale  # this window was measured before the follow
    pods.follow_error = None
    obs = source.observe(weight=10)
    assert obs.stale and obs.source_error is not None
    assert (
        "could not follow the stable's HPA" in obs.source_error and "1/2 replicas ready" in obs.source_error
    )
    assert not source.observe(weight=10).stale


# -- which policies replica-ratio traffic can run --------------------------------------------------------


def test_replica_ratio_refuses_shadow_and_unreachable_weights_naming_the_fields() -> None:
    digest = "reg/serve@sha256:" + "a" * 64
    caps = replica_capabilities(10)
    assert caps.weights == (10, 20, 30, 40, 50, 60, 70, 80, 90) and not caps.shadow and caps.requires_digest
    problems = caps.problems(steps=[5, 25, 50, 100], shadow_intervals=1, image_ref=digest)
    assert len(problems) == 2
    assert "canary.shadow_intervals" in problems[0] and "canary.steps" in problems[1]
    assert all("deploy.kubernetes.replicas" in p for p in problems)
    assert caps.problems(steps=[10, 50, 100], shadow_intervals=0, image_ref=digest) == []
    assert replica_capabilities(4).problems(steps=[25, 50, 100], shadow_intervals=0, image_ref=digest) == []
    assert len(caps.problems(steps=[10, 50, 100], shadow_intervals=0, image_ref="reg/serve:1")) == 1
