"""The shared deploy-target contract (tests/contract/test_deploy_targets.py), run by KubernetesTarget on a real API server.

Differences are only where Kubernetes differs: releases are images by digest (not bundles), 4 pods
in all so the contract's weights (25, 50) are exact replica ratios, and shadow is 0 because a
replica-ratio split cannot mirror traffic (set_traffic refuses shadow > 0; tested below).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from slipway.deploy.base import DeploymentState, DeployTarget, ModelRelease
from slipway.deploy.kubernetes import KubernetesTarget
from slipway.errors import DeployError
from slipway.locks.base import ReleaseLock
from tests.contract.test_deploy_targets import (
    NEVER_READY,
    NEVER_READY_DEADLINE_S,
    READY_S,
    DeployTargetContract,
    TargetFactory,
)
from tests.contract.test_release_locks import ReleaseLockContract

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


def image_release(version: str, env: dict[str, str] | None = None) -> ModelRelease:
    """The contract's `tiny` release as an image pinned by digest."""
    digest = f"sha256:{version * 64}"
    return ModelRelease(
        "tiny", version, image_ref=f"127.0.0.1:5000/slipway/tiny@{digest}", env=dict(env or {})
    )


@pytest.mark.integration
@pytest.mark.k8s
class TestKubernetesTarget(DeployTargetContract):
    @pytest.fixture
    def make_target(self, admin_api_client: ApiClient, namespace: str) -> Iterator[TargetFactory]:
        made: list[KubernetesTarget] = []

        def make() -> DeployTarget:
            made.append(
                KubernetesTarget(
                    api_client=admin_api_client,
                    namespace=namespace,
                    total_replicas=4,
                    rollout_timeout_s=60,
                    traffic_timeout_s=30,
                    poll_s=0.1,
                )
            )
            return made[-1]

        yield make
        for target in made:
            target.close()

    @pytest.fixture
    def v1(self) -> ModelRelease:
        return image_release("1")

    @pytest.fixture
    def v2(self) -> ModelRelease:
        return image_release("2")

    def test_a_stable_that_never_gets_ready_fails_and_keeps_the_old_one(
        self, target: DeployTarget, v1: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        with pytest.raises(DeployError, match="stable"):
            target.deploy_stable(image_release("2", NEVER_READY), ready_timeout_s=NEVER_READY_DEADLINE_S)
        assert target.state().stable == v1

    def test_set_traffic_shows_in_state_and_is_idempotent(
        self, target: DeployTarget, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        target.start_canary(v2, ready_timeout_s=READY_S)
        for _ in range(2):
            target.set_traffic(weight=25, shadow=0)
            state = target.state()
            assert (state.weight, state.shadow, state.canary, state.canary_ready) == (25, 0, v2, True)
        with pytest.raises(DeployError, match="mirror 50%"):
            target.set_traffic(weight=25, shadow=50)
        assert target.state().weight == 25

    def test_promote_makes_the_canary_the_stable_and_is_idempotent(
        self, target: DeployTarget, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        target.start_canary(v2, ready_timeout_s=READY_S)
        target.set_traffic(weight=50, shadow=0)
        target.promote()
        expected = DeploymentState(v2, None, weight=0, shadow=0, canary_ready=False)
        assert target.state() == expected
        target.promote()
        assert target.state() == expected

    def test_rollback_keeps_the_stable_and_is_idempotent(
        self, target: DeployTarget, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        target.rollback()
        target.start_canary(v2, ready_timeout_s=READY_S)
        target.set_traffic(weight=25, shadow=0)
        expected = DeploymentState(v1, None, weight=0, shadow=0, canary_ready=False)
        for _ in range(2):
            target.rollback()
            assert target.state() == expected

    def test_a_never_ready_canary_is_refused_within_the_deadline(
        self, target: DeployTarget, v1: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        start = time.monotonic()
        ok = target.start_canary(image_release("2", NEVER_READY), ready_timeout_s=NEVER_READY_DEADLINE_S)
        assert ok is False
        assert time.monotonic() - start < NEVER_READY_DEADLINE_S + 10
        assert target.state() == DeploymentState(v1, None, weight=0, shadow=0, canary_ready=False)

    def test_a_new_instance_reads_and_reconciles_the_same_deployment(
        self, make_target: TargetFactory, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        first = make_target()
        first.deploy_stable(v1, ready_timeout_s=READY_S)
        first.start_canary(v2, ready_timeout_s=READY_S)
        first.set_traffic(weight=25, shadow=0)
        second = make_target()
        assert second.state() == DeploymentState(v1, v2, weight=25, shadow=0, canary_ready=True)
        second.rollback()
        assert make_target().state() == DeploymentState(v1, None, weight=0, shadow=0, canary_ready=False)


@pytest.mark.integration
@pytest.mark.k8s
class TestKubernetesReleaseLock(ReleaseLockContract):
    """The release lease as a coordination.k8s.io Lease on the real API server (resourceVersion arbitrates)."""

    @pytest.fixture
    def lock(self, admin_api_client: ApiClient, namespace: str) -> Iterator[ReleaseLock]:
        target = KubernetesTarget(api_client=admin_api_client, namespace=namespace)
        yield target.release_lock()
        target.close()
