"""The local target's `deployment.json`: what runs where, read by the controller AND by the router.

One file is the single source of truth: the controller rewrites it atomically (temp file + rename)
and the router re-reads it when its (mtime, inode, size) changes, then reports the `generation` it
applied, so a traffic change is confirmed, not assumed. Processes are recorded by pid plus the
kernel's start time, so a recycled pid never passes for a live server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slipway.deploy.base import ModelRelease
from slipway.errors import DeployError

STATE_FILE = "deployment.json"
SCHEMA_VERSION = 1


class ReleaseRecord(BaseModel):
    """A `ModelRelease` as stored (paths as strings)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model_name: str
    model_version: str
    bundle_dir: str | None = None
    image_ref: str | None = None
    env: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, release: ModelRelease) -> ReleaseRecord:
        """Pure; the record of a release (bundle path made absolute)."""
        bundle = str(release.bundle_dir.expanduser().resolve()) if release.bundle_dir else None
        return cls(
            model_name=release.model_name,
            model_version=release.model_version,
            bundle_dir=bundle,
            image_ref=release.image_ref,
            env=dict(release.env),
        )

    def release(self) -> ModelRelease:
        """Pure; back to the interface's dataclass."""
        return ModelRelease(
            model_name=self.model_name,
            model_version=self.model_version,
            bundle_dir=Path(self.bundle_dir) if self.bundle_dir else None,
            image_ref=self.image_ref,
            env=dict(self.env),
        )


class ProcessRecord(BaseModel):
    """One process this target started: pid, its kernel start time (pid-reuse guard), port, log file."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    role: str = Field(description="stable, canary or router (what it was started as).")
    pid: int
    start_ticks: int | None = Field(default=None, description="/proc/<pid>/stat starttime; None off Linux.")
    port: int
    log: str = ""
    release: ReleaseRecord | None = Field(
        default=None, description="What a server serves; None for the router."
    )
    container: str | None = Field(
        default=None,
        description="Podman mode: the container `pid` (its `podman run`) runs; None for a process.",
    )
    podman: list[str] | None = Field(
        default=None,
        description="Podman mode: the podman command + global flags that can remove `container`.",
    )
    argv: list[str] = Field(
        default_factory=list,
        description="The command it was started with: the supervisor starts it again with the same one "
        "(same port); empty: not restartable.",
    )
    restarts: int = Field(default=0, ge=0, description="How often the supervisor has started it again.")

    @property
    def url(self) -> str:
        """The loopback base URL."""
        return f"http://127.0.0.1:{self.port}"

    def restarted(self, *, pid: int, start_ticks: int | None) -> ProcessRecord:
        """Pure; the record of the same role, command and port, run again as `pid`."""
        return self.model_copy(update={"pid": pid, "start_ticks": start_ticks, "restarts": self.restarts + 1})


class DeploymentFile(BaseModel):
    """The whole local deployment: router, stable, canary, traffic, and processes waiting to be stopped."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    generation: int = Field(default=0, description="Bumped on every traffic or upstream change.")
    seed: int = Field(default=0, description="Router RNG seed (re-seeded per generation).")
    weight: int = Field(default=0, ge=0, le=100)
    shadow: int = Field(default=0, ge=0, le=100)
    canary_lease_until: float | None = Field(
        default=None,
        description="Wall-clock time after which the router sends the canary nothing (weight and shadow 0) "
        "unless the release renews it; None: no lease (the canary keeps its weight).",
    )
    upstream_timeout_s: float = Field(default=5.0, gt=0, description="Router → server request timeout.")
    router_port: int | None = Field(
        default=None,
        description="The router's port, kept across restarts and `deploy stop` so clients' URL stays the same.",
    )
    router: ProcessRecord | None = None
    supervisor: ProcessRecord | None = Field(
        default=None,
        description="The process that restarts a dead router, stable or canary (see `supervisor.py`).",
    )
    stable: ProcessRecord | None = None
    canary: ProcessRecord | None = None
    leftovers: list[ProcessRecord] = Field(
        default_factory=list,
        description="Started but not (or no longer) in a role: stopped by the next mutating call.",
    )


def read_state(path: Path) -> DeploymentFile:
    """Blocking (one small read); the file's contents, or an empty deployment if absent; DeployError if corrupt."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return DeploymentFile()
    except OSError as exc:
        raise DeployError(f"local target: cannot read {path}: {exc}") from None
    try:
        return DeploymentFile.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise DeployError(f"local target: {path} is not a valid deployment file: {exc}") from None


def write_state(path: Path, state: DeploymentFile) -> None:
    """Blocking; atomic (temp file, fsync, rename), so the router never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as fh:
        fh.write(state.model_dump_json(indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
