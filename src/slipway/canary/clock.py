"""The controller's clock: a real one (monotonic, sleeps) and a fake one (advances instantly) for simulations."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Seconds on a monotonic scale, and a way to wait."""

    def now(self) -> float:
        """Non-blocking; seconds on a monotonic scale (only differences mean anything)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Blocking for `seconds` (a fake clock just advances)."""
        ...


class RealClock:
    """`time.monotonic` and `time.sleep`."""

    def now(self) -> float:
        """Non-blocking; time.monotonic()."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Blocking; time.sleep(seconds) (no-op for seconds <= 0)."""
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to: sleep() advances it, nothing waits for real."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        """Non-blocking; the current fake time."""
        return self.t

    def sleep(self, seconds: float) -> None:
        """Non-blocking; advances the fake time by `seconds` (negative is ignored)."""
        self.t += max(0.0, seconds)
