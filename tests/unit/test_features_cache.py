"""When apply/materialize are cached no-ops: the pure rules of slipway/features/cache.py, the content hash and
the state file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from slipway.features.base import EPOCH
from slipway.features.cache import MaterializeRecord, StateFile, content_hash, materialize_cached

END = datetime(2025, 6, 1, tzinfo=UTC)
HORIZON = datetime(2025, 3, 2, tzinfo=UTC)
PREV = MaterializeRecord(
    content="c1", start=EPOCH.isoformat(), end=END.isoformat(), horizon=HORIZON.isoformat(), stamp="s1"
)


def cached(prev: MaterializeRecord | None = PREV, **kw: object) -> str | None:
    args: dict[str, object] = {"content": "c1", "start": EPOCH, "end": END, "stamp": "s1"}
    args.update(kw)
    return materialize_cached(prev, **args)  # type: ignore[arg-type]


def test_1_a_first_run_other_content_start_or_stamp_runs() -> None:
    assert cached(None) is None
    assert cached(content="c2") is None
    assert cached(start=EPOCH + timedelta(days=1)) is None
    assert (
        cached(stamp="s2") is None and cached(stamp=None) is None
    )  # the online store changed or cannot tell


def test_2_the_same_window_is_cached() -> None:
    assert "already materialized up to" in (cached() or "")


def test_3_any_end_past_the_last_event_is_the_same_rows() -> None:
    assert "the same rows" in (cached(end=END + timedelta(days=400)) or "")
    assert "the same rows" in (cached(end=HORIZON) or "")


def test_4_an_end_before_the_last_event_or_an_unknown_horizon_runs() -> None:
    assert cached(end=HORIZON - timedelta(seconds=1)) is None
    unknown = MaterializeRecord(**{**PREV.__dict__, "horizon": None})
    assert cached(unknown, end=END + timedelta(days=1)) is None


def test_content_hash_covers_files_but_not_feast_outputs_or_caches(tmp_path: Path) -> None:
    (tmp_path / "features.py").write_text("x = 1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "registry.db").write_bytes(b"r1")
    first = content_hash(tmp_path, exclude=[tmp_path / "data" / "registry.db"])
    (tmp_path / "data" / "registry.db").write_bytes(b"r2")
    (tmp_path / "data" / "registry.db-journal").write_bytes(b"j")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "features.pyc").write_bytes(b"c")
    assert content_hash(tmp_path, exclude=[tmp_path / "data" / "registry.db"]) == first
    (tmp_path / "features.py").write_text("x = 2\n")
    assert content_hash(tmp_path, exclude=[tmp_path / "data" / "registry.db"]) != first


def test_the_state_file_keeps_each_online_store_and_survives_garbage(tmp_path: Path) -> None:
    state = StateFile.for_repo(tmp_path / "home", tmp_path / "repo")
    assert state.materialized("sqlite:///a") is None
    state.record_materialized("sqlite:///a", PREV)
    state.put("apply", "redis://h:1", {"content": "c1"})
    assert state.materialized("sqlite:///a") == PREV and state.get("apply", "redis://h:1") == {
        "content": "c1"
    }
    state.path.write_text("{not json")
    assert state.materialized("sqlite:///a") is None  # a cold cache, never a wrong one
