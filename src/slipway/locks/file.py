"""The release lease as a JSON file (the local target's state folder, or SLIPWAY_HOME): read-modify-write
under an flock on a sidecar file, written atomically (temp file + rename)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from slipway.locks.base import Holder, ReleaseLock


class FileReleaseLock(ReleaseLock):
    """A lease file `path` (the holder as JSON; absent = free) guarded by `path` + '.flock'."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def key(self) -> str:
        """Pure; `file:<host>:<path>` (a path guards one machine's state)."""
        return f"file:{socket.gethostname()}:{self.path.resolve()}"

    def try_acquire(self, holder: Holder) -> Holder | None:
        """Blocking (an flock); atomic; None when taken (or renewed), else the live holder."""
        with self._guard():
            current = self._read()
            if current is not None and current.id != holder.id and current.alive(now=time.time()):
                return current
            self._write(holder, renewed_at=time.time())
            return None

    def renew(self, holder: Holder) -> bool:
        """Blocking (an flock); False if `holder` no longer holds the lease."""
        with self._guard():
            current = self._read()
            if current is None or current.id != holder.id:
                return False
            self._write(holder, renewed_at=time.time())
            return True

    def release(self, holder: Holder) -> None:
        """Blocking (an flock); idempotent; removes the lease file if `holder` holds it."""
        with self._guard():
            current = self._read()
            if current is not None and current.id == holder.id:
                self.path.unlink(missing_ok=True)

    def holder(self) -> Holder | None:
        """Blocking (an flock); the live holder, or None."""
        with self._guard():
            current = self._read()
        return current if current is not None and current.alive(now=time.time()) else None

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".flock"), "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read(self) -> Holder | None:
        try:
            return Holder.from_dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):  # a torn or foreign file: nobody live holds it
            return None

    def _write(self, holder: Holder, *, renewed_at: float) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**holder.to_dict(), "renewed_at": renewed_at}))
        os.replace(tmp, self.path)
