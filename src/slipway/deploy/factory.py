"""Builds the configured deploy target (one place for the release's deploy stage and the ops CLI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.config import PipelineConfig
from slipway.settings import Settings

if TYPE_CHECKING:
    from slipway.deploy.base import DeployTarget
    from slipway.deploy.kubernetes import KubernetesTarget


def kubernetes_target(cfg: PipelineConfig) -> KubernetesTarget:
    """Blocking (reads the kubeconfig); the kubernetes target from `deploy.kubernetes` (kubeconfig relative to the config)."""
    from slipway.canary.controller import canary_lease_s
    from slipway.deploy.k8s_manifests import Autoscaling
    from slipway.deploy.kubernetes import KubernetesTarget

    k8s = cfg.deploy.kubernetes
    kubeconfig = None
    if k8s.kubeconfig is not None:
        kubeconfig = k8s.kubeconfig.expanduser()
        kubeconfig = kubeconfig if kubeconfig.is_absolute() else (cfg.base_dir / kubeconfig).resolve()
    return KubernetesTarget.from_kubeconfig(
        namespace=k8s.namespace,
        kubeconfig=kubeconfig,
        context=k8s.context,
        app=k8s.app,
        total_replicas=k8s.replicas,
        max_replicas=k8s.max_replicas,
        autoscaling=Autoscaling(requests_per_pod=k8s.requests_per_pod, cpu_utilization=k8s.cpu_utilization),
        rollout_timeout_s=k8s.rollout_timeout_s,
        traffic_timeout_s=cfg.canary.readiness_deadline_s,
        request_timeout_s=k8s.request_timeout_s,
        canary_lease_s=canary_lease_s(cfg.canary),  # a new canary pod's own lease: what the release renews to
    )


def make_target(cfg: PipelineConfig, *, settings: Settings) -> DeployTarget | None:
    """The target `deploy.target` names; None for `none`; DeployError/ConfigError when it cannot be reached."""
    if cfg.deploy.target == "none":
        return None
    if cfg.deploy.target == "kubernetes":
        return kubernetes_target(cfg)
    from slipway.deploy.local import LocalTarget

    return LocalTarget.from_config(cfg, settings=settings)
