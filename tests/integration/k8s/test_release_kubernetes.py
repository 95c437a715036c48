"""The release flow with `deploy.target: kubernetes` on a real API server whose pods run the released servers.

Given a kubeconfig for the API server, the fake image builder pushing by digest, and the process
kubelet running each pod's bundle (found by the pod's model version under SLIPWAY_HOME), when
releases run, then the first is deployed as the stable, a NaN canary is rolled back with the
champion still serving, and a good challenger is canaried on live load and promoted.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from slipway.config import PipelineConfig
from slipway.data.batch_io import write_batch
from slipway.data.generate import make_batch
from slipway.data.reference import Reference
from slipway.deploy.loadgen import LoadGenerator
from tests.integration.conftest import REPO
from tests.integration.k8s.control_plane import ControlPlane
from tests.integration.k8s.observe import endpoint_arms, eventually, get, names, serving_pods
from tests.integration.k8s.process_kubelet import ProcessKubelet, ServiceProxy, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.slow]

APP = "bc-serve"
TOTAL = 4
MODEL = "breast-cancer-mlp"


def bundle_finder(home: Path) -> Any:
    """The pod's bundle: the folder under `home` whose model.json has the pod's model version."""

    def find(pod: dict[str, Any]) -> Path | None:
        version = pod["metadata"]["labels"].get("model-version")
        for meta in sorted(home.rglob("model.json")):
            doc = json.loads(meta.read_text())
            if doc.get("model_version") == version and (meta.parent / "model.onnx").is_file():
                return meta.parent
        return None

    return find


def expect_serving(admin: httpx.Client, namespace: str, image: str) -> None:
    """Only the stable (all pods, `image`), the Service and the HPA."""
    assert names(admin, namespace) == {
        "Deployment": {f"{APP}-stable"},
        "Service": {APP},
        "HorizontalPodAutoscaler": {f"{APP}-stable"},
    }
    stable = get(admin, f"/apis/apps/v1/namespaces/{namespace}/deployments/{APP}-stable")
    assert stable["spec"]["template"]["spec"]["containers"][0]["image"] == image
    eventually(lambda: serving_pods(admin, namespace), Counter(stable=TOTAL), timeout_s=60)
    eventually(lambda: endpoint_arms(admin, namespace, APP), Counter(stable=TOTAL), timeout_s=60)


def test_releases_on_the_kubernetes_target(
    control_plane: ControlPlane,
    admin: httpx.Client,
    process_kubelet: ProcessKubelet,
    prefect_api: str,
    ref: Reference,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.release import run_release

    namespace, home = process_kubelet.namespace, tmp_path / "home"
    process_kubelet.bundles = bundle_finder(home)
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "kubeconfig", token=control_plane.admin_token)
    raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
    raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
    raw["deploy"] = {
        "target": "kubernetes",
        "ready_timeout_s": 120,
        "kubernetes": {
            "namespace": namespace,
            "app": APP,
            "kubeconfig": kubeconfig.name,  # relative to the config file
            "replicas": TOTAL,
            "rollout_timeout_s": 120,
            "request_timeout_s": 5,
        },
    }
    raw["canary"] |= {
        "shadow_intervals": 0,
        "steps": [25, 50, 100],
        "interval_s": 4,
        "step_min_samples": 20,
        "min_samples_per_arm": 100,
        "shift_min_samples": 30,
        "readiness_deadline_s": 120,
        "deadline_s": 360,
    }
    config = tmp_path / "slipway.yaml"
    config.write_text(yaml.safe_dump(raw))
    PipelineConfig.model_validate(raw)  # the test's own config is valid
    monkeypatch.setenv("SLIPWAY_HOME", str(home))
    monkeypatch.setenv("SLIPWAY_IMAGE_BUILDER", "fake")
    monkeypatch.setenv("SLIPWAY_IMAGE_REGISTRY", "127.0.0.1:5000/slipway")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SLIPWAY_MLFLOW_TRACKING_URI", raising=False)

    def batch(seed: int) -> str:
        path = tmp_path / f"batch-{seed}.csv"
        write_batch(make_batch(ref, rows=300, seed=seed), path)
        return str(path)

    # The first release has no champion: deployed as the stable, by digest
    first = run_release(data=batch(900), config_path=str(config))
    assert first["decision"] == "promoted", first["reasons"]
    first_image = first["image"]["record"]["reference"]
    assert "@sha256:" in first_image
    expect_serving(admin, namespace, first_image)

    with ServiceProxy(admin, namespace=namespace, service=APP, seed=6) as proxy:
        wait_for(lambda: len(proxy.addresses) == TOTAL, timeout_s=30, what="the stable's endpoints")
        load = LoadGenerator(url=proxy.url, rows=ref.holdout_xy()[0], rate_rps=40.0, seed=8)
        load.start()
        try:
            # A canary answering NaN is rolled back; the champion keeps serving
            bad = run_release(data=batch(910), config_path=str(config), canary_fault="nan")
            assert bad["decision"] == "rolled_back", bad["reasons"]
            assert bad["deploy"]["stable_version"] == first["model_version"]
            assert "nonfinite" in bad["deploy"]["reason"]
            expect_serving(admin, namespace, first_image)

            # A good challenger is canaried on the live load and promoted
            good = run_release(data=batch(950), config_path=str(config))
        finally:
            stats = load.stop(timeout_s=15)
    assert good["decision"] == "promoted", good["reasons"][-3:]
    assert good["deploy"]["canary"]["peak_weight"] == 100
    decisions = good["deploy"]["canary"]["decisions"]
    assert [d["weight"] for d in decisions][:2] == [25, 50]
    windows = [d["window"] for d in decisions]
    assert all(not w["stale"] and w["n_canary"] > 0 and w["n_stable"] > 0 for w in windows), windows
    assert sum(w["n_canary"] for w in windows) >= 100  # min_samples_per_arm, read off the pods
    expect_serving(admin, namespace, good["image"]["record"]["reference"])
    assert stats.statuses.get(200, 0) > 0 and set(stats.versions) <= {
        first["model_version"],
        bad["model_version"],
        good["model_version"],
    }
