"""The release's stage pipeline and ledger with fakes: every way a release can end, and what each
leaves in the registry (InMemoryRegistry) and in the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from slipway.errors import DeployError
from slipway.gate.quality import GateDecision
from slipway.names import CHAMPION, Stage, Tag, Verdict, exit_code
from slipway.ops.history import version_entry
from slipway.registry.fake import InMemoryRegistry
from slipway.registry.links import RunLinks
from slipway.release.context import ReleaseContext
from slipway.release.interrupted import mark_interrupted
from slipway.release.ledger import Evidence, GateEvidence, Ledger, conclude
from slipway.release.outcome import StageOutcome
from slipway.release.pipeline import Step, run_stages
from slipway.release.result import ReleaseResult, ResultPatch
from slipway.release.stages.registration import register_version
from slipway.training.base import TrainedModel
from tests.support.release import prepared

Script = dict[Stage, Verdict | Exception]


class Linear:
    """A stand-in model: the registry only stores it."""


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> ReleaseContext:
    return prepared(tmp_path_factory.mktemp("project"))


def scripted(stage: Stage, verdict: Verdict | Exception, value: Any = None) -> Step:
    def step(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[Any]:
        if isinstance(verdict, Exception):
            raise verdict
        return StageOutcome(
            stage=stage,
            verdict=verdict,
            value=value,
            cause=f"{stage} said {verdict}" if verdict in ("rejected", "error") else "",
            reasons=(f"{stage}: {verdict}",),
            tags={f"slipway.test.{stage}": verdict},
        )

    return step


def pipeline(registry: InMemoryRegistry, script: Script) -> list[tuple[Stage, Step]]:
    """The release's stage order with scripted verdicts; registration is the real stage over the fake registry."""
    gate = GateEvidence(
        metrics={"accuracy": 0.97},
        decision=GateDecision(passed=True, first_release=True, checks=[], reasons=["gate passed"]),
    )

    def register(ctx: ReleaseContext, evidence: Evidence) -> StageOutcome[Any]:
        return register_version(ctx, evidence, registry=registry, tracking_uri="memory://")

    def step(stage: Stage, value: Any = None) -> tuple[Stage, Step]:
        return stage, scripted(stage, script.get(stage, "passed"), value)

    return [
        step("validation"),
        step("training", TrainedModel(module=Linear(), params={"epochs": 1})),
        step("quality_gate", gate),
        step("optimize"),
        step("servability"),
        ("register", register),
        step("tensorrt"),
        step("image"),
        step("servability"),
        step("canary"),
    ]


def release(
    ctx: ReleaseContext, script: Script, registry: InMemoryRegistry | None = None
) -> tuple[ReleaseResult, InMemoryRegistry]:
    registry = registry or InMemoryRegistry()
    ledger = Ledger()
    ledger.begin(ctx)
    run_stages(ledger, ctx, pipeline(registry, script))
    ledger.apply(conclude(ctx, ledger, registry=registry))
    return ledger.result(), registry


def test_a_clean_release_with_a_canary_is_promoted(ctx: ReleaseContext) -> None:
    result, registry = release(ctx, {})
    assert (result.decision, result.stage, result.model_version) == ("promoted", "canary", "1")
    assert exit_code(result.decision) == 0
    assert (
        registry.list_rejections(model_name=ctx.model_name) == []
        and result.config_sha256 == ctx.config_sha256
    )
    version = registry.get_version(model_name=ctx.model_name, version="1")
    assert version.tags[Tag.CONFIG_SHA256] == ctx.config_sha256
    assert {f"slipway.test.{s}" for s in ("validation", "quality_gate", "optimize")} <= set(version.tags)


def test_without_a_canary_the_release_is_registered(ctx: ReleaseContext) -> None:
    result, registry = release(ctx, {"canary": "skipped"})
    assert (result.decision, result.stage) == ("registered", "register")
    assert registry.get_alias(model_name=ctx.model_name, alias=CHAMPION) is None


