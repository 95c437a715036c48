"""The operations audit log: one JSON object per line, appended, never rewritten; idempotent per record id."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from pydantic import BaseModel, Field

from slipway.errors import UsageError


class AuditRecord(BaseModel):
    """One operation someone ran against the serving model."""

    id: str = Field(
        description="Unique per operation; the same id is also tagged on the versions it touched."
    )
    action: str = Field(description="What was done, e.g. rollback.")
    model_name: str
    from_version: str | None = Field(description="The champion before the operation.")
    to_version: str = Field(description="The champion after the operation.")
    reason: str = Field(description="Why, as the operator wrote it.")
    actor: str = Field(description="Who ran it (user, or user and Prefect flow run).")
    at: str = Field(description="UTC ISO 8601 time of the operation.")
    target: str = Field(description="Deploy target that was redeployed (local, kubernetes) or none.")


def read_records(path: Path) -> list[AuditRecord]:
    """Blocking (one read); every record in file order; [] if the file does not exist; UsageError naming a bad line."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(AuditRecord.model_validate_json(line))
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: not an audit record: {exc}") from None
    return records


def append_record(path: Path, record: AuditRecord) -> bool:
    """Blocking; idempotent per `record.id` (False when already present); appends one line under a file lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        for line in fh:
            if line.strip() and json.loads(line).get("id") == record.id:
                return False
        fh.write(record.model_dump_json() + "\n")
        fh.flush()
    return True
