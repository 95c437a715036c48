"""An in-memory release lease (one per FakeWorld or test), with an injectable clock to make a holder stale."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from slipway.locks.base import Holder, ReleaseLock


class FakeReleaseLock(ReleaseLock):
    """The lease in memory; a holder is stale as `Holder.alive` says, at `clock()` (default time.time)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.current: Holder | None = None
        self._mutex = threading.Lock()

    @property
    def key(self) -> str:
        """Pure; `fake:<object id>` (one in-memory lease)."""
        return f"fake:{id(self):x}"

    def _live(self) -> Holder | None:
        h = self.current
        return h if h is not None and h.alive(now=self.clock()) else None

    def try_acquire(self, holder: Holder) -> Holder | None:
        """Instant; atomic; None when taken (or renewed), else the live holder."""
        with self._mutex:
            live = self._live()
            if live is not None and live.id != holder.id:
                return live
            self.current = replace(holder, renewed_at=self.clock())
            return None

    def renew(self, holder: Holder) -> bool:
        """Instant; False if `holder` no longer holds the lease."""
        with self._mutex:
            if self.current is None or self.current.id != holder.id:
                return False
            self.current = replace(self.current, renewed_at=self.clock())
            return True

    def release(self, holder: Holder) -> None:
        """Instant; idempotent."""
        with self._mutex:
            if self.current is not None and self.current.id == holder.id:
                self.current = None

    def holder(self) -> Holder | None:
        """Instant; the live holder, or None."""
        with self._mutex:
            return self._live()
