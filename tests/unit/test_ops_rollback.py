"""Audited rollback over the in-memory registry and the fake target: the plan, the refusals, the order of effects."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.deploy.fake import FakeTarget
from slipway.errors import DeployError, RegistryError, UsageError
from slipway.locks.base import Holder
from slipway.names import CHAMPION
from slipway.ops.audit import read_records
from slipway.ops.rollback import RollbackRefused, RollbackResult, rollback_serving
from slipway.registry.base import VersionInfo
from slipway.registry.fake import InMemoryRegistry
from tests.unit.ops_world import MODEL, history, release_of, serving


def run(
    reg: InMemoryRegistry,
    target: FakeTarget | None,
    audit: Path,
    *,
    to: str | None = None,
    reason: str = "p99 doubled after the release",
    release_env: dict[str, str] | None = None,
) -> RollbackResult:
    return rollback_serving(
        registry=reg,
        target=target,
        model_name=MODEL,
        to_version=to,
        reason=reason,
        actor="alice",
        release_for=lambda v: release_of(v, **(release_env or {})),
        audit_path=audit,
        ready_timeout_s=5,
        now=lambda: "2026-11-25T20:00:00+00:00",
    )


def champion(reg: InMemoryRegistry) -> str:
    got = reg.get_alias(model_name=MODEL, alias=CHAMPION)
    assert got is not None
    return got.version


def test_default_rollback_restores_the_previous_champion_everywhere(tmp_path: Path) -> None:
    reg = history()
    target = serving(reg)
    audit = tmp_path / "audit.jsonl"

    result = run(reg, target, audit)

    assert champion(reg) == "1"
    assert target.state().stable is not None and target.state().stable.model_version == "1"
    assert target.world.calls[-1] == "deploy_stable 1"
    for version in ("1", "2"):  # both versions carry who/when/why/from/to
        tags = reg.get_version(model_name=MODEL, version=version).tags
        assert tags["slipway.rollback.by"] == "alice"
        assert tags["slipway.rollback.at"] == "2026-11-25T20:00:00+00:00"
        assert tags["slipway.rollback.reason"] == "p99 doubled after the release"
        assert (tags["slipway.rollback.from"], tags["slipway.rollback.to"]) == ("2", "1")
    restored = reg.get_version(model_name=MODEL, version="1").tags
    assert restored["slipway.champion_via"] == "rollback"
    assert restored["slipway.champion_since"] == "2026-11-25T20:00:00+00:00"
    assert restored["slipway.promoted_at"] != restored["slipway.champion_since"]  # first promotion kept
    [record] = read_records(audit)
    assert (record.from_version, record.to_version, record.actor, record.target) == (
        "2",
        "1",
        "alice",
        "fake",
    )
    assert record.id == restored["slipway.rollback.id"]
    assert result.redeployed is True


def test_rollback_is_idempotent_with_and_without_to(tmp_path: Path) -> None:
    reg = history()
    target = serving(reg)
    audit = tmp_path / "audit.jsonl"
    run(reg, target, audit, to="1")
    calls = list(target.world.calls)

    again = run(reg, target, audit, to="1")
    bare = run(reg, target, audit)  # a bare re-run never walks further back on its own

    assert again.noop and "already the champion" in again.message
    assert bare.noop and "already the result of a rollback from version 2" in bare.message
    assert champion(reg) == "1"
    assert target.world.calls == calls  # nothing redeployed
    assert len(read_records(audit)) == 1


def test_already_champion_but_not_served_is_redeployed_without_touching_the_registry(tmp_path: Path) -> None:
    reg = history()
    target = serving(reg)
    audit = tmp_path / "audit.jsonl"
    run(reg, None, audit, to="1")  # the registry moved (target none), the fake target still serves 2
    tags = {v.version: v.tags for v in reg.list_versions(model_name=MODEL)}

    result = run(reg, target, audit, to="1")

    assert result.noop and result.redeployed
    assert "the fake target served version 2: redeployed it" in result.message
    assert target.state().stable is not None and target.state().stable.model_version == "1"
    assert {v.version: v.tags for v in reg.list_versions(model_name=MODEL)} == tags
    assert len(read_records(audit)) == 1


def test_a_crash_after_the_alias_moved_gets_its_audit_record_on_the_rerun(tmp_path: Path) -> None:
    reg = history()
    audit = tmp_path / "audit.jsonl"
    run(reg, None, audit, to="1")
    audit.unlink()  # as if the process died before appending

    run(reg, None, audit, to="1")

    [record] = read_records(audit)
    assert (record.from_version, record.to_version) == ("2", "1")


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("9", "version '9' of model m does not exist"),
        ("3", "version 3 of model m was rejected at stage canary (failed: shadow_nonfinite)"),
        ("4", "version 4 of model m was never promoted (it never held champion)"),
    ],
)
def test_refusals_name_the_version_and_change_nothing(tmp_path: Path, to: str, message: str) -> None:
    reg = history()
    target = serving(reg)
    before = {v.version: v.tags for v in reg.list_versions(model_name=MODEL)}
    calls = list(target.world.calls)

    with pytest.raises(RollbackRefused) as exc:
        run(reg, target, tmp_path / "audit.jsonl", to=to)

    assert message in str(exc.value)
    assert isinstance(exc.value, UsageError)  # the CLI exits 2
    assert champion(reg) == "2"
    assert {v.version: v.tags for v in reg.list_versions(model_name=MODEL)} == before
    assert target.world.calls == calls
    assert not (tmp_path / "audit.jsonl").exists()


def test_first_champion_has_nothing_to_roll_back_to(tmp_path: Path) -> None:
    with pytest.raises(RollbackRefused, match="model m has no champion"):
        run(InMemoryRegistry(), None, tmp_path / "b.jsonl")
    only = history()
    only.set_champion(model_name=MODEL, version="1", tags={})
    with pytest.raises(RollbackRefused, match="champion version 1 records no previous champion"):
        run(only, None, tmp_path / "c.jsonl")
    with pytest.raises(UsageError, match="--reason"):
        run(history(), None, tmp_path / "d.jsonl", reason="   ")


def test_a_failed_redeploy_moves_no_alias_and_writes_nothing(tmp_path: Path) -> None:
    reg = history()
    target = serving(reg)

    with pytest.raises(DeployError) as exc:
        run(reg, target, tmp_path / "audit.jsonl", release_env={"SLIPWAY_SERVE_FAULT_NEVER_READY": "true"})

    assert "rollback to version 1 of m" in str(exc.value)
    assert "champion stays version 2" in str(exc.value)
    assert champion(reg) == "2"
    assert target.state().stable is not None and target.state().stable.model_version == "2"
    assert "slipway.rollback.id" not in reg.get_version(model_name=MODEL, version="1").tags
    assert not (tmp_path / "audit.jsonl").exists()


def test_a_canary_in_flight_is_refused(tmp_path: Path) -> None:
    reg = history()
    target = serving(reg)
    running = Holder(what="release of version 4")
    assert target.release_lock().try_acquire(running) is None  # its release is alive
    target.start_canary(release_of(reg.get_version(model_name=MODEL, version="4")), ready_timeout_s=1)
    with pytest.raises(DeployError, match="canary in flight \\(version 4"):
        run(reg, target, tmp_path / "audit.jsonl")
    assert champion(reg) == "2" and target.state().canary is not None


@pytest.mark.parametrize("to", ["2", None])  # the champion already (a no-op), and a real rollback
def test_a_canary_left_by_a_dead_release_is_removed(tmp_path: Path, to: str | None) -> None:
    reg = history()
    target = serving(reg)
    target.start_canary(release_of(reg.get_version(model_name=MODEL, version="4")), ready_timeout_s=1)
    target.hold_canary(ttl_s=30)
    target.set_traffic(weight=25, shadow=0)
    target.world.clock_s += 60  # its release stopped renewing the lease, and holds no release lock

    result = run(reg, target, tmp_path / "audit.jsonl", to=to)

    assert result.removed_canary == "4" and target.state().canary is None
    assert target.state().stable is not None
    assert target.state().stable.model_version == ("2" if to == "2" else result.to_version)


class BrokenAlias(InMemoryRegistry):
    def set_champion(self, *, model_name: str, version: str, tags: dict[str, str]) -> VersionInfo:
        raise RegistryError("registry down")


def test_a_registry_failure_after_the_redeploy_puts_the_old_champion_back(tmp_path: Path) -> None:
    reg = BrokenAlias()
    src = history()
    reg.__dict__.update(src.__dict__)  # same versions, aliases and runs
    target = serving(reg)

    with pytest.raises(RegistryError):
        run(reg, target, tmp_path / "audit.jsonl")

    assert target.world.calls[-2:] == ["deploy_stable 1", "deploy_stable 2"]
    assert target.state().stable is not None and target.state().stable.model_version == "2"
    assert champion(reg) == "2"


def test_target_none_moves_only_the_alias_and_says_so(tmp_path: Path) -> None:
    reg = history()
    result = run(reg, None, tmp_path / "audit.jsonl", to="1")
    assert champion(reg) == "1"
    assert result.redeployed is False
    assert "only the alias moved" in result.message
    assert read_records(tmp_path / "audit.jsonl")[0].target == "none"