def test_a_validation_rejection_touches_nothing(ctx: ReleaseContext) -> None:
    result, registry = release(ctx, {"validation": "rejected"})
    assert (result.decision, result.stage) == ("rejected", "validation")
    assert exit_code(result.decision) == 1
    assert registry.runs == {} and registry.list_versions(model_name=ctx.model_name) == []
    assert result.reasons[-1] == "the champion is untouched; nothing was registered"


@pytest.mark.parametrize("stage", ["quality_gate", "optimize", "servability"])
def test_a_gate_before_registration_logs_a_rejected_attempt_and_no_version(
    ctx: ReleaseContext, stage: Stage
) -> None:
    result, registry = release(ctx, {stage: "rejected"})
    assert (result.decision, result.stage) == ("rejected", stage)
    assert registry.list_versions(model_name=ctx.model_name) == []
    (attempt,) = registry.list_rejections(model_name=ctx.model_name)
    assert attempt.stage == stage and attempt.run_id == result.mlflow_run_id


def test_a_training_crash_is_an_error_at_training_with_nothing_written(ctx: ReleaseContext) -> None:
    result, registry = release(ctx, {"training": RuntimeError("entrypoint blew up")})
    assert (result.decision, result.stage) == ("error", "training")
    assert exit_code(result.decision) == 2
    assert any("entrypoint blew up" in r for r in result.reasons)
    assert registry.runs == {} and registry.list_versions(model_name=ctx.model_name) == []


def crowned(ctx: ReleaseContext) -> InMemoryRegistry:
    """A registry whose champion is version 1 of an earlier release."""
    _, registry = release(ctx, {})
    registry.promote(model_name=ctx.model_name, version="1", reason="first release")
    return registry


@pytest.mark.parametrize(
    ("script", "decision", "stage"),
    [
        ({"canary": "rejected"}, "rolled_back", "canary"),
        ({"servability": "rejected", "validation": "passed"}, "rejected", "servability"),
    ],
)
def test_a_rejection_after_registration_tags_the_version_and_keeps_the_champion(
    ctx: ReleaseContext, script: Script, decision: str, stage: Stage
) -> None:
    registry = crowned(ctx)
    if stage == "servability":  # the image smoke test: the second servability stage, after registration
        steps = pipeline(registry, {})
        steps[8] = ("servability", scripted("servability", "rejected"))
    else:
        steps = pipeline(registry, script)
    other = prepared(Path(ctx.config_path).parent / "second", seed=2)
    ledger = Ledger()
    ledger.begin(other)
    run_stages(ledger, other, steps)
    ledger.apply(conclude(other, ledger, registry=registry))
    result = ledger.result()
    assert (result.decision, result.stage, result.model_version) == (decision, stage, "2")
    v2 = registry.get_version(model_name=ctx.model_name, version="2")
    assert (v2.tags[Tag.DECISION], v2.tags[Tag.REJECTED_AT]) == ("rejected", stage)
    assert v2.tags[Tag.REJECTION_REASON] == f"{stage} said rejected"
    assert registry.get_alias(model_name=ctx.model_name, alias=CHAMPION).version == "1"  # type: ignore[union-attr]


@pytest.mark.parametrize("failure", ["error", DeployError("target unreachable")])
def test_an_error_after_registration_marks_the_version_and_keeps_the_champion(
    ctx: ReleaseContext, failure: Verdict | Exception
) -> None:
    registry = crowned(ctx)
    other = prepared(Path(ctx.config_path).parent / "third", seed=3)
    stage: Stage = "image" if failure == "error" else "canary"
    result, registry = release(other, {stage: failure}, registry)
    assert (result.decision, result.stage) == ("error", stage)
    v2 = registry.get_version(model_name=ctx.model_name, version="2")
    assert (v2.tags[Tag.ERROR_AT], v2.tags[Tag.DECISION]) == (stage, "error")
    assert registry.get_alias(model_name=ctx.model_name, alias=CHAMPION).version == "1"  # type: ignore[union-attr]


