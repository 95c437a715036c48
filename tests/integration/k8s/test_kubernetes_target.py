"""KubernetesTarget against a real kube-apiserver + controller-manager 1.20.2 (pods made Ready by the fake kubelet).

Given objects, when the target applies and updates them, then the API server holds exactly the
expected objects, and the Service's endpoints (where traffic goes) follow the replica ratio.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from slipway.deploy.base import DeploymentState, ModelRelease
from slipway.deploy.kubernetes import KubernetesTarget
from slipway.errors import DeployError
from tests.integration.k8s.control_plane import ControlPlane
from tests.integration.k8s.observe import HPA, endpoint_arms, eventually, get, items, names, serving_pods

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

pytestmark = [pytest.mark.integration, pytest.mark.k8s]

APP = "slipway-serve"
REPO = "127.0.0.1:5000/slipway/slipway-serve"


def release(version: str, *, env: dict[str, str] | None = None) -> ModelRelease:
    """A release whose digest is its version digit repeated."""
    return ModelRelease(
        model_name="slipway-classifier",
        model_version=version,
        image_ref=f"{REPO}@sha256:{version[0] * 64}",
        env=env or {},
    )


V1 = release("1")
V2 = release("2", env={"SLIPWAY_SERVE_LOG_SAMPLE_RATE": "0.5"})


@pytest.fixture()
def target(admin_api_client: ApiClient, namespace: str) -> Iterator[KubernetesTarget]:
    """A target on a fresh namespace, 10 pods in all (10% steps)."""
    t = KubernetesTarget(
        api_client=admin_api_client,
        namespace=namespace,
        app=APP,
        total_replicas=10,
        rollout_timeout_s=60,
        traffic_timeout_s=30,
        poll_s=0.1,
    )
    yield t
    t.close()


def deployment(admin: httpx.Client, namespace: str, arm: str) -> dict[str, Any]:
    """One arm's Deployment as stored."""
    return get(admin, f"/apis/apps/v1/namespaces/{namespace}/deployments/{APP}-{arm}")


def image(dep: dict[str, Any]) -> str:
    """The server container's image of a Deployment."""
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def expect_only_stable(admin: httpx.Client, namespace: str, rel: ModelRelease) -> None:
    """Exactly the stable Deployment (full size, `rel`), the Service and the HPA; no canary pod serves."""
    assert names(admin, namespace) == {
        "Deployment": {f"{APP}-stable"},
        "Service": {APP},
        "HorizontalPodAutoscaler": {f"{APP}-stable"},
    }
    stable = deployment(admin, namespace, "stable")
    assert image(stable) == rel.image_ref
    assert stable["spec"]["replicas"] == 10
    assert stable["status"]["readyReplicas"] == 10
    hpa = get(admin, f"{HPA}/namespaces/{namespace}/horizontalpodautoscalers/{APP}-stable")
    assert hpa["spec"]["minReplicas"] == 10
    eventually(lambda: serving_pods(admin, namespace), Counter(stable=10))
    eventually(lambda: endpoint_arms(admin, namespace, APP), Counter(stable=10))


