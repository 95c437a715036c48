"""One factory builds every deploy target: what the kubernetes one takes from `deploy.kubernetes`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slipway.config import PipelineConfig
from slipway.deploy.factory import kubernetes_target
from slipway.deploy.k8s_manifests import Autoscaling
from slipway.errors import DeployError


def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    cfg = PipelineConfig.model_validate(
        {
            "deploy": {"target": "kubernetes", "kubernetes": {"kubeconfig": "missing.kubeconfig"}},
            "canary": {"shadow_intervals": 0, "steps": [10, 50, 100]},
            "base_dir": tmp_path,
        }
    )
    with pytest.raises(DeployError, match=r"kubeconfig .*missing\.kubeconfig"):
        kubernetes_target(cfg)


def test_the_target_gets_the_configured_hpa_targets(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    cfg = PipelineConfig.model_validate(
        {
            "deploy": {
                "target": "kubernetes",
                "kubernetes": {"kubeconfig": "kubeconfig", "requests_per_pod": 7.5, "cpu_utilization": None},
            },
            "base_dir": tmp_path,
        }
    )
    target = kubernetes_target(cfg)  # reads the file only: nothing is called
    try:
        assert target.autoscaling == Autoscaling(requests_per_pod=7.5, cpu_utilization=None)
        assert not target.capabilities().shadow and target.capabilities().requires_digest
    finally:
        target.close()
