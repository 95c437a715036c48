"""The canary stage itself over fakes (FakeTarget, FakeClock, InMemoryRegistry): promoted, rolled back,
and refused by a target that cannot run the policy, with what each leaves behind."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from slipway.canary.clock import FakeClock
from slipway.canary.decision import Decision
from slipway.deploy.fake import FakeTarget, FakeWorld
from slipway.deploy.kubernetes import replica_capabilities
from slipway.names import CHAMPION, Tag
from slipway.registry.base import Registration
from slipway.registry.fake import InMemoryRegistry
from slipway.release.canary_stage import DeployOutcome
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence
from slipway.release.outcome import StageOutcome
from slipway.release.packaging import ImageOutcome, serving_bundle
from slipway.release.stages.canary import canary
from tests.support.onnx_models import linear_onnx
from tests.support.release import prepared

SHIPPED = "onnx/fp32.onnx"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> ReleaseContext:
    return prepared(tmp_path_factory.mktemp("project"), overrides={"canary": {"min_samples_per_arm": 600}})


def registered(registry: InMemoryRegistry, ctx: ReleaseContext, key: str, onnx: Path) -> str:
    reg = Registration(
        model_name=ctx.model_name,
        module=None,
        input_example=np.zeros((1, 30), dtype=np.float32),
        params={},
        metrics={},
        tags={Tag.SHIPPED_ARTIFACT: SHIPPED},
        release_key=key,
        artifacts={SHIPPED: onnx},
    )
    return registry.register(reg).version


@dataclasses.dataclass
class World:
    registry: InMemoryRegistry
    evidence: Evidence
    fake: FakeWorld
    tmp: Path

    def champion(self, ctx: ReleaseContext) -> str:
        found = self.registry.get_alias(model_name=ctx.model_name, alias=CHAMPION)
        assert found is not None
        return found.version


@pytest.fixture()
def world(ctx: ReleaseContext, tmp_path: Path) -> World:
    """Champion v1 serving on the fake target; challenger v2 registered with its bundle."""
    rng = np.random.default_rng(0)
    v1_onnx = linear_onnx(tmp_path / "v1.onnx", weights=rng.normal(size=(30, 2)) / 50, bias=np.zeros(2))
    v2_onnx = linear_onnx(tmp_path / "v2.onnx", weights=rng.normal(size=(30, 2)) / 50, bias=np.zeros(2))
    registry = InMemoryRegistry()
    registered(registry, ctx, "k1", v1_onnx)
    registry.promote(model_name=ctx.model_name, version="1", reason="first release")
    v2 = registry.get_version(model_name=ctx.model_name, version=registered(registry, ctx, "k2", v2_onnx))
    bundle = serving_bundle(
        v2_onnx, dst=tmp_path / "bundle-v2", model_name=ctx.model_name, model_version="2", ref=ctx.reference()
    )
    evidence = Evidence(
        version=v2, image=ImageOutcome(status="skipped", reason="no builder", bundle_dir=str(bundle))
    )
    return World(registry=registry, evidence=evidence, fake=FakeWorld(), tmp=tmp_path)


def run(
    ctx: ReleaseContext,
    world: World,
    target: FakeTarget | None = None,
    on_decision: Callable[[Decision], None] | None = None,
) -> StageOutcome[DeployOutcome]:
    return canary(
        ctx,
        world.evidence,
        registry=world.registry,
        target=target or FakeTarget(world.fake, window_s=10.0),
        clock=FakeClock(),
        work_dir=world.tmp / "work",
        reports_dir=world.tmp / "reports",
        on_decision=on_decision,
    )


def test_a_healthy_challenger_is_canaried_promoted_and_serves(ctx: ReleaseContext, world: World) -> None:
    seen: list[Decision] = []
    outcome = run(ctx, world, on_decision=seen.append)
    assert (outcome.verdict, world.champion(ctx)) == ("passed", "2")
    # every window reached the live callback as it was decided, the last one the promotion
    assert (
        outcome.value is not None and len(seen) == len(outcome.value.canary["decisions"]) and seen[-1].final
    )
    v2 = world.registry.get_version(model_name=ctx.model_name, version="2")
    assert v2.aliases == (CHAMPION,)  # no longer the challenger
    assert not any(k.endswith(".checks") for k in v2.tags)  # the checks are run files, not tags
    assert v2.run_id is not None
    assert {"slipway/canary.json", "slipway/canary.png", "slipway/canary.md"} <= set(
        world.registry.runs[v2.run_id]["documents"]
    )
    assert world.fake.stable is not None and world.fake.stable.model_version == "2"
    assert outcome.value is not None and outcome.value.previous_champion == "1"
    assert {a.key for a in outcome.artifacts} >= {"canary", "canary-decisions", "canary-analysis"}


def test_a_nan_canary_is_rolled_back_and_the_champion_keeps_serving(
    ctx: ReleaseContext, world: World
) -> None:
    outcome = run(dataclasses.replace(ctx, canary_fault="nan"), world)
    assert (outcome.verdict, outcome.stage, world.champion(ctx)) == ("rejected", "canary", "1")
    assert world.fake.canary is None and world.fake.stable is not None
    assert (
        world.fake.stable.model_version == "1" and outcome.cause
    )  # the ledger tags the version with this cause


def test_a_target_that_cannot_run_the_policy_is_an_error_before_anything_is_deployed(
    ctx: ReleaseContext, world: World
) -> None:
    target = FakeTarget(
        world.fake, capabilities=replica_capabilities(10)
    )  # no shadow, weights of 10, digests only
    outcome = run(ctx, world, target)
    assert (outcome.verdict, outcome.stage) == ("error", "canary")
    assert world.fake.calls == [] and world.champion(ctx) == "1"
    assert all(
        field in outcome.cause
        for field in ("canary.shadow_intervals", "canary.steps", "deploy.kubernetes.replicas")
    )


def test_without_a_target_the_stage_is_skipped(ctx: ReleaseContext, world: World) -> None:
    outcome = canary(
        ctx,
        world.evidence,
        registry=world.registry,
        target=None,
        clock=FakeClock(),
        work_dir=world.tmp,
        reports_dir=world.tmp,
    )
    assert outcome.verdict == "skipped" and world.champion(ctx) == "1"
