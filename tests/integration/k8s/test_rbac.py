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

from slipway.deploy.kubernetes import KubernetesTarget
from slipway.errors import DeployError
from tests.integration.k8s.conftest import api_client, create_namespace
from tests.integration.k8s.control_plane import ControlPlane
from tests.integration.k8s.observe import names
from tests.integration.k8s.test_kubernetes_target import APP, V1, V2, expect_only_stable

pytestmark = [pytest.mark.integration, pytest.mark.k8s]

RBAC_YAML = Path(__file__).resolve().parents[3] / "infra" / "k8s" / "rbac.yaml"
NAMESPACE = "slipway"  # the namespace rbac.yaml is rendered for


def apply_rbac(admin: httpx.Client) -> None:
    """Create the ServiceAccount, Role and RoleBinding exactly as infra/k8s/rbac.yaml has them."""
    paths = {
        "ServiceAccount": f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
        "Role": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/roles",
        "RoleBinding": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/rolebindings",
    }
    for obj in yaml.safe_load_all(RBAC_YAML.read_text()):
        assert obj["metadata"]["namespace"] == NAMESPACE
        r = admin.post(paths[obj["kind"]], json=obj)
        assert r.status_code in (201, 409), r.text


def service_account_token(admin: httpx.Client, name: str, *, timeout_s: float = 20.0) -> str:
    """The token 1.20's token controller puts in the ServiceAccount's Secret."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sa = admin.get(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{name}").json()
        for ref in sa.get("secrets") or []:
            secret: dict[str, Any] = admin.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{ref['name']}").json()
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