def test_deploy_stable_applies_digest_deployment_service_and_newest_hpa(
    target: KubernetesTarget, admin: httpx.Client, namespace: str
) -> None:
    # When the stable is deployed (twice: idempotent)
    target.deploy_stable(V1, ready_timeout_s=30)
    target.deploy_stable(V1, ready_timeout_s=30)

    # Then one Deployment with the digest, a Service over both arms, an HPA in the newest API 1.20 has
    expect_only_stable(admin, namespace, V1)
    assert target.hpa_api_version() == "autoscaling/v2beta2"
    stable = deployment(admin, namespace, "stable")
    assert stable["metadata"]["generation"] == 1  # the second apply changed nothing
    assert stable["metadata"]["labels"]["model-version"] == "1"
    managers = {(f["manager"], f["operation"]) for f in stable["metadata"]["managedFields"]}
    assert ("slipway", "Apply") in managers
    pod = stable["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}  # kept by 1.20
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    service = get(admin, f"/api/v1/namespaces/{namespace}/services/{APP}")
    assert service["spec"]["selector"] == {"app": APP}
    hpa = get(admin, f"{HPA}/namespaces/{namespace}/horizontalpodautoscalers/{APP}-stable")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{APP}-stable"
    rate, cpu = hpa["spec"]["metrics"]  # the request rate per pod, and CPU
    assert rate["pods"]["metric"]["name"] == "slipway_requests_per_second"
    assert rate["pods"]["target"] == {"type": "AverageValue", "averageValue": "20"}
    assert cpu["resource"]["target"]["averageUtilization"] == 70

    state = target.state()
    assert (state.stable, state.canary, state.weight, state.canary_ready) == (V1, None, 0, False)


def test_canary_weights_follow_the_replica_ratio(
    target: KubernetesTarget, admin: httpx.Client, namespace: str
) -> None:
    target.deploy_stable(V1, ready_timeout_s=30)

    # When the canary starts (twice), it was proven Ready on one pod and waits at weight 0 (no pods)
    assert target.start_canary(V2, ready_timeout_s=30) is True
    assert target.start_canary(V2, ready_timeout_s=30) is True
    state = target.state()
    assert (state.canary, state.weight, state.canary_ready, state.shadow) == (V2, 0, True, 0)
    assert deployment(admin, namespace, "canary")["spec"]["replicas"] == 0
    eventually(lambda: endpoint_arms(admin, namespace, APP), Counter(stable=10))

    # When weights are set (each twice), pods and Ready endpoints follow round(10 * w / 100)
    for weight, (n_stable, n_canary) in [(30, (7, 3)), (50, (5, 5)), (25, (7, 3)), (90, (1, 9))]:
        target.set_traffic(weight=weight, shadow=0)
        target.set_traffic(weight=weight, shadow=0)
        assert deployment(admin, namespace, "stable")["spec"]["replicas"] == n_stable
        assert deployment(admin, namespace, "canary")["spec"]["replicas"] == n_canary
        hpa = get(admin, f"{HPA}/namespaces/{namespace}/horizontalpodautoscalers/{APP}-stable")
        assert hpa["spec"]["minReplicas"] == n_stable
        eventually(lambda: endpoint_arms(admin, namespace, APP), Counter(stable=n_stable, canary=n_canary))
        assert target.state().weight == 10 * n_canary

    # When the weight goes back to 0, the canary keeps no pod and gets no traffic
    target.set_traffic(weight=0, shadow=0)
    eventually(lambda: endpoint_arms(admin, namespace, APP), Counter(stable=10))
    assert (target.state().weight, target.state().canary) == (0, V2)

    # Mirroring needs a router: refused, nothing changes
    with pytest.raises(DeployError, match="replica ratio only"):
        target.set_traffic(weight=10, shadow=50)
    assert deployment(admin, namespace, "canary")["spec"]["replicas"] == 0


def test_the_split_is_put_back_when_the_stable_was_raised_without_the_hpa_holding_it(
    target: KubernetesTarget, admin: httpx.Client, namespace: str
) -> None:
    target.deploy_stable(V1, ready_timeout_s=30)
    assert target.start_canary(V2, ready_timeout_s=30)
    target.set_traffic(weight=30, shadow=0)
    assert target.follow_stable() is False  # the split already fits

    # When the stable is scaled to 9 through its scale subresource (as the HPA controller does when it acts
    # on the floor before the last one), though the HPA reads no metrics here and holds nothing
    scale = f"/apis/apps/v1/namespaces/{namespace}/deployments/{APP}-stable/scale"
    r = admin.patch(
        scale, json={"spec": {"replicas": 9}}, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert r.status_code == 200, r.text

    # Then following puts the stable back at its floor and the canary keeps its 3 pods: 30% again
    assert target.follow_stable() is True
    assert deployment(admin, namespace, "stable")["spec"]["replicas"] == 7
    assert deployment(admin, namespace, "canary")["spec"]["replicas"] == 3
    eventually(lambda: endpoint_arms(admin, namespace, APP), Counter(stable=7, canary=3))
    assert target.follow_stable() is False


def test_promote_leaves_only_the_stable_with_the_canary_digest(
    target: KubernetesTarget, admin: httpx.Client, namespace: str
) -> None:
    target.deploy_stable(V1, ready_timeout_s=30)
    assert target.start_canary(V2, ready_timeout_s=30)
    target.set_traffic(weight=50, shadow=0)

    # When promoted (twice: idempotent)
    target.promote()
    target.promote()

    # Then exactly one Deployment, the stable, serving the canary's digest and env at full size
    expect_only_stable(admin, namespace, V2)
    env = deployment(admin, namespace, "stable")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "SLIPWAY_SERVE_LOG_SAMPLE_RATE", "value": "0.5"}]
    assert deployment(admin, namespace, "stable")["metadata"]["labels"]["model-version"] == "2"
    state = target.state()
    assert (state.stable, state.canary, state.weight) == (V2, None, 0)


def test_rollback_removes_the_canary_and_leaves_the_stable_untouched(
    target: KubernetesTarget, admin: httpx.Client, namespace: str
) -> None:
    target.deploy_stable(V1, ready_timeout_s=30)
    template = deployment(admin, namespace, "stable")["spec"]["template"]
    assert target.start_canary(V2, ready_timeout_s=30)
    target.set_traffic(weight=30, shadow=0)

    # When rolled back (twice: idempotent)
    target.rollback()
    target.rollback()

    # Then the canary is gone and the stable is back at full size with the same pod template
    expect_only_stable(admin, namespace, V1)
    assert deployment(admin, namespace, "stable")["spec"]["template"] == template
    stable_sets = items(
        admin, f"/apis/apps/v1/namespaces/{namespace}/replicasets", labelSelector="arm=stable"
    )
    assert len(stable_sets) == 1  # no new revision of the stable was rolled out
    assert target.state() == DeploymentState(stable=V1, canary=None, weight=0, shadow=0, canary_ready=False)


