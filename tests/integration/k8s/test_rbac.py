"""The deployer's least-privilege Role (infra/k8s/rbac.yaml) is enough for every target call, and not more.

The whole release flow runs with the `slipway-deployer` ServiceAccount's own token against a real
API server with RBAC on; then the same token is refused what the deployer never needs.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from slipway.data.reference import Reference
from slipway.deploy.k8s_metrics import PodMetricsSource
from slipway.deploy.kubernetes import KubernetesTarget
from slipway.errors import DeployError
from slipway.locks.base import Holder
from tests.integration.k8s.conftest import api_client, create_namespace
from tests.integration.k8s.control_plane import ControlPlane
from tests.integration.k8s.observe import names
from tests.integration.k8s.process_kubelet import ProcessKubelet, ServiceProxy, wait_for
from tests.integration.k8s.test_kubernetes_target import APP, V1, V2, expect_only_stable
from tests.integration.k8s.test_pod_metrics import APP as TINY_APP
from tests.integration.k8s.test_pod_metrics import READY_S, load_through, make_target
from tests.integration.k8s.test_pod_metrics import release as tiny_release

pytestmark = [pytest.mark.integration, pytest.mark.k8s]

RBAC_YAML = Path(__file__).resolve().parents[3] / "infra" / "k8s" / "rbac.yaml"
NAMESPACE = "slipway"  # the namespace rbac.yaml is rendered for


def apply_rbac(admin: httpx.Client, *, namespace: str = NAMESPACE) -> None:
    """Create the ServiceAccount, Role and RoleBinding exactly as infra/k8s/rbac.yaml has them (moved to `namespace`)."""
    paths = {
        "ServiceAccount": f"/api/v1/namespaces/{namespace}/serviceaccounts",
        "Role": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        "RoleBinding": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
    }
    for obj in yaml.safe_load_all(RBAC_YAML.read_text()):
        assert obj["metadata"]["namespace"] == NAMESPACE
        obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects") or []:
            subject["namespace"] = namespace
        r = admin.post(paths[obj["kind"]], json=obj)
        assert r.status_code in (201, 409), r.text


def service_account_token(
    admin: httpx.Client, name: str, *, namespace: str = NAMESPACE, timeout_s: float = 20.0
) -> str:
    """The token 1.20's token controller puts in the ServiceAccount's Secret."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sa = admin.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}").json()
        for ref in sa.get("secrets") or []:
            secret: dict[str, Any] = admin.get(f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}").json()
            token = (secret.get("data") or {}).get("token")
            if token:
                return base64.b64decode(token).decode()
        time.sleep(0.2)
    raise AssertionError(f"no token Secret for ServiceAccount {name} after {timeout_s} s")


@pytest.fixture(scope="module")
def deployer_token(admin: httpx.Client) -> str:
    """The slipway-deployer ServiceAccount's token in namespace `slipway`, RBAC from infra/k8s/rbac.yaml."""
    create_namespace(admin, NAMESPACE)
    create_namespace(admin, "other-team")
    apply_rbac(admin)
    return service_account_token(admin, "slipway-deployer")


@pytest.fixture()
def deployer(control_plane: ControlPlane, deployer_token: str) -> Iterator[httpx.Client]:
    """An httpx client with the deployer's token."""
    with control_plane.http(token=deployer_token) as http:
        yield http


def test_the_role_is_enough_for_the_whole_release_flow(
    control_plane: ControlPlane, admin: httpx.Client, deployer_token: str
) -> None:
    client = api_client(control_plane, token=deployer_token)
    target = KubernetesTarget(
        api_client=client,
        namespace=NAMESPACE,
        app=APP,
        rollout_timeout_s=60,
        traffic_timeout_s=30,
        poll_s=0.1,
    )
    try:
        lease, holder = target.release_lock(), Holder(what="rbac test release")
        assert lease.try_acquire(holder) is None and lease.renew(holder)  # one release at a time
        target.deploy_stable(V1, ready_timeout_s=30)
        assert target.start_canary(V2, ready_timeout_s=30)
        target.set_traffic(weight=50, shadow=0)
        target.rollback()
        expect_only_stable(admin, NAMESPACE, V1)

        assert target.start_canary(V2, ready_timeout_s=30)
        target.set_traffic(weight=30, shadow=0)
        target.promote()
        target.promote()
        expect_only_stable(admin, NAMESPACE, V2)
        assert target.state().stable == V2
        lease.release(holder)
        assert lease.holder() is None
    finally:
        client.close()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets", None),
        ("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps", None),
        (
            "POST",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/roles",
            {"metadata": {"name": "x"}},
        ),
        ("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", {"metadata": {"name": "x"}}),
        ("DELETE", f"/api/v1/namespaces/{NAMESPACE}/services/{APP}", None),
        (
            "PUT",
            f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{APP}-stable",
            {"metadata": {"name": "x"}},
        ),
        ("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{APP}-stable/scale", None),
        ("GET", "/apis/apps/v1/namespaces/other-team/deployments", None),
        ("GET", "/apis/apps/v1/deployments", None),
        ("GET", "/api/v1/namespaces", None),
        ("GET", "/api/v1/nodes", None),
        # the pod proxy: GET (scrape /metrics) and POST (renew a canary's lease) in its own namespace only
        ("PUT", f"/api/v1/namespaces/{NAMESPACE}/pods/x:8080/proxy/metrics", None),
        ("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/x:8080/proxy/metrics", None),
        ("POST", "/api/v1/namespaces/other-team/pods/x:8080/proxy/lease", {"ttl_s": 1}),
        ("GET", "/api/v1/namespaces/other-team/pods/x:8080/proxy/metrics", None),
        ("GET", "/api/v1/namespaces/other-team/services/x:80/proxy/metrics", None),
    ],
)
def test_the_role_grants_nothing_more(
    deployer: httpx.Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    r = deployer.request(method, path, json=body)
    assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text[:200]}"
    assert "slipway-deployer" in r.json()["message"]


