"""`slipway history`: versions and rejected attempts, newest first, with decisions and reasons."""

from __future__ import annotations

from pathlib import Path

from slipway.ops.history import release_history, render_history
from slipway.ops.rollback import rollback_serving
from slipway.ops.status import DeployView
from tests.unit.ops_world import MODEL, history, release_of


def test_newest_first_with_every_kind_of_decision() -> None:
    entries = release_history(registry=history(), model_name=MODEL, limit=20)

    got = [(e.kind, e.version, e.decision, e.stage) for e in entries]
    assert got == [
        ("version", "4", "registered", "register"),
        ("version", "3", "rolled_back", "canary"),
        ("attempt", None, "rejected", "quality_gate"),
        ("version", "2", "promoted", "canary"),
        ("version", "1", "promoted", "canary"),
    ]
    assert entries[1].reason == "failed: shadow_nonfinite"
    assert entries[2].reason == "FAIL: accuracy 0.5000 >= floor 0.9000; gate rejected: accuracy below limit"
    assert entries[3].reason == "canary: promoted after 4 steps" and entries[3].champion
    assert [e.created_at for e in entries][-1] == "2027-01-15T08:00:00+00:00"  # epoch 1_800_000_000, UTC
    assert [e.version for e in release_history(registry=history(), model_name=MODEL, limit=2)] == ["4", "3"]
    assert release_history(registry=history(), model_name="other", limit=5) == []


def test_an_undecided_version_that_is_the_canary_says_so() -> None:
    running = DeployView(target="local", stable_version="2", canary_version="4", weight=25)
    left = running.model_copy(update={"weight": 0, "canary_unattended": True})
    in_flight, orphan, elsewhere = (
        release_history(registry=history(), model_name=MODEL, limit=20, deploy=d)[0]
        for d in (running, left, running.model_copy(update={"canary_version": None}))
    )
    assert (in_flight.version, in_flight.decision, in_flight.stage) == ("4", "registered", "canary")
    assert (
        orphan.stage == "canary" and orphan.reason != in_flight.reason
    )  # a dead release's canary, told apart
    assert (elsewhere.version, elsewhere.stage) == ("4", "register")


def test_a_rollback_shows_on_both_versions(tmp_path: Path) -> None:
    reg = history()
    rollback_serving(
        registry=reg,
        target=None,
        model_name=MODEL,
        to_version=None,
        reason="bad",
        actor="bob",
        release_for=release_of,
        audit_path=tmp_path / "a.jsonl",
        ready_timeout_s=1,
        now=lambda: "T",
    )
    entries = {e.version: e for e in release_history(registry=reg, model_name=MODEL, limit=20)}
    assert entries["2"].notes == ["demoted by rollback to version 1 at T by bob: bad"]
    assert entries["1"].notes == ["restored as champion by rollback from version 2 at T by bob: bad"]
    assert entries["1"].champion and not entries["2"].champion
    text = "\n".join(render_history(list(entries.values()), model_name=MODEL))
    assert "version 1 [champion]: promoted at canary" in text
    assert "attempt (run " in text


def test_empty_history_says_so() -> None:
    assert render_history([], model_name=MODEL) == ["model m: no releases recorded"]
