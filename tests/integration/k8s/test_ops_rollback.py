"""Audited rollback on the kubernetes target: a real kube-apiserver + controller-manager 1.20.2 (pods made Ready
by the fake kubelet). Given two promotions, when the operator rolls back, then the stable Deployment runs the
previous champion's image digest and the alias follows; a refused or failed rollback changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest

from slipway.deploy.base import ModelRelease
from slipway.deploy.kubernetes import KubernetesTarget
from slipway.errors import DeployError
from slipway.names import CHAMPION
from slipway.ops.rollback import RollbackRefused, RollbackResult, rollback_serving
from slipway.registry.base import Registration, VersionInfo
from slipway.registry.fake import InMemoryRegistry
from tests.integration.k8s.observe import get

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

pytestmark = [pytest.mark.integration, pytest.mark.k8s]

APP = "slipway-serve"
MODEL = "slipway-classifier"
REPO = "127.0.0.1:5000/slipway/slipway-serve"


def digest_ref(version: str) -> str:
    return f"{REPO}@sha256:{version[0] * 64}"


@pytest.fixture()
def target(admin_api_client: ApiClient, namespace: str) -> Iterator[KubernetesTarget]:
    t = KubernetesTarget(
        api_client=admin_api_client,
        namespace=namespace,
        app=APP,
        total_replicas=4,
        rollout_timeout_s=60,
        traffic_timeout_s=30,
        poll_s=0.1,
    )
    yield t
    t.close()


@pytest.fixture()
def registry() -> InMemoryRegistry:
    """Versions 1-3 with image digests; 1 then 2 promoted (champion 2, previous 1); 3 never promoted."""
    reg = InMemoryRegistry()
    for v in ("1", "2", "3"):
        reg.register(
            Registration(
                model_name=MODEL,
                module=None,
                input_example=np.zeros((1, 30), dtype=np.float32),
                params={},
                metrics={},
                tags={"slipway.image.reference": digest_ref(v)},
                release_key=f"key-{v}",
            )
        )
    reg.promote(model_name=MODEL, version="1", reason="first")
    reg.promote(model_name=MODEL, version="2", reason="canary passed")
    return reg


def by_digest(v: VersionInfo) -> ModelRelease:
    return ModelRelease(
        model_name=v.name, model_version=v.version, image_ref=v.tags["slipway.image.reference"]
    )


def stable_image(admin: httpx.Client, namespace: str) -> str:
    dep = get(admin, f"/apis/apps/v1/namespaces/{namespace}/deployments/{APP}-stable")
    return str(dep["spec"]["template"]["spec"]["containers"][0]["image"])


def roll(
    registry: InMemoryRegistry,
    target: KubernetesTarget,
    tmp_path: Path,
    to: str | None,
    timeout_s: float = 60,
) -> RollbackResult:
    return rollback_serving(
        registry=registry,
        target=target,
        model_name=MODEL,
        to_version=to,
        reason="error budget burnt",
        actor="oncall",
        release_for=by_digest,
        audit_path=tmp_path / "audit.jsonl",
        ready_timeout_s=timeout_s,
    )


def champion(registry: InMemoryRegistry) -> str:
    got = registry.get_alias(model_name=MODEL, alias=CHAMPION)
    assert got is not None
    return got.version


def test_rollback_redeploys_the_previous_champion_by_digest(
    registry: InMemoryRegistry, target: KubernetesTarget, admin: httpx.Client, namespace: str, tmp_path: Path
) -> None:
    target.deploy_stable(by_digest(registry.get_version(model_name=MODEL, version="2")), ready_timeout_s=60)

    result = roll(registry, target, tmp_path, None)

    assert (result.from_version, result.to_version, result.target) == ("2", "1", "kubernetes")
    assert stable_image(admin, namespace) == digest_ref("1")
    state = target.state()
    assert state.stable is not None and state.stable.model_version == "1" and state.canary is None
    assert champion(registry) == "1"
    assert roll(registry, target, tmp_path, "1").noop  # idempotent


def test_refused_and_failed_rollbacks_leave_the_deployment_and_alias(
    registry: InMemoryRegistry, target: KubernetesTarget, admin: httpx.Client, namespace: str, tmp_path: Path
) -> None:
    target.deploy_stable(by_digest(registry.get_version(model_name=MODEL, version="2")), ready_timeout_s=60)

    with pytest.raises(RollbackRefused, match="version 3 of model slipway-classifier was never promoted"):
        roll(registry, target, tmp_path, "3")
    with pytest.raises(DeployError, match="champion stays version 2"):
        roll(registry, target, tmp_path, "1", timeout_s=0.001)

    assert champion(registry) == "2"
    assert stable_image(admin, namespace) == digest_ref("2")  # the champion keeps serving
    state = target.state()
    assert state.stable is not None and state.stable.model_version == "2"
    assert "slipway.rollback.id" not in registry.get_version(model_name=MODEL, version="1").tags
    assert not (tmp_path / "audit.jsonl").exists()
