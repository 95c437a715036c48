"""A read-only view of an MLflow SQLite store through the standard library, for answers in milliseconds.

Importing MLflow and opening its store takes about 3 s on a small machine; `slipway why` and
`slipway status` only read a version's tags and aliases. This reader opens the database read-only and
checks the schema first: a store it does not recognise is a RegistryError (callers fall back to MLflow).
The contract suite runs it against stores the MLflow backend wrote.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from slipway.errors import RegistryError
from slipway.names import Tag
from slipway.registry.base import (
    RejectedAttempt,
    VersionInfo,
    VersionReader,
)

NEEDED = {
    "model_versions": {"name", "version", "creation_time", "run_id", "current_stage", "description"},
    "model_version_tags": {"key", "value", "name", "version"},
    "registered_model_aliases": {"alias", "version", "name"},
    "experiments": {"experiment_id", "name", "lifecycle_stage"},
    "runs": {"run_uuid", "experiment_id", "start_time", "lifecycle_stage"},
    "tags": {"key", "value", "run_uuid"},
}
VERSION_TABLES = ("model_versions", "model_version_tags", "registered_model_aliases", "experiments")
DELETED = "Deleted_Internal"  # MLflow's stage for a soft-deleted version


def sqlite_path(tracking_uri: str) -> Path | None:
    """Pure; the database file of a `sqlite:///PATH` URI, or None for any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])


class SqliteVersionReader(VersionReader):
    """Reads versions, tags and aliases from an MLflow SQLite file (opened read-only per call)."""

    def __init__(self, *, db_path: Path, experiment: str) -> None:
        self.db_path = db_path
        self.experiment = experiment
        self._workspace: bool | None = None

    def _connect(self) -> sqlite3.Connection:
        if not self.db_path.is_file():
            raise RegistryError(f"MLflow store {self.db_path} does not exist")
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        if self._workspace is None:
            self._workspace = self._check_schema(con)
        return con

    def _check_schema(self, con: sqlite3.Connection) -> bool:
        """True when the tables carry MLflow's `workspace` column (rows then read from 'default')."""
        has_workspace = True
        for table, columns in NEEDED.items():
            found = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
            if not columns <= found:
                con.close()
                raise RegistryError(
                    f"MLflow store {self.db_path}: table {table} lacks {sorted(columns - found)}; schema not recognised"
                )
            has_workspace = has_workspace and ("workspace" in found or table not in VERSION_TABLES)
        return has_workspace

    def _where(self, alias: str = "") -> str:
        return f" AND {alias}workspace = 'default'" if self._workspace else ""

    def _info(
        self,
        con: sqlite3.Connection,
        name: str,
        version: int,
        run_id: str | None,
        created: int | None,
        description: str | None,
    ) -> VersionInfo:
        tags = dict(
            con.execute(
                "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?" + self._where(),
                (name, version),
            ).fetchall()
        )
        aliases = sorted(
            row[0]
            for row in con.execute(
                "SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ?" + self._where(),
                (name, version),
            )
        )
        return VersionInfo(
            name=name,
            version=str(version),
            run_id=run_id,
            tags=tags,
            aliases=tuple(aliases),
            created_at=created / 1000.0 if created else None,
            description=description or "",
        )

    def _rows(
        self, con: sqlite3.Connection, name: str, version: int | None
    ) -> list[tuple[int, str | None, int | None, str | None]]:
        sql = (
            "SELECT version, run_id, creation_time, description FROM model_versions "
            "WHERE name = ? AND current_stage != ?"
        )
        args: tuple[object, ...] = (name, DELETED)
        if version is not None:
            sql, args = sql + " AND version = ?", (*args, version)
        return con.execute(sql + self._where() + " ORDER BY version DESC", args).fetchall()

    def get_alias(self, *, model_name: str, alias: str) -> VersionInfo | None:
        """Non-blocking read; None when the model or the alias does not exist."""
        with _closing(self._connect()) as con:
            row = con.execute(
                "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?" + self._where(),
                (model_name, alias),
            ).fetchone()
            if row is None:
                return None
            rows = self._rows(con, model_name, int(row[0]))
            return self._info(con, model_name, *rows[0]) if rows else None

    def get_version(self, *, model_name: str, version: str) -> VersionInfo:
        """Non-blocking read; the version with its tags and aliases; RegistryError if it does not exist."""
        if not version.isdigit():
            raise RegistryError(f"model version {model_name}/{version} not found: versions are numbers")
        with _closing(self._connect()) as con:
            rows = self._rows(con, model_name, int(version))
            if not rows:
                raise RegistryError(f"model version {model_name}/{version} not found")
            return self._info(con, model_name, *rows[0])

    def list_versions(self, *, model_name: str) -> list[VersionInfo]:
        """Non-blocking read; every version with its tags and aliases, newest first; [] for an unknown model."""
        with _closing(self._connect()) as con:
            return [self._info(con, model_name, *row) for row in self._rows(con, model_name, None)]

    def list_rejections(self, *, model_name: str) -> list[RejectedAttempt]:
        """Non-blocking read; the attempts `record_rejection` logged for this model, newest first; [] if none."""
        with _closing(self._connect()) as con:
            runs = con.execute(
                "SELECT r.run_uuid, r.start_time FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id "
                "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = ? AND t.value = 'rejected' "
                "WHERE e.name = ? AND r.lifecycle_stage = 'active'"
                + self._where("e.")
                + " ORDER BY r.start_time DESC",
                (Tag.DECISION, self.experiment),
            ).fetchall()
            found = []
            for run_id, start in runs:
                tags = dict(
                    con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall()
                )
                if tags.get(Tag.MODEL_NAME, model_name) != model_name:
                    continue
                stage = tags.get(Tag.REJECTED_AT, "unknown")
                found.append(
                    RejectedAttempt(
                        run_id=run_id,
                        stage=stage,
                        created_at=start / 1000.0,
                        reason=tags.get(Tag.REJECTION_REASON) or f"rejected at stage {stage}",
                        tags=tags,
                    )
                )
            return found


class _closing:
    """Close a connection on exit (sqlite3's own context manager only ends the transaction)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()
