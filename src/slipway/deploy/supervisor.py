"""The local target's supervisor: `python -m slipway.deploy.supervisor --state deployment.json`.

It heals what `deployment.json` says runs. A router or stable whose process is gone is started again
with its recorded command on the same port, so the router's URL and the router's upstreams stay what
they were. A canary is not restarted: a challenger that dies is evidence against it, and its release
sees it absent and rolls it back. Restarts back off per role (`Backoff`). The new pid is recorded under the target's lock
(`.lock`), taken without waiting: while a deploy call holds it, that call owns the processes, and the
supervisor looks again on its next tick.

One supervisor per state folder: it holds an flock on `supervisor.lock` for its whole life, and a new
one that cannot take it within FLOCK_WAIT_S exits. The holder records itself in the file and exits when
the deployment is emptied (`deploy stop`). The router starts a new supervisor when the recorded one is
dead and none holds the lock, so each of the two heals the other.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from slipway.deploy.processes import alive, reap_children, respawn, server_env, spawn, start_ticks
from slipway.deploy.state import DeploymentFile, ProcessRecord, read_state, write_state
from slipway.errors import DeployError

log = logging.getLogger("slipway.deploy.supervisor")

ROLES = ("router", "stable")  # a dead canary is evidence, not something to hide
LOCK_FILE = "supervisor.lock"
TICK_S = 0.2
FIRST_BACKOFF_S = (
    1.0  # the second death within STABLE_AFTER_S waits this long; each further one twice as long
)
MAX_BACKOFF_S = 30.0
FLOCK_WAIT_S = (
    1.0  # how long a new supervisor tries for the lock before it leaves it to the one that holds it
)
STABLE_AFTER_S = 30.0  # a process that stayed up this long starts its backoff afresh


def backoff_s(failures: int) -> float:
    """Pure; the wait before a restart after `failures` quick deaths in a row (0: restart at once)."""
    return 0.0 if failures <= 0 else min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (failures - 1))


@dataclass
class _Role:
    dead_pid: int | None = None
    failures: int = 0
    due_at: float = 0.0
    restarted_at: float | None = None


@dataclass
class Backoff:
    """When each role's dead process may be started again: at once the first time, then 1 s, 2 s, ... up to
    MAX_BACKOFF_S while it keeps dying within STABLE_AFTER_S of its restart."""

    roles: dict[str, _Role] = field(default_factory=dict)

    def due(self, role: str, *, pid: int, now: float) -> bool:
        """Pure bookkeeping; called for a role whose recorded process `pid` is dead: whether to restart it now."""
        st = self.roles.setdefault(role, _Role())
        if st.dead_pid != pid:  # a death not seen before
            quick = st.restarted_at is not None and now - st.restarted_at < STABLE_AFTER_S
            st.failures = st.failures + 1 if quick else 0
            st.dead_pid, st.due_at = pid, now + backoff_s(st.failures)
        return now >= st.due_at

    def restarted(self, role: str, *, now: float) -> None:
        """Pure bookkeeping; the role's process was started again at `now`."""
        self.roles.setdefault(role, _Role()).restarted_at = now

    def wait_s(self, role: str, *, now: float) -> float:
        """Pure; seconds until the role's pending restart is due (0 when none is pending)."""
        st = self.roles.get(role)
        return max(0.0, st.due_at - now) if st else 0.0


def supervisor_command(state_file: Path) -> list[str]:
    """Pure; the command that runs a supervisor for `state_file`."""
    return [sys.executable, "-m", "slipway.deploy.supervisor", "--state", str(state_file)]


def start_supervisor(state_file: Path) -> ProcessRecord:
    """Non-blocking; a supervisor for `state_file` in its own session (it exits at once if one runs)."""
    return spawn(
        supervisor_command(state_file),
        role="supervisor",
        port=0,
        log_path=state_file.parent / "logs" / "supervisor.log",
        env=server_env({}),
        release=None,
    )


def supervisor_running(state_dir: Path) -> bool:
    """Blocking (an flock probe); whether some process holds the supervisor lock of `state_dir`."""
    path = state_dir / LOCK_FILE
    if not path.exists():
        return False
    with _try_lock(path) as got:
        return not got


