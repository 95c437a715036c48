"""Loopback server processes that outlive their starter: spawn, liveness (pid-reuse safe), readiness, stop.

Processes run in their own session (a Ctrl-C on the release command does not reach them) with
stdout/stderr appended to a log file. Liveness works for any pid, ours or one a killed
orchestrator left behind: a zombie or a pid recycled by another program counts as dead.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Any

from slipway.deploy.state import ProcessRecord, ReleaseRecord

POLL_S = 0.05
LOG_TAIL_LINES = 6


def start_ticks(pid: int) -> int | None:
    """Blocking (one /proc read); the process's start time in clock ticks, None if unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 else None


@functools.cache
def _has_proc() -> bool:
    return Path("/proc/self/stat").exists()


# children this Python process spawned, by pid: polled (reaped) by alive(), whichever target asks
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reaped(pid: int) -> bool:
    """True if `pid` is a child of ours that has exited (reaped now, so it leaves no zombie)."""
    child = _CHILDREN.get(pid)
    if child is None or child.poll() is None:
        return False
    del _CHILDREN[pid]
    return True


def reap_children() -> int:
    """Non-blocking; reaps every child of ours that has exited (no zombies); how many were reaped."""
    return sum(_reaped(pid) for pid in list(_CHILDREN))


def alive(proc: ProcessRecord) -> bool:
    """Blocking (a /proc read); the recorded process still runs (not a zombie, not a recycled pid)."""
    if _reaped(proc.pid):
        return False
    if _has_proc():
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            return False
        if fields[0] in ("Z", "X"):
            return False
        return proc.start_ticks is None or int(fields[19]) == proc.start_ticks
    try:  # no /proc (macOS): signal 0 is the best we have
        os.kill(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spawn(
    cmd: list[str],
    *,
    role: str,
    port: int,
    log_path: Path,
    env: dict[str, str],
    release: ReleaseRecord | None,
    container: str | None = None,
    podman: list[str] | None = None,
) -> ProcessRecord:
    """Non-blocking; starts `cmd` in a new session, output appended to `log_path`; the record to store."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[popen.pid] = popen
    return ProcessRecord(
        argv=list(cmd),
        role=role,
        pid=popen.pid,
        start_ticks=start_ticks(popen.pid),
        port=port,
        log=str(log_path),
        release=release,
        container=container,
        podman=podman,
    )


def respawn(proc: ProcessRecord, *, env: dict[str, str]) -> ProcessRecord:
    """Non-blocking (plus `podman rm` of the record's container first); `proc`'s command again, same port and
    log; the new record (restarts + 1). ValueError if the record has no command."""
    if not proc.argv:
        raise ValueError(f"{proc.role} (pid {proc.pid}) was recorded without its command")
    if proc.container and proc.podman:
        from slipway.deploy.podman import remove_container

        remove_container(proc.podman, proc.container)  # a container its killed `podman run` left running
    new = spawn(
        proc.argv,
        role=proc.role,
        port=proc.port,
        log_path=Path(proc.log),
        env=env,
        release=proc.release,
        container=proc.container,
        podman=proc.podman,
    )
    return proc.restarted(pid=new.pid, start_ticks=new.start_ticks)


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """Pure (reads os.environ); this process's environment for a started process, `extra` on top; the server
    knobs (`SLIPWAY_SERVE_*`) come only from `extra` (a fault knob of the orchestrator must not leak in)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_SERVE_")} | extra


def stop(proc: ProcessRecord, *, grace_s: float = 15.0) -> None:
    """Blocking up to grace_s (+1 s, + `podman rm`); idempotent; SIGTERM (graceful drain), then SIGKILL; no-op if gone.

    A podman-mode record's container is removed afterwards in any case (`podman rm -f`), so none is
    left behind even when its `podman run` process was killed.
    """
    _signal_stop(proc, grace_s=grace_s)
    if proc.container and proc.podman:
        from slipway.deploy.podman import remove_container

        remove_container(proc.podman, proc.container)


def _signal_stop(proc: ProcessRecord, *, grace_s: float) -> None:
    if not alive(proc):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not alive(proc):
            return
        time.sleep(POLL_S)
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 1.0
    while alive(proc) and time.monotonic() < deadline:
        time.sleep(POLL_S)


def wait_http_ok(proc: ProcessRecord, *, client: Any, path: str, timeout_s: float) -> tuple[bool, str]:
    """Blocking up to timeout_s; (True, "") once GET `path` answers 200, else (False, why)."""
    from slipway import readiness

    def exited() -> str | None:
        return (
            None if alive(proc) else f"process {proc.pid} exited before it was ready; log: {log_tail(proc)}"
        )

    ready_s, why = readiness.wait_http_ok(client, f"{proc.url}{path}", exited=exited, timeout_s=timeout_s)
    return ready_s is not None, why if ready_s is None else ""


def log_tail(proc: ProcessRecord) -> str:
    """Blocking (reads the log); the last few non-empty lines, joined by ' | '."""
    lines: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    with contextlib.suppress(OSError), open(proc.log, "rb") as fh:
        for raw in fh:
            line = raw.decode(errors="replace").rstrip()
            if line:
                lines.append(line)
    return " | ".join(lines) or "(empty)"
