"""Admission control for /predict: at most `max_inflight` computing, at most `max_queue` waiting, a deadline each.

A request ARRIVES when its headers are parsed (the HTTP protocol calls `arrive` then, so time spent
waiting for the event loop counts), and is shed at once when `max_inflight + max_queue` requests are
already in the server. An arrived request ACQUIRES a compute slot in FIFO order; one whose deadline
passes first is expired (answered 503 without computing). Used from the event loop thread only.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

# ASGI scope keys the HTTP protocol (slipway.serving.protocol) sets for the app (slipway.serving.app)
TICKET_KEY = "slipway.ticket"  # a Ticket, or None: shed at header time; absent: the app admits it itself
TIMED_OUT_KEY = "slipway.timed_out"  # "body": the body did not arrive in time (the app records a 408)


@dataclass(slots=True)
class Ticket:
    """One arrived request: when its headers arrived and when it stops being worth computing (time.monotonic)."""

    arrived: float
    deadline: float


class Admission:
    """Counts the /predict requests in one worker's server and hands out compute slots."""

    def __init__(self, *, max_inflight: int, max_queue: int, deadline_s: float) -> None:
        self.max_inflight = max_inflight
        self.max_queue = max_queue
        self.deadline_s = deadline_s
        self.pending = 0  # arrived and not yet answered
        self.inflight = 0  # holding a compute slot
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Arrived requests without a compute slot (the queue depth)."""
        return self.pending - self.inflight

    def arrive(self, now: float) -> Ticket | None:
        """Non-blocking; a ticket (call `leave` once answered), or None when the request must be shed now."""
        if self.pending >= self.max_inflight + self.max_queue:
            return None
        self.pending += 1
        return Ticket(arrived=now, deadline=now + self.deadline_s)

    def leave(self, ticket: Ticket) -> None:
        """Non-blocking; the request of `ticket` is answered (whatever the outcome)."""
        self.pending -= 1

    async def acquire(self, ticket: Ticket) -> bool:
        """Waits in FIFO order; True with a compute slot (call `release`), False if the deadline passed first."""
        left = ticket.deadline - time.monotonic()
        if left <= 0:
            return False
        if self.inflight < self.max_inflight and not self._waiters:  # the common, uncontended case
            self.inflight += 1
            return True
        slot: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        granted = False
        try:
            async with asyncio.timeout(left):
                await slot
            granted = True  # release() handed its slot over: inflight already counts it
        except TimeoutError:
            pass
        finally:
            if not granted:  # timed out, or cancelled from outside
                if slot.done() and not slot.cancelled():
                    self.release()  # the slot came too late: pass it on
                else:
                    slot.cancel()
                    if slot in self._waiters:
                        self._waiters.remove(slot)
        return granted

    def release(self) -> None:
        """Non-blocking; gives the slot to the oldest live waiter, or frees it."""
        while self._waiters:
            slot = self._waiters.popleft()
            if not slot.done():
                slot.set_result(None)
                return
        self.inflight -= 1
