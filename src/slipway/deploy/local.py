"""The embedded deploy target: stable and canary as loopback server processes behind the local router.

Everything deployed is recorded in `<state_dir>/deployment.json` (see `state.py`), which the router
follows, so a new `LocalTarget` (after the orchestrator was killed) reads back exactly what runs.
Processes live in their own sessions and outlive the object and the command that started them; a
process is recorded BEFORE it is waited on, and anything started but not in a role ("leftovers") is
stopped by the next mutating call, so no canary is ever orphaned. Mutating calls hold a file lock.

Order of operations keeps every change zero-downtime: start and wait for the new process, re-point
the router and wait until it confirms the new generation, only then stop what it replaced.
Podman mode (`deploy.local.runtime: podman`, see `podman.py`): each server is a foreground
`podman run --rm` of the release's image BY DIGEST; the tracked pid is that `podman run`, the record
also names the container, and stopping it always ends with `podman rm -f` of that name.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway.deploy.base import (
    ArmWindow,
    Capabilities,
    ComponentHealth,
    DeploymentState,
    DeployTarget,
    HealthState,
    MetricsSource,
    ModelRelease,
    Observation,
    require_digest,
)
from slipway.deploy.podman import PodmanRuntime, container_name
from slipway.deploy.processes import alive, log_tail, server_env, spawn, stop, wait_http_ok
from slipway.deploy.state import (
    STATE_FILE,
    DeploymentFile,
    ProcessRecord,
    ReleaseRecord,
    read_state,
    write_state,
)
from slipway.errors import DeployError
from slipway.locks.base import ReleaseLock
from slipway.settings import Settings

if TYPE_CHECKING:
    import httpx

    from slipway.config import PipelineConfig

LOCK_TIMEOUT_S = 600.0
ROUTER_START_S = 30.0
APPLY_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0
WINDOW_TIMEOUT_S = 5.0


def default_state_dir(settings: Settings | None = None) -> Path:
    """Pure (no disk access); `<SLIPWAY_HOME>/deploy/local`."""
    return (settings or Settings()).home_path() / "deploy" / "local"


class LocalTarget(DeployTarget, MetricsSource):
    """Stable + canary servers (`python -m slipway.serving` processes, or podman containers) and a weighted router, on 127.0.0.1."""

    name = "local"

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        settings: Settings | None = None,
        router_port: int | None = None,
        seed: int = 0,
        upstream_timeout_s: float = 5.0,
        stop_grace_s: float = 15.0,
        python: str = sys.executable,
        client: httpx.Client | None = None,
        podman: PodmanRuntime | None = None,
    ) -> None:
        self.state_dir = (state_dir or default_state_dir(settings)).expanduser().resolve()
        self.state_file = self.state_dir / STATE_FILE
        self.router_port = router_port
        self.seed = seed
        self.upstream_timeout_s = upstream_timeout_s
        self.stop_grace_s = stop_grace_s
        self.python = python
        self.podman = podman  # None: process mode
        self._client = client
        self._owns_client = client is None
        self._thread_lock = threading.Lock()
        self._cursor: tuple[str, int] = ("", 0)  # (router boot id, last seq read)
        self._min_generation: int | None = None
        self._window_start = time.time()

    @classmethod
    def from_config(cls, cfg: PipelineConfig, *, settings: Settings) -> LocalTarget:
        """Pure (starts nothing); the target `deploy.local` describes (process or podman runtime)."""
        local = cfg.deploy.local
        podman = None
        if local.runtime == "podman":
            podman = PodmanRuntime.from_config(
                local.podman, tls_verify_default=settings.image_registry_tls_verify
            )
        return cls(settings=settings, podman=podman)

    # ---- reads -------------------------------------------------------------------------------

    def release_lock(self) -> ReleaseLock:
        """Non-blocking; the lease file `release.lease` in the state folder the releases share."""
        from slipway.locks.file import FileReleaseLock

        return FileReleaseLock(self.state_dir / "release.lease")

    def state(self) -> DeploymentState:
        """Non-blocking (probes take ms); stable = alive and /readyz 200; a dead canary counts as absent; a canary
        whose traffic lease expired is unattended, at weight and shadow 0 (what the router does)."""
        doc = read_state(self.state_file)
        stable = doc.stable if doc.stable and alive(doc.stable) and self._ready(doc.stable) else None
        canary = doc.canary if doc.canary and alive(doc.canary) else None
        lapsed = (
            canary is not None
            and doc.canary_lease_until is not None
            and time.time() >= doc.canary_lease_until
        )
        return DeploymentState(
            stable=stable.release.release() if stable and stable.release else None,
            canary=canary.release.release() if canary and canary.release else None,
            weight=0 if lapsed else doc.weight,
            shadow=0 if lapsed else doc.shadow,
            canary_ready=canary is not None and self._ready(canary),
            canary_unattended=lapsed,
        )

    def health(self) -> list[ComponentHealth]:
        """Non-blocking (one probe per process, ms); router, stable, canary and supervisor: up and answering,
        or down (the supervisor restarts a dead router or stable on its port), with pid, port and restarts."""
        doc = read_state(self.state_file)
        found = []
        for role, proc in (
            ("router", doc.router),
            ("stable", doc.stable),
            ("canary", doc.canary),
            ("supervisor", doc.supervisor),
        ):
            if proc is None:
                continue
            where = f"pid {proc.pid}" + (f", {proc.url}" if proc.port else "")
            state: HealthState
            if not alive(proc):
                state = "down"
            elif role == "supervisor":
                state = "running"
            elif role == "router":
                state = "ready" if self._router_applied(proc, doc.generation, timeout_s=0) else "not ready"
            else:
                state = "ready" if self._ready(proc) else "not ready"
            found.append(ComponentHealth(name=role, state=state, detail=where, restarts=proc.restarts))
        return found

    @property
    def router_url(self) -> str | None:
        """Non-blocking; where clients send `POST /predict` (None while no router runs)."""
        doc = read_state(self.state_file)
        return doc.router.url if doc.router and alive(doc.router) else None

    def processes(self) -> list[ProcessRecord]:
        """Non-blocking; every process this deployment has recorded (running or not)."""
        doc = read_state(self.state_file)
        procs = (doc.supervisor, doc.router, doc.stable, doc.canary, *doc.leftovers)
        return [p for p in procs if p is not None]

    # ---- DeployTarget ------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Pure; shadow, any weight and the canary lease (the router); images by digest only in podman mode."""
        if self.podman is None:
            return Capabilities(shadow=True, weights=None, requires_digest=False, canary_lease=True)
        return Capabilities(
            shadow=True,
            weights=None,
            requires_digest=True,
            canary_lease=True,
            why="deploy.local.runtime: podman runs images by digest",
        )

    def metrics_source(self) -> MetricsSource:
        """Non-blocking; the target itself (the router counts every request per arm)."""
        return self

    def replay_url(self) -> str | None:
        """Non-blocking; the router's URL (holdout rows are replayed at it while a canary runs)."""
        return self.router_url

    def deploy_stable(self, release: ModelRelease, *, ready_timeout_s: float) -> None:
        """Blocking until ready or timeout (DeployError, old stable untouched); idempotent; weight and shadow 0."""
        record = ReleaseRecord.of(release)
        with self._locked():
            doc = self._cleanup(read_state(self.state_file))
            current = doc.stable
            if current and current.release == record and alive(current) and self._ready(current):
                self._apply(doc, weight=0, shadow=0)
                return
            proc = self._spawn_server(record, role="stable")
            doc.leftovers.append(proc)  # recorded before the wait: a kill here leaves no orphan
            write_state(self.state_file, doc)
            ok, why = self._wait_ready(proc, timeout_s=ready_timeout_s)
            if not ok:
                self._retire(doc, proc)
                raise DeployError(f"local target: stable {record.model_name} v{record.model_version}: {why}")
            doc.leftovers.remove(proc)
            if current is not None:
                doc.leftovers.append(current)
            doc.stable = proc
            self._apply(doc, weight=0, shadow=0, force=True)
            if current is not None:
                self._retire(doc, current)

    def start_canary(self, release: ModelRelease, *, ready_timeout_s: float) -> bool:
        """Blocking until ready or timeout; idempotent; canary at weight 0 and shadow 0; False (and removed) if never ready."""
        record = ReleaseRecord.of(release)
        with self._locked():
            doc = self._cleanup(read_state(self.state_file))
            if doc.stable is None or not alive(doc.stable):
                raise DeployError("local target: no stable is running; deploy a stable before a canary")
            proc = doc.canary
            if proc is None or proc.release != record or not alive(proc):
                if proc is not None:
                    self._remove_canary(doc)
                proc = self._spawn_server(record, role="canary")
                doc.canary = proc  # in the router's upstreams at weight 0: no traffic until ready
            self._apply(doc, weight=0, shadow=0, force=True)
            ok, _ = self._wait_ready(proc, timeout_s=ready_timeout_s)
            if not ok:
                self._remove_canary(doc)
            return ok

    def set_traffic(self, *, weight: int, shadow: int) -> None:
        """Blocking until the router confirms (seconds at most); idempotent; DeployError without a live canary."""
        if not (0 <= weight <= 100 and 0 <= shadow <= 100):
            raise DeployError(f"local target: weight {weight} and shadow {shadow} must be within 0..100")
        with self._locked():
            doc = self._cleanup(read_state(self.state_file))
            if (weight or shadow) and (doc.canary is None or not alive(doc.canary)):
                raise DeployError("local target: no canary is running; cannot route traffic to it")
            self._apply(doc, weight=weight, shadow=shadow)

    def hold_canary(self, *, ttl_s: float) -> None:
        """Blocking (one write under the lock); idempotent; the router sends the canary traffic until now + ttl_s
        (`canary_lease_until`), then the stable only, on its own; no canary: no-op."""
        with self._locked():
            doc = read_state(self.state_file)
            if doc.canary is None:
                return
            doc.canary_lease_until = time.time() + ttl_s
            write_state(self.state_file, doc)

    def promote(self) -> None:
        """Blocking; idempotent (no-op without a canary); the canary becomes the stable, the old stable drains and stops."""
        with self._locked():
            doc = self._cleanup(read_state(self.state_file))
            canary = doc.canary
            if canary is None:
                self._apply(doc, weight=0, shadow=0)
                return
            if not alive(canary) or not self._ready(canary):
                raise DeployError(
                    f"local target: canary (pid {canary.pid}) is not running and ready; nothing to promote"
                )
            old = doc.stable
            if old is not None:
                doc.leftovers.append(old)
            doc.stable, doc.canary = canary.model_copy(update={"role": "stable"}), None
            doc.canary_lease_until = None
            self._apply(doc, weight=0, shadow=0, force=True)  # the router re-points before anything stops
            if old is not None:
                self._retire(doc, old)

    def rollback(self) -> None:
        """Blocking; idempotent (no-op without a canary); all traffic to the stable, canary stopped."""
        with self._locked():
            doc = self._cleanup(read_state(self.state_file))
            if doc.canary is not None:
                self._remove_canary(doc)
            elif doc.stable is not None:
                self._apply(doc, weight=0, shadow=0)

    def close(self) -> None:
        """Idempotent; closes the HTTP client (what is deployed keeps running)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def stop_all(self) -> None:
        """Blocking (graceful stops); idempotent; stops router, canary, stable and leftovers; empties the state."""
        with self._locked():
            doc = read_state(self.state_file)
            if (
                doc.supervisor is not None
            ):  # first, and unrecorded first: neither it nor the router restarts anything
                supervisor, doc.supervisor = doc.supervisor, None
                write_state(self.state_file, doc)
                stop(supervisor, grace_s=self.stop_grace_s)
            for proc in (doc.router, doc.canary, doc.stable, *doc.leftovers):
                if proc is not None:
                    stop(proc, grace_s=self.stop_grace_s)
            port = doc.router.port if doc.router is not None else doc.router_port  # the next deploy reuses it
            write_state(
                self.state_file,
                DeploymentFile(generation=doc.generation + 1, seed=doc.seed, router_port=port),
            )

    # ---- MetricsSource -----------------------------------------------------------------------

    def observe(self, *, weight: int) -> Observation:
        """Non-blocking (one HTTP read); the router's measurements since the previous call or traffic change; stale if unavailable or inconsistent."""
        import httpx

        end = time.time()
        start, self._window_start = self._window_start, end
        try:
            doc = read_state(self.state_file)
        except DeployError as exc:
            return Observation.unavailable(start_s=start, end_s=end, weight=weight, why=str(exc))
        if doc.router is None:
            return Observation.unavailable(
                start_s=start, end_s=end, weight=weight, why="local target: no router is deployed"
            )
        boot, since = self._cursor
        min_generation = doc.generation if self._min_generation is None else self._min_generation
        params: dict[str, str | int] = {"since": since, "boot": boot, "min_generation": min_generation}
        try:
            resp = self._http().get(
                f"{doc.router.url}/router/window", params=params, timeout=WINDOW_TIMEOUT_S
            )
            resp.raise_for_status()
            win = resp.json()
            self._cursor = (str(win["boot"]), int(win["next"]))
            obs = Observation(
                start_s=start,
                end_s=end,
                weight=weight,
                stable=_arm_window(win["arms"]["stable"]),
                canary=_arm_window(win["arms"]["canary"]),
                shadow_labels=[(int(a), int(b)) for a, b in win["shadow"].get("label_pairs", [])],
                shadow_pairs=[
                    (float(a), math.nan if b is None else float(b)) for a, b in win["shadow"]["pairs"]
                ],
                shadow_latencies=[(float(a), float(b)) for a, b in win["shadow"].get("latency_pairs", [])],
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            return Observation.unavailable(
                start_s=start,
                end_s=end,
                weight=weight,
                why=f"local router unavailable: {type(exc).__name__}: {exc}",
            )
        problems = _inconsistencies(win, doc, weight=weight)
        if problems:
            obs.stale, obs.source_error = True, "; ".join(problems)
        return obs

    # ---- internals ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.state_dir / ".lock", "a+") as fh:
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DeployError(
                            f"local target: {self.state_dir} is locked by another process"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(trust_env=False, timeout=PROBE_TIMEOUT_S)
        return self._client

    def _ready(self, proc: ProcessRecord) -> bool:
        import httpx

        try:
            return bool(self._http().get(f"{proc.url}/readyz", timeout=PROBE_TIMEOUT_S).status_code == 200)
        except httpx.HTTPError:
            return False

    def _wait_ready(self, proc: ProcessRecord, *, timeout_s: float) -> tuple[bool, str]:
        return wait_http_ok(proc, client=self._http(), path="/readyz", timeout_s=timeout_s)

    def _spawn_server(self, record: ReleaseRecord, *, role: str) -> ProcessRecord:
        from slipway.ports import free_port

        if self.podman is not None:
            return self._spawn_container(record, role=role, podman=self.podman)
        if record.bundle_dir is None:
            raise DeployError(
                f"local target: {record.model_name} v{record.model_version} has no bundle_dir "
                "(image-only releases need deploy.local.runtime: podman)"
            )
        if not Path(record.bundle_dir).exists():
            raise DeployError(f"local target: bundle {record.bundle_dir} does not exist")
        port = free_port()
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{role}-{record.model_name}-v{record.model_version}-{port}")
        cmd = [self.python, "-m", "slipway.serving", "--model", record.bundle_dir]
        cmd += ["--port", str(port), "--host", "127.0.0.1"]
        log = self.state_dir / "logs" / f"{slug}.log"
        return spawn(cmd, role=role, port=port, log_path=log, env=server_env(record.env), release=record)

    def _spawn_container(self, record: ReleaseRecord, *, role: str, podman: PodmanRuntime) -> ProcessRecord:
        """Pull by digest (deadline), then a foreground `podman run` whose pid is the record's."""
        from slipway.ports import free_port

        what = f"{role} {record.model_name} v{record.model_version}"
        image = require_digest(record.image_ref, target="local target (podman)", what=what)
        podman.pull(image)
        port = free_port()
        name = container_name(state_dir=self.state_dir, role=role, port=port)
        cmd = podman.run_command(image_ref=image, name=name, port=port, env=record.env)
        log = self.state_dir / "logs" / f"{name}.log"
        return spawn(
            cmd,
            role=role,
            port=port,
            log_path=log,
            env=server_env({}),
            release=record,
            container=name,
            podman=podman.base(),
        )

    def _apply(self, doc: DeploymentFile, *, weight: int, shadow: int, force: bool = False) -> None:
        """Write the traffic (a new generation when it changed) and make sure the router follows it."""
        if (
            force
            or (doc.weight, doc.shadow) != (weight, shadow)
            or doc.upstream_timeout_s != self.upstream_timeout_s
        ):
            doc.generation += 1
            doc.weight, doc.shadow, doc.seed = weight, shadow, self.seed
            doc.upstream_timeout_s = self.upstream_timeout_s
            write_state(self.state_file, doc)
        self._ensure_router(doc)
        self._ensure_supervisor(doc)
        self._min_generation, self._window_start = doc.generation, time.time()

    def _ensure_supervisor(self, doc: DeploymentFile) -> None:
        """Non-blocking; a supervisor runs for this deployment (started and recorded if not)."""
        if doc.stable is None or (doc.supervisor is not None and alive(doc.supervisor)):
            return
        from slipway.deploy.supervisor import start_supervisor

        doc.supervisor = start_supervisor(self.state_file)
        write_state(self.state_file, doc)

    def _ensure_router(self, doc: DeploymentFile) -> None:
        """Blocking; the router runs and has applied `doc.generation` (started or restarted if needed)."""
        if doc.stable is None:
            return
        router = doc.router
        if router is not None and alive(router):
            if self._router_applied(router, doc.generation, timeout_s=APPLY_TIMEOUT_S):
                return
            stop(router, grace_s=self.stop_grace_s)  # alive but deaf: replace it
        from slipway.ports import free_port, port_free

        kept = router.port if router else doc.router_port  # clients keep the router's URL across restarts
        port = self.router_port or (kept if kept and port_free(kept) else None) or free_port()
        cmd = [
            self.python,
            "-m",
            "slipway.deploy.router",
            "--state",
            str(self.state_file),
            "--port",
            str(port),
        ]
        log = self.state_dir / "logs" / "router.log"
        doc.router = spawn(cmd, role="router", port=port, log_path=log, env=server_env({}), release=None)
        doc.router_port = port
        write_state(self.state_file, doc)
        ok, why = wait_http_ok(
            doc.router, client=self._http(), path="/router/healthz", timeout_s=ROUTER_START_S
        )
        if not ok or not self._router_applied(doc.router, doc.generation, timeout_s=APPLY_TIMEOUT_S):
            stop(doc.router, grace_s=self.stop_grace_s)
            raise DeployError(
                f"local target: router on port {port} did not start: {why or log_tail(doc.router)}"
            )

    def _router_applied(self, router: ProcessRecord, generation: int, *, timeout_s: float) -> bool:
        import httpx

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                resp = self._http().get(f"{router.url}/router/healthz", timeout=PROBE_TIMEOUT_S)
                if resp.status_code == 200 and int(resp.json()["generation"]) >= generation:
                    return True
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _remove_canary(self, doc: DeploymentFile) -> None:
        """Traffic to the stable first (router confirms), then stop the canary."""
        canary = doc.canary
        if canary is not None:
            doc.leftovers.append(canary)
        doc.canary, doc.canary_lease_until = None, None
        self._apply(doc, weight=0, shadow=0, force=True)
        if canary is not None:
            self._retire(doc, canary)

    def _retire(self, doc: DeploymentFile, proc: ProcessRecord) -> None:
        """Stop a process recorded in leftovers and forget it."""
        stop(proc, grace_s=self.stop_grace_s)
        doc.leftovers = [p for p in doc.leftovers if p.pid != proc.pid]
        write_state(self.state_file, doc)

    def _cleanup(self, doc: DeploymentFile) -> DeploymentFile:
        """Stop leftovers of an earlier, interrupted call; returns the document."""
        for proc in list(doc.leftovers):
            self._retire(doc, proc)
        return doc


def _arm_window(doc: dict[str, Any]) -> ArmWindow:
    return ArmWindow(
        requests=int(doc["requests"]),
        errors=int(doc["errors"]),
        shed=int(doc.get("shed", 0)),
        latencies_ms=[float(v) for v in doc["latencies_ms"]],
        scores=[float(v) for v in doc["scores"]],
        labels=[int(v) for v in doc.get("labels", [])],
        nonfinite=int(doc["nonfinite"]),
        invalid=int(doc["invalid"]),
        entities=int(doc.get("entities", 0)),
        missing_entities=int(doc.get("missing_entities", 0)),
    )


def _inconsistencies(win: dict[str, Any], doc: DeploymentFile, *, weight: int) -> list[str]:
    """Pure; why this window cannot be trusted: routing other than asked, lost records, wrong versions."""
    problems = []
    if int(win["weight"]) != weight:
        problems.append(f"the router sends {win['weight']}% to the canary, not the {weight}% asked")
    if win.get("truncated"):
        problems.append("the router dropped part of this window (read it more often)")
    for arm, proc in (("stable", doc.stable), ("canary", doc.canary)):
        expected = proc.release.model_version if proc and proc.release else None
        seen = sorted(set(win["arms"][arm]["versions"]) - {expected})
        if seen:
            problems.append(f"{arm} answers came from model version(s) {seen}, expected {expected}")
    return problems