def test_cached_stages_are_listed_and_every_stage_is_timed(ctx: ReleaseContext) -> None:
    registry = InMemoryRegistry()

    def cached(step: Step, c: ReleaseContext, e: Evidence) -> tuple[StageOutcome[Any], bool]:
        return step(c, e), True

    ledger = Ledger()
    run_stages(ledger, ctx, pipeline(registry, {})[:2], runner=cached)
    assert ledger.cached == ["validation", "training"] and set(ledger.timings_s) == {"validation", "training"}


def test_results_change_only_through_typed_patches() -> None:
    with pytest.raises(ValidationError):
        ResultPatch.model_validate({"model_verison": "1"})
    with pytest.raises(ValidationError):
        ResultPatch.model_validate({"metrics": {"accuracy": "high"}})
    base = ReleaseResult(decision="error", stage="prepare")
    with pytest.raises(ValidationError):
        base.patched(ResultPatch(model_version="1")).model_copy(update={}).model_validate(
            {"decision": "maybe", "stage": "prepare"}
        )
    assert base.patched(ResultPatch(model_version="7")).model_version == "7"


def test_the_summary_table_holds_when_no_image_was_built() -> None:
    rows = ReleaseResult(
        decision="promoted", stage="canary", image={"status": "skipped", "record": None}
    ).summary_rows()
    assert {r["field"]: r["value"] for r in rows}["image_digest"] == ""


def test_every_stage_names_its_input_when_an_earlier_one_is_missing(ctx: ReleaseContext) -> None:
    ledger = Ledger()
    run_stages(
        ledger,
        ctx,
        [("register", lambda c, e: register_version(c, e, registry=InMemoryRegistry(), tracking_uri="m"))],
    )
    assert ledger.result().decision == "error"
    assert any("a trained model" in r for r in ledger.reasons())


def test_evidence_holds_what_each_stage_produced(ctx: ReleaseContext) -> None:
    registry = InMemoryRegistry()
    ledger = Ledger()
    run_stages(ledger, ctx, pipeline(registry, {"canary": "skipped"}))
    ev = ledger.evidence
    assert isinstance(ev.trained, TrainedModel) and ev.gate is not None and ev.version is not None
    assert ev.version.version == "1" and np.isfinite(ev.gate.metrics["accuracy"])


class LinkedRegistry(InMemoryRegistry):
    """The fake, with an MLflow UI to link to (as a registry on an MLflow server has)."""

    def run_links(self, *, run_id: str) -> RunLinks | None:
        return RunLinks(ui="http://mlflow.example", experiment_id="1", run_id=run_id)


def test_the_conclusion_leaves_the_record_a_description_and_links_on_the_version(ctx: ReleaseContext) -> None:
    registry = LinkedRegistry()
    ledger = Ledger()
    ledger.begin(ctx)
    run_stages(ledger, ctx, pipeline(registry, {"canary": "rejected"}))
    prefect = "http://prefect.example/runs/flow-run/abc"
    ledger.apply(conclude(ctx, ledger, registry=registry, flow_run_id="abc", run_url=prefect))
    result = ledger.result(flow_run_id="abc")
    version = registry.get_version(model_name=ctx.model_name, version="1")
    assert version.description.startswith("**rolled_back** at stage `canary`: ")
    assert f"[Prefect run]({prefect})" in version.description
    assert version.run_id is not None
    record = registry.runs[version.run_id]["documents"]["slipway/release.json"]
    assert (record["decision"], record["flow_run_id"]) == ("rolled_back", "abc")
    assert result.links["Prefect run"] == prefect
    assert result.links["MLflow version"] == f"http://mlflow.example/#/models/{ctx.model_name}/versions/1"
    assert result.links["release record (JSON)"].endswith("artifactPath/slipway/release.json")


def killed_after_registration(ctx: ReleaseContext, registry: InMemoryRegistry) -> str:
    """A release that registered its version and was then killed: no conclude ran; the version's number."""
    ledger = Ledger()
    ledger.begin(ctx)
    run_stages(ledger, ctx, pipeline(registry, {})[:6])
    assert ledger.evidence.version is not None
    return ledger.evidence.version.version