def restart_env(proc: ProcessRecord) -> dict[str, str]:
    """Pure (reads os.environ); the environment a process is started again with (a server process: its release's)."""
    own = proc.release.env if proc.release is not None and proc.container is None else {}
    return server_env(dict(own))


@contextlib.contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """The target's lock if free now (True), else nothing (False); never waits."""
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Supervisor:
    """One pass of healing per `tick`; `run` loops it."""

    def __init__(self, state_file: Path, *, me: ProcessRecord) -> None:
        self.state_file = state_file
        self.me = me
        self.backoff = Backoff()

    def tick(self, *, now: float) -> bool:
        """Blocking (a read; restarts start processes without waiting); False when there is nothing left to
        supervise (the deployment was emptied, or another supervisor is recorded)."""
        reap_children()  # processes it started that a deploy call later stopped
        try:
            doc = read_state(self.state_file)
        except DeployError as exc:
            log.warning("cannot read the deployment: %s", exc)
            return True
        verdict = self._mine(doc)
        if verdict is None:
            return False
        due = [r for r in ROLES if (p := getattr(doc, r)) is not None and self._due(r, p, now=now)]
        if verdict and not due:
            return True
        with _try_lock(self.state_file.parent / ".lock") as got:
            if not got:
                return True  # a deploy call owns the processes now
            try:
                doc = read_state(self.state_file)  # again, under the lock
            except DeployError as exc:
                log.warning("cannot read the deployment: %s", exc)
                return True
            if self._mine(doc) is None:
                return False
            changed = doc.supervisor is None or doc.supervisor.pid != self.me.pid
            doc.supervisor = self.me
            for role in ROLES:
                proc = getattr(doc, role)
                if proc is None or alive(proc) or not self.backoff.due(role, pid=proc.pid, now=now):
                    continue
                self.backoff.restarted(role, now=now)  # a failed start backs off like a quick death
                try:
                    new = respawn(proc, env=restart_env(proc))
                except (OSError, ValueError) as exc:
                    log.error("cannot restart the %s: %s", role, exc)
                    continue
                changed = True
                log.warning(
                    "%s (pid %s, port %s) was gone: started again as pid %s (restart %s)",
                    role,
                    proc.pid,
                    proc.port,
                    new.pid,
                    new.restarts,
                )
                setattr(doc, role, new)
            if changed:
                write_state(self.state_file, doc)
        return True

    def _mine(self, doc: DeploymentFile) -> bool | None:
        """None: stop (nothing to supervise); else whether the file already records this supervisor (the flock
        holder is the only live supervisor, so it records itself over any other record)."""
        if doc.router is None and doc.stable is None and doc.canary is None:
            return None
        return doc.supervisor is not None and doc.supervisor.pid == self.me.pid

    def _due(self, role: str, proc: ProcessRecord, *, now: float) -> bool:
        return not alive(proc) and self.backoff.due(role, pid=proc.pid, now=now)


def run(state_file: Path, *, tick_s: float = TICK_S) -> int:
    """Blocking until the deployment is emptied or SIGTERM; 0 (also when another supervisor already runs)."""
    state_file = state_file.resolve()
    lock: TextIO = open(state_file.parent / LOCK_FILE, "a+")  # noqa: SIM115 (held for the process's life)
    deadline = time.monotonic() + FLOCK_WAIT_S  # a probe (`supervisor_running`) holds it for a moment
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                log.info("another supervisor runs for %s", state_file)
                return 0
            time.sleep(0.05)
    pid = os.getpid()
    me = ProcessRecord(
        role="supervisor",
        pid=pid,
        start_ticks=start_ticks(pid),
        port=0,
        log=str(state_file.parent / "logs" / "supervisor.log"),
        argv=supervisor_command(state_file),
    )
    sup = Supervisor(state_file, me=me)
    log.info("supervising %s (pid %s)", state_file, pid)
    while sup.tick(now=time.monotonic()):
        time.sleep(tick_s)
    log.info("nothing left to supervise in %s", state_file)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Blocking; see `run`."""
    parser = argparse.ArgumentParser(
        prog="python -m slipway.deploy.supervisor", description="Restarts the local target's dead processes."
    )
    parser.add_argument("--state", type=Path, required=True, help="the deployment.json to keep running")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run(args.state)


if __name__ == "__main__":
    sys.exit(main())