def test_a_target_in_another_namespace_is_refused(
    control_plane: ControlPlane, deployer_token: str, admin: httpx.Client
) -> None:
    client = api_client(control_plane, token=deployer_token)
    try:
        target = KubernetesTarget(api_client=client, namespace="other-team", app=APP)
        with pytest.raises(DeployError, match="HTTP 403"):
            target.deploy_stable(V1, ready_timeout_s=5)
    finally:
        client.close()
    assert names(admin, "other-team") == {
        "Deployment": set(),
        "Service": set(),
        "HorizontalPodAutoscaler": set(),
    }


def test_the_role_is_enough_to_scrape_every_pod_for_the_canary_analysis(
    control_plane: ControlPlane, admin: httpx.Client, process_kubelet: ProcessKubelet, ref: Reference
) -> None:
    # Given the Role of rbac.yaml in a namespace whose pods run real servers
    namespace = process_kubelet.namespace
    apply_rbac(admin, namespace=namespace)
    token = service_account_token(admin, "slipway-deployer", namespace=namespace)
    client = api_client(control_plane, token=token)
    try:
        # When the deployer's own token deploys both arms and scrapes them through the pod proxy
        target = make_target(client, namespace)
        target.deploy_stable(tiny_release("1"), ready_timeout_s=READY_S)
        assert target.start_canary(tiny_release("2"), ready_timeout_s=READY_S)
        source = PodMetricsSource(target)
        target.on_traffic_set(source.rebaseline)
        target.set_traffic(weight=50, shadow=0)
        with ServiceProxy(admin, namespace=namespace, service=TINY_APP, seed=4) as proxy:
            wait_for(lambda: len(proxy.addresses) == 4, timeout_s=30, what="4 endpoints")
            stats = load_through(proxy, ref.holdout_xy()[0], seconds=3.0)
        obs = source.observe(weight=50)

        # Then every Ready pod was read: the windows hold every answer the client saw, by arm, and no more
        # requests than were sent (a request a server counted may still reach the client as a 502 or a
        # timeout on a loaded machine; test_pod_metrics checks the exact count)
        assert not obs.stale, obs.source_error
        assert obs.stable.requests >= stats.versions.get("1", 0) > 0, (stats, proxy.failures[:5])
        assert obs.canary.requests >= stats.versions.get("2", 0) > 0, (stats, proxy.failures[:5])
        assert obs.stable.requests + obs.canary.requests <= stats.sent, (stats, proxy.failures[:5])
        target.rollback()
    finally:
        client.close()


def test_a_canary_whose_release_stops_renewing_its_lease_leaves_the_service_on_its_own(
    control_plane: ControlPlane, admin: httpx.Client, process_kubelet: ProcessKubelet, ref: Reference
) -> None:
    # Given a canary at 50% whose pods' traffic lease the deployer's own token renews through the pod proxy
    namespace = process_kubelet.namespace
    apply_rbac(admin, namespace=namespace)
    client = api_client(
        control_plane, token=service_account_token(admin, "slipway-deployer", namespace=namespace)
    )
    rows = ref.holdout_xy()[0]
    try:
        target = make_target(client, namespace)
        target.deploy_stable(tiny_release("1"), ready_timeout_s=READY_S)
        assert target.start_canary(tiny_release("2"), ready_timeout_s=READY_S)
        target.hold_canary(ttl_s=120)
        target.set_traffic(weight=50, shadow=0)
        target.hold_canary(ttl_s=120)  # what the controller does each window
        with ServiceProxy(admin, namespace=namespace, service=TINY_APP, seed=5) as proxy:
            wait_for(lambda: len(proxy.addresses) == 4, timeout_s=30, what="4 endpoints")
            assert load_through(proxy, rows, seconds=2.0).versions.get("2", 0) > 0

            # When its release renews one last time, for 2 s, and then is gone
            target.hold_canary(ttl_s=2)
            renewed = time.monotonic()
            assert not target.state().canary_unattended

            # Then the canary's pods turn not Ready on their own and leave the Service: the stable answers all
            wait_for(
                lambda: len(proxy.addresses) == 2, timeout_s=60, what="the canary's pods out of the Service"
            )
            print(
                f"\ncanary out of the Service {time.monotonic() - renewed:.1f} s after its last 2 s renewal"
            )
            stats = load_through(proxy, rows, seconds=2.0)
            assert set(stats.versions) == {"1"} and stats.versions["1"] > 0, (stats, proxy.failures[:5])
        state = target.state()
        assert (state.canary is not None, state.canary_unattended, state.weight) == (True, True, 0)
        target.rollback()  # what `slipway rollback` (or the next release) does with it
        assert target.state().canary is None
    finally:
        client.close()
