"""One release at a time per environment: a lease in the state the releases share.

A `ReleaseLock` is a lease with a holder (who, where, which release) and a heartbeat. `acquire` takes
it when it is free or its holder is gone: the holder's process is dead (same host), or it has not
renewed within its `ttl_s` (any host). `held()` takes it, renews it from a background thread every
`ttl_s / 3`, and gives it back on every exit; a holder killed with SIGKILL leaves a lease that the
next release breaks safely. Backends: a lease file next to the local target's state (`file.py`), a
`coordination.k8s.io/v1` Lease in the Kubernetes target's namespace (`kubernetes.py`), and an
in-memory fake; all pass `tests/contract/test_release_locks.py`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slipway.errors import SlipwayError

DEFAULT_TTL_S = 60.0


class LockHeld(SlipwayError):
    """Another live release holds the environment's release lock; the message names the holder."""

    def __init__(self, holder: Holder, *, waited_s: float) -> None:
        super().__init__(
            f"another release holds the release lock: {holder.describe()} (waited {waited_s:.0f} s)"
        )
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    """Who holds a release lock: a unique id, the host and pid of its process, what it releases, and when it
    last renewed (wall clock, seconds)."""

    what: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    pid_start: str = field(default_factory=lambda: process_start(os.getpid()))
    acquired_at: float = field(default_factory=time.time)
    renewed_at: float = field(default_factory=time.time)
    ttl_s: float = DEFAULT_TTL_S

    def describe(self) -> str:
        """Pure; one line naming the holder."""
        return f"{self.what} (pid {self.pid} on {self.host}, since {time.strftime('%H:%M:%S', time.localtime(self.acquired_at))})"

    def to_dict(self) -> dict[str, Any]:
        """Pure; JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Holder:
        """Pure; the inverse of `to_dict` (unknown keys ignored)."""
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})

    def alive(self, *, now: float) -> bool:
        """Non-blocking; False when its process is known dead (same host) or it has not renewed within ttl_s."""
        if now - self.renewed_at > self.ttl_s:
            return False
        if self.host == socket.gethostname():
            return process_start(self.pid) == self.pid_start
        return True


def process_start(pid: int) -> str:
    """Non-blocking; an identity of a live process (its start time in clock ticks); '' when it does not exist
    (a pid reused by another process has another start time)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


class ReleaseLock(ABC):
    """The release lease of one environment."""

    @property
    @abstractmethod
    def key(self) -> str:
        """Pure; which lease this is (two locks with one key guard the same environment)."""

    @abstractmethod
    def try_acquire(self, holder: Holder) -> Holder | None:
        """Blocking (one round trip); atomic; takes the lease for `holder` when free or stale and returns None,
        else returns the live holder (unchanged). Re-acquiring one's own lease renews it."""

    @abstractmethod
    def renew(self, holder: Holder) -> bool:
        """Blocking (one round trip); the lease's renewal time set to now; False if `holder` no longer holds it."""

    @abstractmethod
    def release(self, holder: Holder) -> None:
        """Blocking (one round trip); idempotent; gives the lease back if `holder` holds it (no-op otherwise)."""

    @abstractmethod
    def holder(self) -> Holder | None:
        """Blocking (one read); the live holder, or None when free (a stale holder reads as None)."""

    def acquire(
        self,
        holder: Holder,
        *,
        wait_s: float,
        poll_s: float = 1.0,
        on_wait: Callable[[Holder], None] | None = None,
    ) -> None:
        """Blocking up to `wait_s`; takes the lease; LockHeld naming the live holder when it is still held then.
        `on_wait` is called once, with the holder, when the lease is busy at first."""
        start = time.monotonic()
        told = False
        while True:
            other = self.try_acquire(holder)
            if other is None:
                return
            if time.monotonic() - start >= wait_s:
                raise LockHeld(other, waited_s=time.monotonic() - start)
            if not told and on_wait is not None:
                on_wait(other)
                told = True
            time.sleep(max(0.0, min(poll_s, wait_s - (time.monotonic() - start))))  # never past the wait


@contextlib.contextmanager
def held(
    lock: ReleaseLock,
    holder: Holder,
    *,
    wait_s: float,
    on_wait: Callable[[Holder], None] | None = None,
    on_lost: Callable[[], None] | None = None,
) -> Iterator[Holder]:
    """Blocking until acquired (LockHeld after `wait_s`); renews every ttl_s/3 from a daemon thread while the
    block runs, then releases, on every exit. `on_lost` is called (from the thread) if a renewal finds the
    lease taken."""
    lock.acquire(holder, wait_s=wait_s, on_wait=on_wait)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(holder.ttl_s / 3):
            try:
                if not lock.renew(holder) and on_lost is not None:
                    on_lost()
                    return
            except Exception:  # a failed renewal is retried; the ttl gives it two more tries
                continue

    thread = threading.Thread(target=heartbeat, name="slipway-release-lease", daemon=True)
    thread.start()
    try:
        yield holder
    finally:
        stop.set()
        thread.join(timeout=5)
        with contextlib.suppress(Exception):  # an unreachable backend: the lease goes stale on its own
            lock.release(holder)
