"""Thin tasks around `slipway.monitoring`: judge a window, record it, advance the drift episode."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from slipway.config import load_config
from slipway.features.joined import project_reference
from slipway.monitoring.episode import EpisodeStep
from slipway.monitoring.evidence import advance_episode, monitor_artifacts, record_report
from slipway.monitoring.run import MonitorResult, run_monitor
from slipway.registry.factory import make_registry
from slipway.release.outcome import Artifact
from slipway.settings import Settings


@task(name="monitor-window", cache_policy=NO_CACHE, timeout_seconds=1800)
def judge_window(
    config_path: str, since: str | None, data: str | None, labels: str | None
) -> tuple[MonitorResult, tuple[Artifact, ...]]:
    """One window judged against the champion's reference, its report recorded on the champion's run."""
    settings, cfg = Settings(), load_config(Path(config_path))
    registry = make_registry(settings, cfg)
    target = project_reference(cfg, settings=settings).target
    result = run_monitor(
        settings=settings,
        cfg=cfg,
        registry=registry,
        target=target,
        data=Path(data) if data else None,
        since=since,
        labels=Path(labels) if labels else None,
    )
    return result, monitor_artifacts(result, record_report(registry, result))


@task(name="monitor-episode", cache_policy=NO_CACHE, timeout_seconds=300)
def episode(config_path: str, result: MonitorResult) -> EpisodeStep:
    """The drift-episode rules on the champion's tags: whether this alarm starts a retrain."""
    settings, cfg = Settings(), load_config(Path(config_path))
    return advance_episode(make_registry(settings, cfg), result)
