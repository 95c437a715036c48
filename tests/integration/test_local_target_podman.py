"""The local target in podman mode: stable and canary are containers of real images, pulled by digest.

Given images of v1 and v2 built and pushed to the loopback registry, a stable v1 container behind the
router and a canary v2 container, when load runs, then the router's windows show the split; promote,
rollback, a killed orchestrator and stop_all leave exactly the expected containers (`podman ps`).
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

import numpy as np
import pytest
from scipy.stats import binom

from slipway.data.reference import Reference
from slipway.deploy.base import DeploymentState, ModelRelease
from slipway.deploy.loadgen import LoadGenerator
from slipway.deploy.local import LocalTarget
from slipway.deploy.processes import alive
from slipway.settings import Settings
from tests.contract.test_deploy_targets import bundles, podman_images, podman_root
from tests.integration.podman_target import containers, runtime
from tests.integration.test_local_target import RATE_RPS, probe, run_load
from tests.integration.test_serving_image import REPO, Podman, builder, settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# module fixtures shared with the contract suite and the serving-image test
__all__ = ["builder", "bundles", "podman_images", "podman_root", "settings"]

READY_S = 60.0
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
    target.set_traffic(weight=25, shadow=0)
    stats = run_load(target, rows)
    obs = target.observe(weight=25)
    assert not obs.stale, obs.source_error
    n = obs.stable.requests + obs.canary.requests
    assert n == stats.sent == stats.statuses.get(200, 0) and n > 200
    low, high = binom.interval(0.99, n, 0.25)
    assert low <= obs.canary.requests <= high
    assert stats.versions == {"1": obs.stable.requests, "2": obs.canary.requests}
    assert (obs.stable.errors, obs.canary.errors, obs.canary.nonfinite, obs.canary.invalid) == (0, 0, 0, 0)


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
    url = target.router_url
    assert url is not None
    load = LoadGenerator(url=url, rows=rows, rate_rps=RATE_RPS, seed=5)
    load.start()
    time.sleep(1.0)
    target.promote()
    time.sleep(1.0)
    stats = load.stop()
    assert stats.statuses == {200: stats.sent} and stats.transport_errors == 0  # nothing lost while swapping
    assert probe(target, rows) == {"2": 200}
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
        from tests.integration.podman_target import runtime
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
    servers = [p for p in target.processes() if p.role != "router"]
    start = time.monotonic()
    target.stop_all()
    stop_s = time.monotonic() - start
    print(f"\nstop_all (router + 2 containers): {stop_s:.2f} s")
    assert stop_s < STOP_GRACE_S  # SIGTERM reached the servers through `podman run`: no SIGKILL fallback
    assert containers(podman, state_dir=target.state_dir) == []
    assert not [p for p in servers if alive(p)]
    logs = {Path(p.log).read_text(errors="replace") for p in servers}
    assert all("Application shutdown complete" in log for log in logs), logs  # drained, not killed
