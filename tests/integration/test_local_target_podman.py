"""The local target in podman mode: stable and canary are containers of real images, pulled by digest.

Given images of v1 and v2 built and pushed to the loopback registry, a stable v1 container behind the
router and a canary v2 container, when load runs, then the router's windows show the split; promote,
rollback, a killed orchestrator and stop_all leave exactly the expected containers (`podman ps`).
The release flow's deploy stage runs in podman mode too (real image stage, champion by its digest tag).
Needs buildah, podman + runc, the base image and a registry (`make images-setup`); skips otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from slipway.config import PipelineConfig
from slipway.data.batch_io import write_batch
from slipway.data.generate import make_batch
from slipway.data.reference import Reference, load_reference
from slipway.deploy.base import DeploymentState, ModelRelease
from slipway.deploy.local import LocalTarget
from slipway.deploy.processes import alive
from slipway.settings import Settings
from tests.contract.test_deploy_targets import bundles, podman_images, podman_root
from tests.integration.test_local_target import (
    answered,
    assert_live_split,
    probe,
    promote_under_load,
    restarted,
    run_load,
)
from tests.support.images import REPO, Podman, builder, settings
from tests.support.podman import containers, runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.image_tools]

# module fixtures shared with the contract suite and the serving-image test
__all__ = ["builder", "bundles", "podman_images", "podman_root", "settings"]

READY_S = 60.0
FLOW_MODEL = "breast-cancer-mlp"
STOP_GRACE_S = 20.0


@pytest.fixture(scope="module")
def rows(ref: Reference) -> np.ndarray:
    return ref.holdout_xy()[0]


@pytest.fixture
def images(bundles: dict[str, Path], podman_images: dict[str, str]) -> dict[str, ModelRelease]:
    """Version -> the release as the deploy stage passes it: bundle and image digest."""
    return {v: ModelRelease("tiny", v, bundle_dir=bundles[v], image_ref=podman_images[v]) for v in ("1", "2")}


@pytest.fixture
def podman(podman_root: Path) -> Podman:
    return Podman(podman_root)


@pytest.fixture
def target(
    tmp_path: Path, podman_root: Path, settings: Settings, images: dict[str, ModelRelease], podman: Podman
) -> Iterator[LocalTarget]:
    """A podman-mode deployment with stable v1 serving; after: stop_all, and no container or process left."""
    state_dir = tmp_path / "deploy"
    made = LocalTarget(
        state_dir=state_dir, stop_grace_s=STOP_GRACE_S, seed=7, podman=runtime(podman_root, settings=settings)
    )
    try:
        made.deploy_stable(images["1"], ready_timeout_s=READY_S)
        yield made
    finally:
        recorded = made.processes()
        made.stop_all()
        made.close()
        assert not [p for p in recorded if alive(p)]
        assert containers(podman, state_dir=state_dir) == []


def container_of(target: LocalTarget, role: str) -> str:
    proc = next(p for p in target.processes() if p.role == role)
    assert proc.container is not None
    return proc.container


def test_stable_and_canary_containers_share_the_traffic_by_weight(
    target: LocalTarget, images: dict[str, ModelRelease], rows: np.ndarray, podman: Podman
) -> None:
    assert target.start_canary(images["2"], ready_timeout_s=READY_S)
    running = containers(podman, state_dir=target.state_dir, running_only=True)
    assert running == sorted([container_of(target, "stable"), container_of(target, "canary")])
    assert_live_split(target, rows, weight=25)


def test_a_fault_in_the_release_env_reaches_only_the_canary_container(
    target: LocalTarget, images: dict[str, ModelRelease], rows: np.ndarray
) -> None:
    flipped = replace(images["2"], env={"SLIPWAY_SERVE_FAULT_OUTPUT": "flip"})
    assert target.start_canary(flipped, ready_timeout_s=READY_S)
    target.set_traffic(weight=0, shadow=50)
    run_load(target, rows)
    obs = target.observe(weight=0)
    assert not obs.stale, obs.source_error
    pairs = np.asarray(obs.shadow_pairs)
    assert len(pairs) > 30
    np.testing.assert_allclose(pairs[:, 1], 1.0 - pairs[:, 0], atol=1e-5)


def test_promote_leaves_only_the_promoted_container_without_downtime(
    target: LocalTarget, images: dict[str, ModelRelease], rows: np.ndarray, podman: Podman
) -> None:
    assert target.start_canary(images["2"], ready_timeout_s=READY_S)
    target.set_traffic(weight=50, shadow=0)
    canary = container_of(target, "canary")
    promote_under_load(target, rows)
    assert containers(podman, state_dir=target.state_dir) == [canary]  # the old stable's container is gone
    assert container_of(target, "stable") == canary
    assert target.state() == DeploymentState(images["2"], None, 0, 0, canary_ready=False)


def test_rollback_leaves_only_the_stable_container(
    target: LocalTarget, images: dict[str, ModelRelease], rows: np.ndarray, podman: Podman
) -> None:
    stable = container_of(target, "stable")
    assert target.start_canary(images["2"], ready_timeout_s=READY_S)
    target.set_traffic(weight=50, shadow=50)
    target.rollback()
    assert containers(podman, state_dir=target.state_dir) == [stable]
    assert probe(target, rows, n=50) == {"1": 50}


def test_a_killed_orchestrators_containers_are_reconciled(
    target: LocalTarget, images: dict[str, ModelRelease], rows: np.ndarray, podman: Podman, podman_root: Path
) -> None:
    """The orchestrator is SIGKILLed while it waits for a slow canary container; the next run removes it."""
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from slipway.deploy.base import ModelRelease
        from slipway.deploy.local import LocalTarget
        from slipway.settings import Settings
        from tests.support.podman import runtime
        podman = runtime(Path({str(podman_root)!r}), settings=Settings())
        target = LocalTarget(state_dir=Path({str(target.state_dir)!r}), podman=podman)
        env = {{"SLIPWAY_SERVE_FAULT_SLOW_START_S": "60"}}
        release = ModelRelease("tiny", "2", image_ref={images["2"].image_ref!r}, env=env)
        target.start_canary(release, ready_timeout_s=120)
        """
    )
    orchestrator = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True)
    deadline = time.monotonic() + 60
    while not any(p.role == "canary" for p in target.processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(orchestrator.pid, signal.SIGKILL)
    orchestrator.wait()
    canary = next(p for p in target.processes() if p.role == "canary")
    assert alive(canary) and canary.container is not None  # it outlived its orchestrator, gets no traffic
    deadline = time.monotonic() + 30
    while canary.container not in containers(podman, state_dir=target.state_dir, running_only=True):
        assert time.monotonic() < deadline, "the canary container never ran"
        time.sleep(0.2)
    os.kill(canary.pid, signal.SIGKILL)  # even its `podman run` dies: the container itself keeps running
    while alive(canary):
        time.sleep(0.05)
    assert canary.container in containers(podman, state_dir=target.state_dir, running_only=True)

    again = LocalTarget(state_dir=target.state_dir, podman=target.podman)
    assert again.state() == DeploymentState(images["1"], None, 0, 0, canary_ready=False)  # dead = absent
    assert probe(target, rows, n=50) == {"1": 50}
    again.rollback()
    again.close()
    assert containers(podman, state_dir=target.state_dir) == [container_of(target, "stable")]


def test_stop_all_is_graceful_and_leaves_no_container(
    target: LocalTarget, images: dict[str, ModelRelease], podman: Podman
) -> None:
    assert target.start_canary(images["2"], ready_timeout_s=READY_S)
    servers = [p for p in target.processes() if p.role in ("stable", "canary")]
    start = time.monotonic()
    target.stop_all()
    stop_s = time.monotonic() - start
    print(f"\nstop_all (router + 2 containers): {stop_s:.2f} s")
    assert stop_s < STOP_GRACE_S  # SIGTERM reached the servers through `podman run`: no SIGKILL fallback
    assert containers(podman, state_dir=target.state_dir) == []
    assert not [p for p in servers if alive(p)]
    logs = {Path(p.log).read_text(errors="replace") for p in servers}
    assert all("Application shutdown complete" in log for log in logs), logs  # drained, not killed


# ---- the release flow's deploy stage in podman mode (real image stage: buildah, the loopback registry) ----


@pytest.fixture(scope="module")
def flow_world(
    tmp_path_factory: pytest.TempPathFactory, prefect_api: str, builder: Any, podman_root: Path
) -> Iterator[dict[str, Any]]:
    """One state folder: a first release (v1) built, pushed, and serving as a podman container."""
    from flows.release import run_release as release_flow

    root = tmp_path_factory.mktemp("podman-release")
    raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
    raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
    podman_flags = {"root": str(podman_root / "storage"), "runroot": str(podman_root / "run")}
    raw["deploy"] = {
        "target": "local",
        "load_rps": 100,
        "local": {"runtime": "podman", "podman": {**podman_flags, "storage_driver": "overlay"}},
    }
    config = root / "slipway.yaml"
    config.write_text(yaml.safe_dump(raw))
    ref = load_reference(PipelineConfig().data)

    def run(seed: int, **kwargs: Any) -> dict[str, Any]:
        batch = root / f"batch-{seed}.csv"
        write_batch(make_batch(ref, rows=300, seed=seed), batch)
        return release_flow(data=str(batch), config_path=str(config), **kwargs)

    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLIPWAY_HOME", str(home))
        mp.setenv("SLIPWAY_IMAGE_BUILDER", "buildah")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("SLIPWAY_MLFLOW_TRACKING_URI", raising=False)
        target = LocalTarget(state_dir=home / "deploy" / "local")
        try:
            yield {"home": home, "run": run, "first": run(700), "target": target}
        finally:
            target.stop_all()
            assert containers(Podman(podman_root), state_dir=target.state_dir) == []


def champion_tags(home: Path) -> dict[str, str]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    mv = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(FLOW_MODEL, "champion")
    return {"version": str(mv.version), **mv.tags}


def test_the_release_flow_serves_the_champion_image_by_digest_in_a_container(
    flow_world: dict[str, Any], podman_root: Path
) -> None:
    first, target = flow_world["first"], flow_world["target"]
    assert first["decision"] == "promoted", first["reasons"]
    tags = champion_tags(flow_world["home"])
    stable = next(p for p in target.processes() if p.role == "stable")
    assert stable.release is not None and stable.release.model_version == tags["version"]
    assert (
        stable.release.image_ref == tags["slipway.image.reference"] == first["image"]["record"]["reference"]
    )
    assert "@sha256:" in tags["slipway.image.reference"]
    running = containers(Podman(podman_root), state_dir=target.state_dir, running_only=True)
    assert running == [stable.container]


def test_the_release_flow_rolls_back_a_nan_canary_container(
    flow_world: dict[str, Any], podman_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_HOME", str(flow_world["home"]))
    monkeypatch.setenv("SLIPWAY_IMAGE_BUILDER", "buildah")
    champion = champion_tags(flow_world["home"])["version"]
    result = flow_world["run"](710, canary_fault="nan")
    assert result["decision"] == "rolled_back", result["reasons"]
    assert "nonfinite" in " ".join(result["reasons"]), result["reasons"]
    assert result["deploy"]["stable_version"] == champion
    target = flow_world["target"]
    stable = next(p for p in target.processes() if p.role == "stable")
    assert containers(Podman(podman_root), state_dir=target.state_dir) == [stable.container]


def test_an_image_that_was_not_pushed_fails_before_any_canary_starts(
    flow_world: dict[str, Any], podman_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_HOME", str(flow_world["home"]))
    monkeypatch.setenv("SLIPWAY_IMAGE_BUILDER", "buildah")
    monkeypatch.delenv("SLIPWAY_IMAGE_REGISTRY")  # built, not pushed: no digest reference
    champion = champion_tags(flow_world["home"])["version"]
    result = flow_world["run"](720)
    # the target's capabilities refuse it before anything is deployed: an error (the model is not at
    # fault), the version marked with it, no canary container ever ran
    assert (result["decision"], result["stage"]) == ("error", "canary"), result["reasons"]
    assert champion_tags(flow_world["home"])["version"] == champion
    from mlflow import MlflowClient

    uri = f"sqlite:///{flow_world['home'] / 'mlflow.db'}"
    version = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(
        FLOW_MODEL, result["model_version"]
    )
    assert (version.tags["slipway.error_at"], version.tags["slipway.decision"]) == ("canary", "error")
    target = flow_world["target"]
    stable = next(p for p in target.processes() if p.role == "stable")
    assert containers(Podman(podman_root), state_dir=target.state_dir) == [stable.container]


def test_a_killed_stable_container_is_started_again_on_its_port(
    target: LocalTarget, images: dict[str, ModelRelease], rows: np.ndarray, podman: Podman
) -> None:
    stable = next(p for p in target.processes() if p.role == "stable")
    os.kill(stable.pid, signal.SIGKILL)  # its `podman run`: the container would run on, unrecorded
    new = restarted(target, stable, timeout_s=60)
    assert (new.port, new.container, new.restarts) == (stable.port, stable.container, 1)
    print(
        f"\nthe stable container answers again {answered(target, rows, version='1', timeout_s=60):.1f} s later"
    )
    assert alive(new) and containers(podman, state_dir=target.state_dir) == [stable.container]
