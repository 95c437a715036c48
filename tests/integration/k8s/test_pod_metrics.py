"""Canary analysis on the kubernetes target: PodMetricsSource scraping REAL server pods through a real API server.

Given a stable v1 and a canary v2 whose pods run as real `python -m slipway.serving` processes (the
process kubelet) behind the Service (ServiceProxy: kube-proxy's random endpoint choice), when load
is sent, then every window counts exactly what the servers answered, split by the replica ratio,
a pod that stops answering makes the window stale, and `run_canary` rolls a faulty canary back and
promotes a healthy one, leaving exactly the expected objects.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest
from scipy.stats import binom

from slipway.canary.clock import RealClock
from slipway.canary.controller import run_canary
from slipway.config import CanaryConfig
from slipway.data.reference import Reference
from slipway.deploy.base import ModelRelease
from slipway.deploy.k8s_metrics import PodMetricsSource
from slipway.deploy.kubernetes import KubernetesTarget
from slipway.deploy.loadgen import LoadGenerator, LoadStats
from tests.integration.k8s.conftest import process_image
from tests.integration.k8s.observe import endpoint_arms, eventually, get, names, pod_requests, serving_pods
from tests.integration.k8s.process_kubelet import ProcessKubelet, ServiceProxy, wait_for

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.slow]

APP = "tiny-serve"
TOTAL = 4  # pods in all: 25% steps
RATE_RPS = 40.0
READY_S = 120.0


def release(version: str, env: dict[str, str] | None = None) -> ModelRelease:
    """The tiny model's release `version`, its image mapped to its bundle by the process kubelet."""
    return ModelRelease(
        model_name="tiny", model_version=version, image_ref=process_image(version), env=env or {}
    )


def make_target(api_client: ApiClient, namespace: str) -> KubernetesTarget:
    """A 4-pod target with generous timeouts (each pod is a real server starting on 2 shared cores)."""
    return KubernetesTarget(
        api_client=api_client,
        namespace=namespace,
        app=APP,
        total_replicas=TOTAL,
        rollout_timeout_s=READY_S,
        traffic_timeout_s=READY_S,
        request_timeout_s=5.0,
        poll_s=0.2,
    )


@pytest.fixture()
def target(admin_api_client: ApiClient, process_kubelet: ProcessKubelet) -> Iterator[KubernetesTarget]:
    t = make_target(admin_api_client, process_kubelet.namespace)
    yield t
    t.close()


@pytest.fixture(scope="module")
def rows(ref: Reference) -> np.ndarray:
    return ref.holdout_xy()[0]


def load_through(proxy: ServiceProxy, rows: np.ndarray, *, seconds: float) -> LoadStats:
    """Poisson load through the Service for `seconds`; what the client saw."""
    load = LoadGenerator(url=proxy.url, rows=rows, rate_rps=RATE_RPS, seed=3)
    load.start()
    time.sleep(seconds)
    stats = load.stop(timeout_s=15)
    time.sleep(0.3)
    return stats


def versions_answering(proxy: ServiceProxy, rows: np.ndarray, n: int = 60) -> Counter[str]:
    """model_version of n sequential answers through the Service ('error' for failures)."""
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=proxy.url, timeout=10, trust_env=False) as client:
        for i in range(n):
            r = client.post("/predict", json={"instances": [rows[i % len(rows)].tolist()]})
            seen[r.json()["model_version"] if r.status_code == 200 else "error"] += 1
    return seen


