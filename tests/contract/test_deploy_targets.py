"""One deploy-target contract, run against the in-memory fake and the local target (processes, and podman).

The canary controller only talks to `DeployTarget`; the fake stands in for real processes in flow
tests, so both must behave the same for every case below. Subclasses only say how to build a target
over a deployment (a second instance over the same deployment is "the orchestrator restarted").
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slipway.data.reference import Reference
from slipway.deploy.base import DeploymentState, DeployTarget, ModelRelease
from slipway.deploy.fake import FakeTarget, FakeWorld
from slipway.deploy.local import LocalTarget
from slipway.deploy.podman import container_prefix
from slipway.deploy.processes import alive
from slipway.errors import DeployError
from slipway.locks.base import Holder
from slipway.serving.bundle import write_bundle
from slipway.settings import Settings
from tests.support.images import Podman, builder, settings
from tests.support.onnx_models import linear_onnx
from tests.support.podman import containers, push_images, runtime

pytestmark = pytest.mark.image_tools  # buildah/podman: one test process at a time

READY_S = 60.0
LEASE_S = 2.0  # a canary lease short enough to run out within a test
NEVER_READY_DEADLINE_S = 3.0
NEVER_READY = {"SLIPWAY_SERVE_FAULT_NEVER_READY": "true"}

# the real image builder (skips naming what is missing) and its settings: test_serving_image's fixtures
__all__ = ["builder", "settings"]

TargetFactory = Callable[[], DeployTarget]
ReleaseFactory = Callable[..., ModelRelease]  # (version, env=None) -> ModelRelease


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, ref: Reference) -> dict[str, Path]:
    """Two bundles of the same tiny linear model, versions 1 and 2."""
    root = tmp_path_factory.mktemp("deploy-bundles").resolve()
    rng = np.random.default_rng(0)
    onnx_path = linear_onnx(
        root / "src" / "model.onnx", weights=rng.normal(size=(30, 2)) / 10, bias=np.array([0.1, -0.1])
    )
    return {
        version: write_bundle(
            root / f"v{version}",
            onnx_path=onnx_path,
            model_name="tiny",
            model_version=version,
            features=list(ref.features),
            classes=[0, 1],
        )
        for version in ("1", "2")
    }


def release(bundles: dict[str, Path], version: str, env: dict[str, str] | None = None) -> ModelRelease:
    return ModelRelease("tiny", version, bundle_dir=bundles[version], env=dict(env or {}))


class DeployTargetContract(ABC):
    """The behaviour every deploy target shares; subclasses provide `make_target`."""

    @abstractmethod
    @pytest.fixture
    def make_target(self) -> Iterator[TargetFactory]:
        """A factory of targets over ONE deployment (fresh per test); everything is torn down after."""

    @pytest.fixture
    def target(self, make_target: TargetFactory) -> Iterator[DeployTarget]:
        target = make_target()
        yield target
        target.close()

    @pytest.fixture
    def make_release(self, bundles: dict[str, Path]) -> ReleaseFactory:
        """How this target is given version 1 or 2 (a bundle here; podman mode adds the image)."""
        return lambda version, env=None: release(bundles, version, env)

    @pytest.fixture
    def v1(self, make_release: ReleaseFactory) -> ModelRelease:
        return make_release("1")

    @pytest.fixture
    def v2(self, make_release: ReleaseFactory) -> ModelRelease:
        return make_release("2")

    def test_every_target_on_one_deployment_shares_one_release_lock(self, make_target: TargetFactory) -> None:
        first, second = make_target(), make_target()
        mine = Holder(what="release A")
        lock = first.release_lock()
        assert lock.try_acquire(mine) is None
        try:
            other = second.release_lock().try_acquire(Holder(what="release B"))
            assert other is not None and other.id == mine.id
            assert second.release_lock().key == lock.key  # the key versions are registered under
        finally:
            lock.release(mine)
        assert second.release_lock().holder() is None

    def test_nothing_is_deployed_before_the_first_release(self, target: DeployTarget) -> None:
        assert target.state() == DeploymentState(None, None, weight=0, shadow=0, canary_ready=False)

    def test_deploy_stable_shows_the_release_and_is_idempotent(
        self, target: DeployTarget, v1: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        first = target.state()
        assert (first.stable, first.canary, first.weight, first.shadow) == (v1, None, 0, 0)
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        assert target.state() == first

    def test_health_names_what_runs_or_says_nothing(
        self, target: DeployTarget, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        assert [h for h in target.health() if h.name in ("stable", "canary")] == []
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        assert target.start_canary(v2, ready_timeout_s=READY_S)
        target.set_traffic(weight=50, shadow=0)
        health = {h.name: h.state for h in target.health()}
        assert health == {} or (health["stable"], health["canary"]) == ("ready", "ready")  # [] = cannot tell

    def test_deploy_stable_replaces_the_stable(
        self, target: DeployTarget, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        target.deploy_stable(v2, ready_timeout_s=READY_S)
        assert target.state().stable == v2

    def test_a_stable_that_never_gets_ready_fails_and_keeps_the_old_one(
        self, target: DeployTarget, v1: ModelRelease, make_release: ReleaseFactory
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        with pytest.raises(DeployError, match="stable"):
            target.deploy_stable(make_release("2", NEVER_READY), ready_timeout_s=NEVER_READY_DEADLINE_S)
        assert target.state().stable == v1

    def test_a_canary_needs_a_stable(self, target: DeployTarget, v2: ModelRelease) -> None:
        with pytest.raises(DeployError, match="stable"):
            target.start_canary(v2, ready_timeout_s=READY_S)
        assert target.state().canary is None

    def test_start_canary_is_ready_at_weight_zero_and_idempotent(
        self, target: DeployTarget, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        assert target.start_canary(v2, ready_timeout_s=READY_S) is True
        expected = DeploymentState(v1, v2, weight=0, shadow=0, canary_ready=True)
        assert target.state() == expected
        assert target.start_canary(v2, ready_timeout_s=READY_S) is True
        assert target.state() == expected

    def test_set_traffic_shows_in_state_and_is_idempotent(
        self, target: DeployTarget, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        target.start_canary(v2, ready_timeout_s=READY_S)
        for _ in range(2):
            target.set_traffic(weight=25, shadow=50)
            state = target.state()
            assert (state.weight, state.shadow, state.canary) == (25, 50, v2)

    @pytest.fixture
    def pass_time(self) -> Callable[[DeployTarget, float], None]:
        """How `seconds` pass for the target (real time; the fake's own clock)."""
        return lambda _target, seconds: time.sleep(seconds)

    def test_a_canary_whose_lease_runs_out_gets_no_more_traffic(
        self,
        target: DeployTarget,
        v1: ModelRelease,
        v2: ModelRelease,
        pass_time: Callable[[DeployTarget, float], None],
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        assert target.start_canary(v2, ready_timeout_s=READY_S)
        target.hold_canary(ttl_s=LEASE_S)
        shadow = 50 if target.capabilities().shadow else 0
        target.set_traffic(weight=50, shadow=shadow)
        pass_time(target, LEASE_S / 2)
        target.hold_canary(ttl_s=LEASE_S)  # renewed: still routed
        state = target.state()
        assert (state.weight, state.shadow, state.canary_unattended) == (50, shadow, False)
        pass_time(target, LEASE_S + 0.5)
        state = target.state()
        if not target.capabilities().canary_lease:  # documented no-op: the canary keeps its share
            assert (state.weight, state.canary, state.canary_unattended) == (50, v2, False)
            return
        # its release stopped renewing: the target sends the canary nothing, and says so
        assert (state.canary, state.weight, state.shadow, state.canary_unattended) == (v2, 0, 0, True)
        target.rollback()
        state = target.state()
        assert (state.stable, state.canary, state.canary_unattended) == (v1, None, False)

    def test_set_traffic_refuses_bad_weights_and_a_missing_canary(
        self, target: DeployTarget, v1: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        with pytest.raises(DeployError, match="canary"):
            target.set_traffic(weight=10, shadow=0)
        with pytest.raises(DeployError, match=r"0\.\.100"):
            target.set_traffic(weight=101, shadow=0)
        target.set_traffic(weight=0, shadow=0)  # nothing to route: fine without a canary
        assert target.state().weight == 0

    def test_promote_makes_the_canary_the_stable_and_is_idempotent(
        self, target: DeployTarget, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        target.start_canary(v2, ready_timeout_s=READY_S)
        target.set_traffic(weight=50, shadow=10)
        target.promote()
        expected = DeploymentState(v2, None, weight=0, shadow=0, canary_ready=False)
        assert target.state() == expected
        target.promote()  # second call: no canary left, nothing to do
        assert target.state() == expected

    def test_rollback_keeps_the_stable_and_is_idempotent(
        self, target: DeployTarget, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        target.rollback()  # no canary: a no-op
        target.start_canary(v2, ready_timeout_s=READY_S)
        target.set_traffic(weight=25, shadow=50)
        expected = DeploymentState(v1, None, weight=0, shadow=0, canary_ready=False)
        for _ in range(2):
            target.rollback()
            assert target.state() == expected

    def test_a_never_ready_canary_is_refused_within_the_deadline(
        self, target: DeployTarget, v1: ModelRelease, make_release: ReleaseFactory
    ) -> None:
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        start = time.monotonic()
        ok = target.start_canary(make_release("2", NEVER_READY), ready_timeout_s=NEVER_READY_DEADLINE_S)
        elapsed = time.monotonic() - start
        assert ok is False
        assert elapsed < NEVER_READY_DEADLINE_S + 10  # the deadline plus stopping it
        assert target.state() == DeploymentState(v1, None, weight=0, shadow=0, canary_ready=False)

    def test_a_new_instance_reads_and_reconciles_the_same_deployment(
        self, make_target: TargetFactory, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        first = make_target()
        first.deploy_stable(v1, ready_timeout_s=READY_S)
        first.start_canary(v2, ready_timeout_s=READY_S)
        first.set_traffic(weight=25, shadow=50)
        # the orchestrator "dies" here: `first` is never used again
        second = make_target()
        assert second.state() == DeploymentState(v1, v2, weight=25, shadow=50, canary_ready=True)
        second.rollback()
        assert make_target().state() == DeploymentState(v1, None, weight=0, shadow=0, canary_ready=False)
        for target in (first, second):
            target.close()


class TestFakeTarget(DeployTargetContract):
    @pytest.fixture
    def world(self) -> FakeWorld:
        return FakeWorld()

    @pytest.fixture
    def make_target(self, world: FakeWorld) -> Iterator[TargetFactory]:
        yield lambda: FakeTarget(world)

    @pytest.fixture
    def pass_time(self, world: FakeWorld) -> Callable[[DeployTarget, float], None]:
        def advance(_target: DeployTarget, seconds: float) -> None:
            world.clock_s += seconds

        return advance


def processes_mentioning(*needles: Path | str) -> list[int]:
    """Pids of live processes whose command line names one of these paths (what leaked)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(str(n) in cmdline for n in needles):
            found.append(int(entry.name))
    return found


@pytest.mark.integration
class TestLocalTarget(DeployTargetContract):
    @pytest.fixture
    def make_target(self, tmp_path: Path, bundles: dict[str, Path]) -> Iterator[TargetFactory]:
        state_dir = tmp_path / "deploy"
        made: list[LocalTarget] = []

        def make() -> DeployTarget:
            made.append(LocalTarget(state_dir=state_dir, stop_grace_s=5.0))
            return made[-1]

        yield make
        cleaner = LocalTarget(state_dir=state_dir, stop_grace_s=5.0)
        recorded = cleaner.processes()
        cleaner.stop_all()
        cleaner.close()
        for target in made:
            target.close()
        assert not [p for p in recorded if alive(p)]
        assert processes_mentioning(state_dir, *bundles.values()) == []

    def test_idempotent_calls_keep_the_same_processes(
        self, make_target: TargetFactory, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        target = make_target()
        assert isinstance(target, LocalTarget)
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        target.start_canary(v2, ready_timeout_s=READY_S)
        before = {p.role: p.pid for p in target.processes()}
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        target.start_canary(v2, ready_timeout_s=READY_S)
        assert {p.role: p.pid for p in target.processes()} == before
        assert set(before) == {"router", "stable", "canary", "supervisor"}

    def test_a_dead_canary_counts_as_absent(
        self, make_target: TargetFactory, v1: ModelRelease, v2: ModelRelease
    ) -> None:
        target = make_target()
        assert isinstance(target, LocalTarget)
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        target.start_canary(v2, ready_timeout_s=READY_S)
        target.set_traffic(weight=20, shadow=0)
        canary = next(p for p in target.processes() if p.role == "canary")
        os.kill(canary.pid, 9)
        deadline = time.monotonic() + 5
        while alive(canary) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert target.state().canary is None
        target.rollback()  # reconciles: no traffic left pointing at it
        assert target.state() == DeploymentState(v1, None, weight=0, shadow=0, canary_ready=False)


@pytest.fixture(scope="module")
def podman_images(builder: Any, settings: Settings, bundles: dict[str, Path]) -> dict[str, str]:
    """Versions 1 and 2 as real serving images in the registry (skips where the image tools are missing)."""
    return push_images(builder, settings=settings, bundles=bundles, model_name="tiny")


@pytest.fixture(scope="module")
def podman_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A podman storage of its own for this module (pulls are shared between its tests)."""
    root = tmp_path_factory.mktemp("podman")
    yield root
    Podman(root)("system", "reset", "--force", check=False, timeout=120)


@pytest.mark.integration
@pytest.mark.slow
class TestLocalTargetPodman(TestLocalTarget):
    """The same contract with every server a `podman run` of the release's image, pulled by digest."""

    @pytest.fixture
    def make_release(self, bundles: dict[str, Path], podman_images: dict[str, str]) -> ReleaseFactory:
        def make(version: str, env: dict[str, str] | None = None) -> ModelRelease:
            return replace(release(bundles, version, env), image_ref=podman_images[version])

        return make

    @pytest.fixture
    def make_target(
        self, tmp_path: Path, podman_root: Path, settings: Settings, podman_images: dict[str, str]
    ) -> Iterator[TargetFactory]:
        state_dir = tmp_path / "deploy"
        podman = runtime(podman_root, settings=settings)
        made: list[LocalTarget] = []

        def make() -> DeployTarget:
            made.append(LocalTarget(state_dir=state_dir, stop_grace_s=5.0, podman=podman))
            return made[-1]

        yield make
        cleaner = LocalTarget(state_dir=state_dir, stop_grace_s=5.0, podman=podman)
        recorded = cleaner.processes()
        cleaner.stop_all()
        cleaner.close()
        for target in made:
            target.close()
        assert not [p for p in recorded if alive(p)]
        assert containers(Podman(podman_root), state_dir=state_dir) == []
        assert processes_mentioning(state_dir, container_prefix(state_dir)) == []

    def test_servers_are_containers_of_the_image_by_digest(
        self, make_target: TargetFactory, v1: ModelRelease, v2: ModelRelease, podman_root: Path
    ) -> None:
        target = make_target()
        assert isinstance(target, LocalTarget)
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        target.start_canary(v2, ready_timeout_s=READY_S)
        servers = {p.role: p for p in target.processes() if p.role in ("stable", "canary")}
        assert {role: p.container is not None for role, p in servers.items()} == {
            "stable": True,
            "canary": True,
        }
        running = containers(Podman(podman_root), state_dir=target.state_dir, running_only=True)
        assert running == sorted(str(p.container) for p in servers.values())
        for p in servers.values():
            assert p.release is not None and p.release.image_ref is not None
            cmdline = Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")
            assert p.release.image_ref.encode() in cmdline  # the `podman run` of the digest reference

    def test_a_release_without_an_image_is_refused_naming_it(
        self, make_target: TargetFactory, v1: ModelRelease, bundles: dict[str, Path], podman_root: Path
    ) -> None:
        target = make_target()
        assert isinstance(target, LocalTarget)
        with pytest.raises(DeployError, match=r"stable tiny v1 has no image_ref"):
            target.deploy_stable(release(bundles, "1"), ready_timeout_s=READY_S)
        target.deploy_stable(v1, ready_timeout_s=READY_S)
        with pytest.raises(DeployError, match=r"canary tiny v2 has no image_ref"):
            target.start_canary(release(bundles, "2"), ready_timeout_s=READY_S)
        tagged = replace(v1, image_ref=str(v1.image_ref).split("@")[0] + ":latest")
        with pytest.raises(DeployError, match="not pinned by digest"):
            target.start_canary(replace(tagged, model_version="2"), ready_timeout_s=READY_S)
        assert target.state() == DeploymentState(v1, None, weight=0, shadow=0, canary_ready=False)
        assert len(containers(Podman(podman_root), state_dir=target.state_dir)) == 1