@pytest.mark.parametrize("finish", ["rollback", "promote"])
def test_a_new_target_reconciles_after_the_controller_was_killed_mid_canary(
    finish: str,
    target: KubernetesTarget,
    control_plane: ControlPlane,
    admin: httpx.Client,
    namespace: str,
    tmp_path: Path,
) -> None:
    # Given a canary at 50% whose controller died (its target object is simply dropped)
    target.deploy_stable(V1, ready_timeout_s=30)
    assert target.start_canary(V2, ready_timeout_s=30)
    target.set_traffic(weight=50, shadow=0)

    # When a fresh target, built from a kubeconfig, finishes the release
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "kubeconfig", token=control_plane.admin_token)
    fresh = KubernetesTarget.from_kubeconfig(kubeconfig=kubeconfig, namespace=namespace, app=APP, poll_s=0.1)
    try:
        assert fresh.state().canary == V2  # read back, not remembered
        assert fresh.state().weight == 50
        getattr(fresh, finish)()
        getattr(fresh, finish)()
    finally:
        fresh.close()
        fresh.close()

    # Then no orphan canary keeps traffic
    expect_only_stable(admin, namespace, V1 if finish == "rollback" else V2)


def test_a_never_ready_canary_returns_false_within_the_deadline_and_gets_no_traffic(
    target: KubernetesTarget, admin: httpx.Client, namespace: str
) -> None:
    target.deploy_stable(V1, ready_timeout_s=30)
    broken = release("3", env={"SLIPWAY_SERVE_FAULT_NEVER_READY": "true"})

    started = time.monotonic()
    assert target.start_canary(broken, ready_timeout_s=3) is False
    assert time.monotonic() - started < 10

    # The stable kept its full size and all the traffic; the canary was removed
    expect_only_stable(admin, namespace, V1)
    assert target.state() == DeploymentState(stable=V1, canary=None, weight=0, shadow=0, canary_ready=False)


def test_a_stable_that_never_gets_ready_raises_naming_the_deployment(
    target: KubernetesTarget, admin: httpx.Client, namespace: str
) -> None:
    broken = release("4", env={"SLIPWAY_SERVE_FAULT_NEVER_READY": "true"})
    with pytest.raises(
        DeployError, match=rf"Deployment {namespace}/{APP}-stable not ready after 2 s: .*ready"
    ):
        target.deploy_stable(broken, ready_timeout_s=2)

    # Over a working stable: the old pods kept serving (maxUnavailable 0) and get their template back
    target.deploy_stable(V1, ready_timeout_s=30)
    with pytest.raises(DeployError, match="re-applied the previous stable"):
        target.deploy_stable(broken, ready_timeout_s=2)
    assert target.state().stable == V1
    expect_only_stable(admin, namespace, V1)


@pytest.mark.parametrize(
    "ref", [f"{REPO}:latest", REPO, f"{REPO}@sha256:abc", f"https://{REPO}@sha256:{'a' * 64}", None]
)
def test_an_image_not_pinned_by_digest_is_refused_before_anything_is_applied(
    ref: str | None, target: KubernetesTarget, admin: httpx.Client, namespace: str
) -> None:
    bad = ModelRelease(model_name="slipway-classifier", model_version="5", image_ref=ref)
    with pytest.raises(DeployError, match="slipway-classifier v5"):  # names what could not be deployed
        target.deploy_stable(bad, ready_timeout_s=5)
    assert names(admin, namespace) == {
        "Deployment": set(),
        "Service": set(),
        "HorizontalPodAutoscaler": set(),
    }
    target.deploy_stable(V1, ready_timeout_s=30)
    with pytest.raises(DeployError, match="slipway-classifier v5"):
        target.start_canary(bad, ready_timeout_s=5)
    assert names(admin, namespace)["Deployment"] == {f"{APP}-stable"}


def test_traffic_and_canary_need_a_stable_and_a_canary(target: KubernetesTarget) -> None:
    with pytest.raises(DeployError, match=r"no Deployment .*-stable"):
        target.start_canary(V2, ready_timeout_s=5)
    target.deploy_stable(V1, ready_timeout_s=30)
    with pytest.raises(DeployError, match="no canary Deployment"):
        target.set_traffic(weight=10, shadow=0)
    target.set_traffic(weight=0, shadow=0)  # nothing to do
    target.rollback()  # no-op without a canary
    target.promote()  # idempotent after a promote: the stable stays
    assert target.state().stable == V1
