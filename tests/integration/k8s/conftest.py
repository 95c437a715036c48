"""Fixtures: one real control plane (etcd + kube-apiserver + kube-controller-manager 1.20.2) and fake kubelet per session.

Skipped with the reason when the binaries are missing: `sudo bash infra/ci/k8s.sh` builds them
(~10 min once, cached in /var/cache/slipway/k8s/v1.20.2; .ci/run does it before `make test`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.integration.k8s.control_plane import ControlPlane, k8s_bin, missing_binaries
from tests.integration.k8s.fake_kubelet import FakeKubelet
from tests.integration.k8s.metrics_adapter import MetricsAdapter
from tests.integration.k8s.process_kubelet import ProcessKubelet, network_unavailable

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from slipway.data.reference import Reference

# Namespaces whose pods a ProcessKubelet runs as real server processes (the fake kubelet skips them).
PROCESS_NAMESPACES: set[str] = set()
# Of those, the namespaces whose pods' request rates the test metrics adapter serves (the HPA tests'): elsewhere an
# HPA has no metric and holds still, so a test that counts requests per pod never sees the HPA move its pods.
METERED_NAMESPACES: set[str] = set()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A running control plane for the session (RBAC on, admin token), its fake kubelet started."""
    missing = missing_binaries()
    if missing:
        pytest.skip(
            f"no Kubernetes binaries ({', '.join(missing)} missing in {k8s_bin()}): "
            "run `sudo bash infra/ci/k8s.sh` (builds 1.20.2 once, ~10 min) or set SLIPWAY_K8S_BIN"
        )
    plane = ControlPlane(workdir=tmp_path_factory.mktemp("k8s"))
    try:
        plane.start()
        kubelet = FakeKubelet(plane.http(), skip_namespaces=PROCESS_NAMESPACES)
        kubelet.start()
        yield plane
        kubelet.stop()
        assert not kubelet.errors, f"fake kubelet errors: {kubelet.errors[:3]}"
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def metrics_adapter(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MetricsAdapter]:
    """The test metrics adapter, registered as custom.metrics.k8s.io: the request rate of the pods of the
    namespaces in METERED_NAMESPACES (a test adds its own)."""
    adapter = MetricsAdapter(
        control_plane.http(),
        namespaces=METERED_NAMESPACES,
        workdir=tmp_path_factory.mktemp("metrics-adapter"),
    )
    adapter.start()
    try:
        yield adapter
    finally:
        adapter.stop()
    assert not adapter.errors, f"metrics adapter errors: {adapter.errors[:3]}"


@pytest.fixture(scope="session")
def admin(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    """An httpx client with the admin token (to arrange and inspect, independent of the code under test)."""
    with control_plane.http() as http:
        yield http


def api_client(plane: ControlPlane, *, token: str) -> ApiClient:
    """An official-client ApiClient on the control plane with a bearer token."""
    from kubernetes.client import ApiClient, Configuration

    configuration = Configuration(
        host=plane.host, api_key={"BearerToken": token}, api_key_prefix={"BearerToken": "Bearer"}
    )
    configuration.ssl_ca_cert = str(plane.ca_file)
    return ApiClient(configuration)


def create_namespace(admin: httpx.Client, name: str) -> str:
    """Create a namespace and wait for its `default` ServiceAccount (pods are refused before it exists)."""
    r = admin.post(
        "/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    assert r.status_code in (201, 409), r.text
    for _ in range(150):
        if admin.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").status_code == 200:
            return name
        time.sleep(0.1)
    raise AssertionError(f"namespace {name}: no default ServiceAccount after 15 s")


@pytest.fixture()
def namespace(admin: httpx.Client) -> str:
    """A fresh namespace for one test."""
    return create_namespace(admin, f"t-{uuid.uuid4().hex[:8]}")


@pytest.fixture()
def admin_api_client(control_plane: ControlPlane) -> Iterator[ApiClient]:
    """An official-client ApiClient with the admin token."""
    client = api_client(control_plane, token=control_plane.admin_token)
    yield client
    client.close()


PROCESS_REPO = "127.0.0.1:5000/slipway/tiny"


def process_image(version: str) -> str:
    """The image reference a ProcessKubelet maps to the tiny bundle of `version` (its digest: the digit repeated)."""
    return f"{PROCESS_REPO}@sha256:{version[0] * 64}"


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory: pytest.TempPathFactory, ref: Reference) -> dict[str, Path]:
    """Serving bundles of one tiny linear model as versions 1 and 2, by image reference."""
    import numpy as np

    from slipway.serving.bundle import write_bundle
    from tests.support.onnx_models import linear_onnx

    root = tmp_path_factory.mktemp("k8s-bundles").resolve()
    rng = np.random.default_rng(0)
    onnx_path = linear_onnx(
        root / "src" / "model.onnx", weights=rng.normal(size=(30, 2)) / 10, bias=np.array([0.1, -0.1])
    )
    return {
        process_image(version): write_bundle(
            root / f"v{version}",
            onnx_path=onnx_path,
            model_name="tiny",
            model_version=version,
            features=list(ref.features),
            classes=[0, 1],
        )
        for version in ("1", "2")
    }


@pytest.fixture()
def process_kubelet(
    control_plane: ControlPlane,
    admin: httpx.Client,
    tiny_bundles: dict[str, Path],
    tmp_path: Path,
) -> Iterator[ProcessKubelet]:
    """A fresh namespace whose pods RUN as local server processes on their own non-loopback IPs."""
    reason = network_unavailable()
    if reason:
        pytest.skip(reason)
    namespace = f"p-{uuid.uuid4().hex[:8]}"
    PROCESS_NAMESPACES.add(namespace)  # before any pod exists in it: the fake kubelet keeps off
    create_namespace(admin, namespace)
    kubelet = ProcessKubelet(
        control_plane.http(), namespace=namespace, bundles=tiny_bundles, workdir=tmp_path
    )
    kubelet.start()
    try:
        yield kubelet
    finally:
        kubelet.stop()
        admin.delete(f"/api/v1/namespaces/{namespace}")
    assert not kubelet.errors, f"process kubelet errors: {kubelet.errors[:3]}"