def test_windows_count_what_each_arm_answered_and_a_silent_pod_makes_them_stale(
    target: KubernetesTarget, process_kubelet: ProcessKubelet, admin: httpx.Client, rows: np.ndarray
) -> None:
    namespace = process_kubelet.namespace
    target.deploy_stable(release("1"), ready_timeout_s=READY_S)
    assert target.start_canary(release("2"), ready_timeout_s=READY_S)
    source = PodMetricsSource(target)
    target.on_traffic_set(source.rebaseline)
    assert source.observe(weight=0).stale  # the first scrape is only a baseline
    target.set_traffic(weight=25, shadow=0)
    eventually(lambda: endpoint_arms(admin, namespace, APP), Counter(stable=3, canary=1), timeout_s=30)

    with ServiceProxy(admin, namespace=namespace, service=APP, seed=1) as proxy:
        wait_for(lambda: len(proxy.addresses) == TOTAL, timeout_s=10, what="4 endpoints at the proxy")
        stats = load_through(proxy, rows, seconds=8.0)
        obs = source.observe(weight=25)

        # Then the window holds exactly what the servers answered, by arm
        assert not obs.stale, obs.source_error
        n = obs.stable.requests + obs.canary.requests
        # (a transport error is a request with no HTTP answer: refused ones reached no server, a timed-out one
        # may have; a 2-core CI machine saw 6 of 282, none counted by a server, right after the canary joined)
        ok, lost = stats.statuses.get(200, 0), stats.transport_errors
        assert ok == stats.sent - lost and ok <= n <= ok + lost and ok > 150, (
            n,
            stats,
            proxy.failures[:5],
            pod_requests(admin, namespace),
        )
        assert lost <= max(3, stats.sent // 20), (stats, proxy.failures[:5])
        for version, arm in (("1", obs.stable), ("2", obs.canary)):  # exact when nothing was lost
            assert stats.versions.get(version, 0) <= arm.requests <= stats.versions.get(version, 0) + lost
        low, high = binom.interval(0.999, n, 0.25)
        assert low <= obs.canary.requests <= high
        assert (obs.stable.errors, obs.canary.errors, obs.canary.nonfinite, obs.canary.invalid) == (
            0,
            0,
            0,
            0,
        )
        for arm in (obs.stable, obs.canary):
            assert len(arm.latencies_ms) == arm.requests and len(arm.scores) == arm.requests  # one row each
            assert min(arm.scores) > 0 and max(arm.scores) < 1
        assert obs.end_s > obs.start_s
        assert source.observe(weight=25).stable.requests == 0  # the next window starts where this ended

        # When a canary server restarts (counters reset), its new counts are the window's
        canary_pod = next(p for p in process_kubelet.pods.values() if "-canary-" in p.name)
        canary_pod.proc.kill()
        wait_for(
            lambda: canary_pod.restarts == 1 and canary_pod.reported is True, timeout_s=60, what="restart"
        )
        wait_for(lambda: len(proxy.addresses) == TOTAL, timeout_s=10, what="the canary back in the Service")
        stats = load_through(proxy, rows, seconds=4.0)
        obs = source.observe(weight=25)
        assert not obs.stale, obs.source_error
        assert stats.versions == {"1": obs.stable.requests, "2": obs.canary.requests}

        # When a Ready canary pod stops answering, the window is stale and names it (fail closed)
        canary_pod.proc.send_signal(signal.SIGSTOP)
        try:
            obs = source.observe(weight=25)
        finally:
            canary_pod.proc.send_signal(signal.SIGCONT)
        assert obs.stale and obs.source_error is not None
        assert f"canary pod {canary_pod.name}" in obs.source_error


def expect_serving(admin: httpx.Client, namespace: str, version: str) -> None:
    """Exactly the stable Deployment (all pods, `version`), the Service and the HPA; no canary pod."""
    assert names(admin, namespace) == {
        "Deployment": {f"{APP}-stable"},
        "Service": {APP},
        "HorizontalPodAutoscaler": {f"{APP}-stable"},
    }
    stable = get(admin, f"/apis/apps/v1/namespaces/{namespace}/deployments/{APP}-stable")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == process_image(version)
    assert stable["spec"]["replicas"] == TOTAL
    eventually(lambda: serving_pods(admin, namespace), Counter(stable=TOTAL), timeout_s=60)
    eventually(lambda: endpoint_arms(admin, namespace, APP), Counter(stable=TOTAL), timeout_s=60)


POLICY = CanaryConfig(
    shadow_intervals=0,  # replica-ratio traffic cannot mirror
    steps=[25, 50, 100],
    interval_s=4.0,
    step_min_samples=20,
    min_samples_per_arm=100,
    shift_min_samples=30,
    readiness_deadline_s=READY_S,
    deadline_s=360.0,
)


@pytest.mark.parametrize(
    ("env", "result", "check"),
    [
        ({"SLIPWAY_SERVE_FAULT_OUTPUT": "nan"}, "rolled_back", "nonfinite"),
        ({"SLIPWAY_SERVE_FAULT_ERROR_RATE": "0.5"}, "rolled_back", "error_rate"),
        ({"SLIPWAY_SERVE_FAULT_LATENCY_MS": "50"}, "rolled_back", "latency"),
        ({}, "promoted", ""),
    ],
    ids=["nan-rolled-back", "errors-rolled-back", "latency-rolled-back", "healthy-promoted"],
)
def test_run_canary_on_the_kubernetes_target(
    target: KubernetesTarget,
    process_kubelet: ProcessKubelet,
    admin: httpx.Client,
    rows: np.ndarray,
    env: dict[str, str],
    result: str,
    check: str,
) -> None:
    namespace = process_kubelet.namespace
    target.deploy_stable(release("1"), ready_timeout_s=READY_S)
    source = PodMetricsSource(target)
    target.on_traffic_set(source.rebaseline)
    with ServiceProxy(admin, namespace=namespace, service=APP, seed=2) as proxy:
        wait_for(lambda: len(proxy.addresses) == TOTAL, timeout_s=30, what="the stable's endpoints")
        load = LoadGenerator(url=proxy.url, rows=rows, rate_rps=RATE_RPS, seed=5)
        load.start()
        try:
            outcome = run_canary(target, source, release=release("2", env), policy=POLICY, clock=RealClock())
        finally:
            load.stop(timeout_s=15)
        assert outcome.result == result, outcome.reason
        windows = [d.window for d in outcome.decisions if d.window is not None]
        assert windows and not windows[-1].stale
        serving = "1" if result == "rolled_back" else "2"
        if result == "rolled_back":
            assert outcome.reason.startswith(f"failed: {check}"), outcome.reason
            assert outcome.peak_weight == 25  # never raised past the first step
        else:
            assert outcome.peak_weight == 100
            assert [d.weight for d in outcome.decisions][:1] == [25]
        expect_serving(admin, namespace, serving)
        wait_for(lambda: len(proxy.addresses) == TOTAL, timeout_s=30, what="all endpoints")
        assert versions_answering(proxy, rows) == Counter({serving: 60})