def test_a_finished_release_leaves_its_decision_on_its_version(ctx: ReleaseContext) -> None:
    for script, decision in (({"canary": "skipped"}, "registered"), ({"image": "error"}, "error")):
        result, registry = release(replace(ctx, lease_key="fake:1"), script)
        version = registry.get_version(model_name=ctx.model_name, version=str(result.model_version))
        assert version.tags[Tag.DECISION] == decision
        assert version.tags[Tag.RELEASE_LEASE] == "fake:1"
        marked = mark_interrupted(
            registry, model_name=ctx.model_name, lease_key="fake:1", found_by="next", release_key="another"
        )
        assert marked == []


def test_versions_a_killed_release_left_under_the_lease_are_marked_interrupted_once(
    ctx: ReleaseContext,
) -> None:
    registry = crowned(ctx)
    mine = replace(prepared(Path(ctx.config_path).parent / "killed", seed=5), lease_key="file:h:/a")
    elsewhere = replace(prepared(Path(ctx.config_path).parent / "other-env", seed=6), lease_key="file:h:/b")
    killed = killed_after_registration(mine, registry)
    running = killed_after_registration(elsewhere, registry)  # another environment's release, still running
    found = "release of m from b.csv (pid 7 on h)"

    def mark(release_key: str) -> list[str]:
        return mark_interrupted(
            registry,
            model_name=ctx.model_name,
            lease_key="file:h:/a",
            found_by=found,
            release_key=release_key,
        )

    assert (
        mark(mine.release_key()) == []
    )  # a re-run of the killed release gets its version back and decides it
    assert mark(ctx.release_key()) == [killed]
    tags = registry.get_version(model_name=ctx.model_name, version=killed).tags
    assert (
        tags[Tag.DECISION] == "error"
        and found in tags[Tag.INTERRUPTED]
        and "file:h:/a" in tags[Tag.ERROR_REASON]
    )
    assert Tag.DECISION not in registry.get_version(model_name=ctx.model_name, version=running).tags
    assert registry.get_alias(model_name=ctx.model_name, alias=CHAMPION).version == "1"  # type: ignore[union-attr]
    assert mark(ctx.release_key()) == []
    entry = version_entry(registry.get_version(model_name=ctx.model_name, version=killed))
    assert (entry.decision, entry.stage) == ("error", "unknown (interrupted)")


def test_recovery_rolls_back_a_canary_nobody_drives_and_names_a_backend_that_fails(
    ctx: ReleaseContext,
) -> None:
    from slipway.deploy.base import ModelRelease
    from slipway.deploy.fake import FakeTarget, FakeWorld
    from slipway.errors import RegistryError
    from slipway.release.interrupted import Recovery, recover

    world = FakeWorld()
    target = FakeTarget(world)
    target.deploy_stable(ModelRelease("m", "1"), ready_timeout_s=1)
    assert target.start_canary(ModelRelease("m", "2"), ready_timeout_s=1)
    target.set_traffic(weight=25, shadow=0)  # then its release was killed

    def broken() -> InMemoryRegistry:
        raise RegistryError("mlflow: connection refused")

    def recovered(registry: Callable[[], InMemoryRegistry]) -> Recovery:
        return recover(
            registry=registry,
            target=lambda: FakeTarget(world),
            model_name=ctx.model_name,
            lease_key="fake:1",
            found_by="next release",
            release_key="k",
        )

    found = recovered(broken)
    assert (found.removed_canary, found.interrupted) == ("2", [])
    assert len(found.problems) == 1 and "connection refused" in found.problems[0]
    state = FakeTarget(world).state()
    assert (state.stable, state.canary, state.weight) == (ModelRelease("m", "1"), None, 0)
    again = recovered(InMemoryRegistry)
    assert (again.removed_canary, again.interrupted, again.problems) == (None, [], [])
