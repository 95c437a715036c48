"""The deploy task's kubernetes path refuses, before anything is deployed, what that target cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest
from tasks.canary import _check_kubernetes, _kubernetes_target

from slipway.config import PipelineConfig
from slipway.errors import ConfigError, DeployError
from slipway.images.stage import ImageRecord
from slipway.release.packaging import ImageOutcome

DIGEST = "sha256:" + "a" * 64


def config(**canary: object) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {"deploy": {"target": "kubernetes", "kubernetes": {"replicas": 10}}, "canary": canary}
    )


def pushed(reference: str | None = f"registry.example/slipway@{DIGEST}") -> ImageOutcome:
    record = ImageRecord(
        tag="slipway:1",
        image_id="b" * 64,
        digest=DIGEST if reference else None,
        reference=reference,
        size_mb=100.0,
        builder="fake",
        build_s=1.0,
        push_s=1.0 if reference else None,
        labels={},
    )
    return ImageOutcome(status="built", record=record)


def test_the_default_policy_is_refused_naming_shadow_and_steps() -> None:
    with pytest.raises(ConfigError) as err:
        _check_kubernetes(config(), pushed())
    message = str(err.value)
    assert message.startswith("deploy.target: kubernetes: ")
    assert "canary.shadow_intervals is 1" in message
    assert "canary.steps [5, 25, 50, 100]: weight(s) [5, 25]" in message


def test_a_fitting_policy_with_a_pushed_image_passes() -> None:
    _check_kubernetes(config(shadow_intervals=0, steps=[10, 50, 100]), pushed())


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (
            ImageOutcome(status="skipped", reason="no image builder: install buildah"),
            "built none (skipped: no image builder",
        ),
        (pushed(reference=None), "image slipway:1 was not pushed"),
    ],
)
def test_an_image_without_a_digest_is_refused(image: ImageOutcome, expected: str) -> None:
    with pytest.raises(ConfigError, match="deploys images by digest") as err:
        _check_kubernetes(config(shadow_intervals=0, steps=[10, 50, 100]), image)
    assert expected in str(err.value)


def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    cfg = PipelineConfig.model_validate(
        {
            "deploy": {"target": "kubernetes", "kubernetes": {"kubeconfig": "missing.kubeconfig"}},
            "canary": {"shadow_intervals": 0, "steps": [10, 50, 100]},
            "base_dir": tmp_path,
        }
    )
    assert cfg.base_dir == tmp_path
    with pytest.raises(DeployError, match=r"kubeconfig .*missing\.kubeconfig"):
        _kubernetes_target(cfg)


def test_the_target_gets_the_configured_hpa_targets(tmp_path: Path) -> None:
    import yaml

    from slipway.deploy.factory import kubernetes_target
    from slipway.deploy.k8s_manifests import Autoscaling

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
    finally:
        target.close()
