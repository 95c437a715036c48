"""An open-loop HTTP/1.1 load generator: requests arrive on a seeded Poisson schedule whatever the answers.

Unlike the closed loop (`slipway.bench.loadgen`), a slow server does not slow the offered load down:
each scheduled request goes out on an idle keep-alive connection, or waits for one, and connections
are added (up to `max_connections`, many clients' worth) while requests pile up. Plain asyncio
protocols (no streams, no task per request) keep the generator's own cost per request low. Latency is kept twice: from the SCHEDULED
time (nothing client-side hidden: no coordinated omission) and from the send (what the server took;
the two differ when the generator itself falls behind, counted in `late_sends`). A request not
answered within `timeout_s` of its scheduled time is a client timeout (its connection is dropped).
Bounded in count (the schedule) and time (the window plus one timeout).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LATE_S = 0.01  # a send this much past its scheduled time means the generator (or the machine) fell behind
DISPATCH_S = 0.001  # the scheduler wakes at most this often and hands out every request due by then
BACKLOG = 2  # requests waiting for a connection before another one is opened


@dataclass
class OpenLoopResult:
    """Outcomes of the requests scheduled inside the measured window."""

    offered_rps: float
    window_s: float
    scheduled: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    ok_latencies_s: list[float] = field(default_factory=list)  # 200s, from the scheduled time
    ok_service_s: list[float] = field(default_factory=list)  # 200s, from the send
    client_timeouts: int = 0  # no answer within timeout_s of the scheduled time (or none by the end)
    connection_errors: int = 0  # the connection closed or reset under a request
    late_sends: int = 0
    connections: int = 0  # connections opened over the whole run

    def answered(self) -> int:
        """Requests of the window that got an HTTP answer."""
        return sum(self.statuses.values())

    def ok_p99_ms(self, *, from_send: bool = False) -> float | None:
        """p99 latency of the 200s in ms, from the scheduled time or from the send (None without any)."""
        values = self.ok_service_s if from_send else self.ok_latencies_s
        return float(np.percentile(values, 99) * 1000.0) if values else None


class _Conn(asyncio.Protocol):
    """One keep-alive client connection: sends one request at a time, parses content-length answers."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.current: tuple[int, float, float] | None = None  # (index, scheduled, sent)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Ready: takes the next waiting request or becomes idle."""
        self.transport = transport  # type: ignore[assignment]
        self.run.opening -= 1
        self.run.ready(self)

    def send(self, index: int, scheduled: float) -> None:
        """Writes request `index` (scheduled at `scheduled`)."""
        assert self.transport is not None
        sent = time.perf_counter()
        self.current = (index, scheduled, sent)
        self.run.sent(scheduled, sent)
        self.transport.write(self.run.requests[index % len(self.run.requests)])

    def data_received(self, data: bytes) -> None:
        """Parses as many complete answers as arrived."""
        self.buf += data
        while self.current is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            length, at = 0, head.find(b"content-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at)
                length = int(head[at + 15 : line_end if line_end > 0 else len(head)])
            if len(self.buf) < end + 4 + length:
                return
            status = int(self.buf[9:12])
            self.buf = self.buf[end + 4 + length :]
            current, self.current = self.current, None
            self.run.answered(current, status)
            if b"connection: close" in head:
                if self.transport is not None:
                    self.transport.close()
                return
            self.run.ready(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Counts the request in flight as lost (unless timed out) and forgets the connection."""
        self.run.lost(self)


class _Run:
    def __init__(
        self,
        *,
        requests: list[bytes],
        start: float,
        stop: float,
        timeout_s: float,
        cap: int,
        out: OpenLoopResult,
    ) -> None:
        self.requests, self.start, self.stop, self.timeout_s, self.cap, self.out = (
            requests,
            start,
            stop,
            timeout_s,
            cap,
            out,
        )
        self.waiting: deque[tuple[int, float]] = deque()
        self.idle: list[_Conn] = []
        self.busy: set[_Conn] = set()
        self.open = 0  # connections open or opening
        self.opening = 0
        self.open_new: Callable[[], None] = lambda: None

    def _in_window(self, scheduled: float) -> bool:
        return self.start <= scheduled < self.stop

    def submit(self, index: int, scheduled: float) -> None:
        if self.idle:
            conn = self.idle.pop()
            self.busy.add(conn)
            conn.send(index, scheduled)
            return
        self.waiting.append((index, scheduled))
        if self.open < self.cap and (self.open == 0 or len(self.waiting) > BACKLOG + self.opening):
            # requests are piling up behind busy connections: open another (a burst that a busy
            # connection clears in a moment does not grow the pool, which would only cost both sides)
            self.open += 1
            self.opening += 1
            self.open_new()

    def ready(self, conn: _Conn) -> None:
        if self.waiting:
            index, scheduled = self.waiting.popleft()
            self.busy.add(conn)
            conn.send(index, scheduled)
        else:
            self.busy.discard(conn)
            self.idle.append(conn)

    def sent(self, scheduled: float, sent: float) -> None:
        if self._in_window(scheduled) and sent - scheduled > LATE_S:
            self.out.late_sends += 1

    def answered(self, current: tuple[int, float, float], status: int) -> None:
        _, scheduled, sent = current
        done = time.perf_counter()
        if not self._in_window(scheduled) or done - scheduled > self.timeout_s:
            return  # too late: counted as a client timeout at the end
        out = self.out
        out.statuses[status] = out.statuses.get(status, 0) + 1
        if status == 200:
            out.ok_latencies_s.append(done - scheduled)
            out.ok_service_s.append(done - sent)

    def lost(self, conn: _Conn) -> None:
        self.open -= 1
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.current is not None:
            _, scheduled, _ = conn.current
            conn.current = None
            if self._in_window(scheduled) and time.perf_counter() - scheduled <= self.timeout_s:
                self.out.connection_errors += 1
        if self.waiting and self.open < self.cap:  # keep the waiting requests moving
            self.open += 1
            self.opening += 1
            self.open_new()

    def expire(self) -> None:
        """Drops connections whose request is past its timeout (counted as client timeouts at the end)."""
        now = time.perf_counter()
        for conn in list(self.busy):
            if conn.current is not None and now - conn.current[1] > self.timeout_s:
                conn.current = None
                if conn.transport is not None:
                    conn.transport.abort()
        while self.waiting and now - self.waiting[0][1] > self.timeout_s:
            self.waiting.popleft()

    def settled(self) -> bool:
        return not self.busy and not self.waiting


async def run_open_loop(
    *,
    host: str,
    port: int,
    requests: list[bytes],
    rate_rps: float,
    warmup_s: float,
    duration_s: float,
    timeout_s: float = 5.0,
    max_connections: int = 1024,
    seed: int = 0,
) -> OpenLoopResult:
    """Poisson arrivals at `rate_rps` for `warmup_s + duration_s`; the requests scheduled in the last `duration_s`."""
    if not rate_rps > 0:
        raise ValueError(f"rate_rps must be > 0, got {rate_rps}")
    loop = asyncio.get_running_loop()
    rng = np.random.default_rng(seed)
    total = warmup_s + duration_s
    gaps = rng.exponential(1.0 / rate_rps, size=int(rate_rps * total * 1.2) + 100)
    offsets = np.cumsum(gaps)
    offsets = offsets[offsets < total]
    t0 = time.perf_counter() + 0.05
    out = OpenLoopResult(offered_rps=rate_rps, window_s=duration_s)
    out.scheduled = int(((offsets >= warmup_s) & (offsets < total)).sum())
    run = _Run(
        requests=requests,
        start=t0 + warmup_s,
        stop=t0 + total,
        timeout_s=timeout_s,
        cap=max_connections,
        out=out,
    )
    opening: set[asyncio.Task[Any]] = set()

    def open_new() -> None:
        async def connect() -> None:
            try:
                await asyncio.wait_for(loop.create_connection(lambda: _Conn(run), host, port), timeout_s)
                out.connections += 1
            except (OSError, TimeoutError):
                run.open -= 1
                run.opening -= 1

        task = loop.create_task(connect())
        opening.add(task)
        task.add_done_callback(opening.discard)

    run.open_new = open_new
    last_expiry = last_yield = time.perf_counter()
    for index, offset in enumerate(offsets.tolist()):
        scheduled = t0 + offset
        now = time.perf_counter()
        if scheduled - now > 0:
            await asyncio.sleep(max(scheduled - now, DISPATCH_S))
            last_yield = time.perf_counter()
        elif now - last_yield > DISPATCH_S:  # behind schedule: still let the connections read and send
            await asyncio.sleep(0)
            last_yield = time.perf_counter()
        run.submit(index, scheduled)
        if now - last_expiry > 0.05:
            run.expire()
            last_expiry = now
    deadline = time.perf_counter() + timeout_s + 1.0
    while not run.settled() and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
        run.expire()
    for conn in [*run.busy, *run.idle]:
        if conn.transport is not None:
            conn.transport.abort()
    for task in list(opening):
        task.cancel()
    await asyncio.sleep(0)
    # whatever was scheduled in the window and got neither an answer nor a connection error (timed out,
    # never sent, still waiting at the end) is a client timeout
    out.client_timeouts = out.scheduled - out.answered() - out.connection_errors
    return out
