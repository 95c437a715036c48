"""Whether `apply` / `materialize` would redo work already done: pure rules over a small state file.

A state file per feature repository (`<SLIPWAY_HOME>/features/<repo id>.json`) records, per online store, the
last apply (the repository's content hash) and the last materialization (content hash, window, the data's last
event time, and a stamp read back from the online store itself). Rules of `materialize_cached`:
1. nothing recorded, another content hash, another start, or an online store whose stamp changed (written by
   someone else, emptied, a new server) -> run;
2. the same end -> cached;
3. both ends at or past the data's last event time (when known) -> cached: the same rows are the latest;
4. otherwise run.
An apply is cached when the same content hash was applied to the same registry and online store and the
registry still exists. `force` skips both caches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

_SKIP_DIRS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".pytest_cache", ".venv"})
_SIDE_FILES = ("-journal", "-wal", "-shm")


def content_hash(root: Path, *, exclude: Iterable[Path] = ()) -> str:
    """Blocking (reads every file); sha256 over the relative paths and bytes of the files under `root`, minus
    `exclude` (the registry, the SQLite online store and their journals) and caches (__pycache__, .git)."""
    skip = {p.resolve() for p in exclude}
    skip |= {p.with_name(p.name + side) for p in skip for side in _SIDE_FILES}
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or _SKIP_DIRS.intersection(rel.parts) or path.resolve() in skip:
            continue
        digest.update(rel.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class MaterializeRecord:
    """The last materialization into one online store."""

    content: str  # content hash of the repository materialized
    start: str  # ISO UTC
    end: str  # ISO UTC
    horizon: str | None  # the data's last event time (ISO UTC), None when unknown
    stamp: str  # what the online store answered right after (file fingerprint, marker token)


def materialize_cached(
    prev: MaterializeRecord | None, *, content: str, start: datetime, end: datetime, stamp: str | None
) -> str | None:
    """Pure; why this materialization is a no-op (the rules above), or None when it must run."""
    if prev is None or prev.content != content or datetime.fromisoformat(prev.start) != start:
        return None
    if stamp is None or stamp != prev.stamp:
        return None
    prev_end = datetime.fromisoformat(prev.end)
    if prev_end == end:
        return f"content {content[:12]} already materialized up to {prev.end}"
    if prev.horizon is not None and min(prev_end, end) >= datetime.fromisoformat(prev.horizon):
        return (
            f"content {content[:12]} already materialized up to {prev.end}, past the data's last event "
            f"{prev.horizon}: the same rows"
        )
    return None


class StateFile:
    """The JSON state of one repository: {"apply": {online id: {...}}, "materialize": {online id: {...}}}."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_repo(cls, state_dir: Path, repo: Path) -> StateFile:
        """Pure; the state file of `repo` (by its absolute path) under `state_dir`."""
        repo_id = hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:16]
        return cls(state_dir / f"{repo.resolve().name}-{repo_id}.json")

    def load(self) -> dict[str, Any]:
        """Blocking (reads the file); {} when absent or unreadable (the cache is then cold, never wrong)."""
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def get(self, section: str, online_id: str) -> dict[str, Any] | None:
        """Blocking; the record of `section` for `online_id`, if any."""
        entry = self.load().get(section, {}).get(online_id)
        return entry if isinstance(entry, dict) else None

    def put(self, section: str, online_id: str, record: dict[str, Any]) -> None:
        """Blocking; records `record` atomically (write + rename), keeping the other entries."""
        doc = self.load()
        doc.setdefault(section, {})[online_id] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(doc, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def materialized(self, online_id: str) -> MaterializeRecord | None:
        """Blocking; the last materialization into `online_id`, if recorded."""
        entry = self.get("materialize", online_id)
        try:
            return MaterializeRecord(**entry) if entry is not None else None
        except TypeError:
            return None

    def record_materialized(self, online_id: str, record: MaterializeRecord) -> None:
        """Blocking; records a materialization."""
        self.put("materialize", online_id, asdict(record))
