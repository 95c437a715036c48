"""Deploy task: canary the registered version on the configured target, then promote or roll back."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from slipway.canary.clock import RealClock
from slipway.canary.controller import CanaryOutcome
from slipway.config import PipelineConfig
from slipway.data.reference import load_reference
from slipway.deploy.base import DeployTarget, MetricsSource, ModelRelease
from slipway.errors import ConfigError
from slipway.optimize.stage import OptimizationOutcome
from slipway.registry.base import ModelRegistry, VersionInfo
from slipway.registry.factory import make_registry
from slipway.release.canary_stage import DeployOutcome, deploy_release, fault_env, serve_env
from slipway.release.packaging import ImageOutcome, make_bundle
from slipway.release.steps import ReleaseInputs, release_key
from slipway.settings import Settings


def _local_traffic(
    rows: np.ndarray, rate_rps: float
) -> Callable[[DeployTarget], contextlib.AbstractContextManager[None]]:
    from slipway.deploy.loadgen import LoadGenerator
    from slipway.deploy.local import LocalTarget

    @contextlib.contextmanager
    def drive(target: DeployTarget) -> Iterator[None]:
        url = target.router_url if isinstance(target, LocalTarget) else None
        if url is None:
            yield
            return
        gen = LoadGenerator(url=url, rows=rows, rate_rps=rate_rps)
        gen.start()
        try:
            yield
        finally:
            gen.stop(timeout_s=10)

    return drive


def _check_kubernetes(cfg: PipelineConfig, image: ImageOutcome) -> None:
    """ConfigError naming every field that keeps this release off the kubernetes target (before anything is deployed)."""
    from slipway.deploy.kubernetes import policy_problems

    problems = policy_problems(
        steps=cfg.canary.steps,
        shadow_intervals=cfg.canary.shadow_intervals,
        total_replicas=cfg.deploy.kubernetes.replicas,
    )
    if image.record is None:
        problems.append(
            f"the kubernetes target deploys images by digest, but the image stage built none "
            f"({image.status}: {image.reason or 'no reason given'})"
        )
    elif image.record.reference is None:
        problems.append(
            f"the kubernetes target deploys images by digest, but image {image.record.tag} was not pushed "
            "to a registry (configure the image registry)"
        )
    if problems:
        raise ConfigError("deploy.target: kubernetes: " + "; ".join(problems))


def _kubernetes_target(cfg: PipelineConfig) -> tuple[DeployTarget, MetricsSource]:
    """The kubernetes target from deploy.kubernetes, and its pod-metrics source (windows restart on every traffic change)."""
    from slipway.deploy.factory import kubernetes_target
    from slipway.deploy.k8s_metrics import PodMetricsSource

    target = kubernetes_target(cfg)
    source = PodMetricsSource(target)
    target.on_traffic_set(source.rebaseline)
    return target, source


@task(name="canary-deploy", cache_policy=NO_CACHE, timeout_seconds=3600)
def canary_deploy(
    inputs: ReleaseInputs,
    outcome: OptimizationOutcome,
    version: VersionInfo,
    image: ImageOutcome,
    fault: str | None,
) -> DeployOutcome:
    """Canary -> promote or roll back on the configured target; every decision becomes a table row artifact."""
    cfg = inputs.config()
    settings = Settings()
    kubernetes = cfg.deploy.target == "kubernetes"
    if kubernetes:
        _check_kubernetes(cfg, image)
    ref = load_reference(cfg.data)
    bundle = make_bundle(
        outcome,
        dst=settings.work_path() / f"bundle-{release_key(inputs)[:16]}-{version.version}",
        model_name=version.name,
        model_version=version.version,
        ref=ref,
    )
    target: DeployTarget
    metrics: MetricsSource
    if kubernetes:
        target, metrics = _kubernetes_target(cfg)
    else:
        from slipway.deploy.local import LocalTarget

        target = metrics = LocalTarget.from_config(cfg, settings=settings)
    outcomes: list[CanaryOutcome] = []

    release = ModelRelease(
        model_name=version.name,
        model_version=version.version,
        bundle_dir=bundle,
        image_ref=image.record.reference if image.record else None,
        env=serve_env(cfg.serving) | fault_env(fault),
    )
    try:
        deployed = deploy_release(
            registry=make_registry(settings, cfg),
            target=target,
            metrics=metrics,
            cfg=cfg,
            version=version,
            release=release,
            ref=ref,
            clock=RealClock(),
            # on Kubernetes the traffic is the cluster's own: nothing is replayed
            traffic=None if kubernetes else _local_traffic(ref.holdout_xy()[0], cfg.deploy.load_rps),
            on_outcome=outcomes.append,
            settings=settings,
        )
    finally:
        target.close()
    if outcomes:
        _publish(outcomes[0], version=version, settings=settings, registry=make_registry(settings, cfg))
    create_markdown_artifact(
        key="canary",
        markdown=f"# Canary {deployed.result}\n\n* {deployed.reason}\n* serving now: version {deployed.stable_version}",
        description="Canary outcome",
    )
    return deployed


def _publish(
    outcome: CanaryOutcome, *, version: VersionInfo, settings: Settings, registry: ModelRegistry
) -> None:
    """Every decision as a table artifact, the deciding checks as markdown, the PNG plot, all on the version too."""
    from slipway.canary.report import decision_rows, plot_png, render_markdown, version_tags

    folder = settings.reports_path()
    folder.mkdir(parents=True, exist_ok=True)
    png_path = folder / f"canary-{version.name}-v{version.version}.png"
    png = plot_png(
        outcome.timeline, title=f"{version.name} v{version.version}: {outcome.result}", path=png_path
    )
    create_table_artifact(
        key="canary-decisions", table=decision_rows(outcome.decisions), description="Every canary decision"
    )
    create_markdown_artifact(
        key="canary-analysis",
        markdown=f"{render_markdown(outcome)}\n\n[plot: weight, error rate, p99, shift]({png_path.as_uri()})",
        description="Canary analysis",
    )
    registry.annotate(
        model_name=version.name,
        version=version.version,
        tags=version_tags(outcome, prefix="slipway.canary."),
        documents={"slipway/canary.json": outcome.to_dict(), "slipway/canary.png": png},
    )
