"""An open-loop HTTP/1.1 load generator: requests arrive on a seeded Poisson schedule whatever the answers.

Unlike the closed loop (`slipway.bench.loadgen`), a slow server does not slow the offered load down:
each scheduled request goes out on an idle keep-alive connection, or on a new one (up to
`max_connections`, many clients' worth), or waits for one. Latency is kept twice: from the SCHEDULED
time (nothing client-side hidden: no coordinated omission) and from the send (what the server took;
the two differ when the generator itself falls behind, counted in `late_sends`). A request not
answered within `timeout_s` of its scheduled time is a client timeout (its connection is dropped).
Bounded in count (the schedule) and time (the window plus one timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from slipway.bench.loadgen import _read_response

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


class _Run:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        requests: list[bytes],
        start: float,
        stop: float,
        timeout_s: float,
        cap: int,
    ) -> None:
        self.host, self.port, self.requests = host, port, requests
        self.start, self.stop, self.timeout_s, self.cap = start, stop, timeout_s, cap
        self.queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
        self.idle = 0
        self.workers: list[asyncio.Task[None]] = []
        self.busy: dict[int, tuple[float, asyncio.StreamWriter]] = {}  # worker -> (scheduled, writer)
        self.out: OpenLoopResult | None = None

    def _in_window(self, scheduled: float) -> bool:
        return self.start <= scheduled < self.stop

    def submit(self, index: int, scheduled: float) -> None:
        self.queue.put_nowait((index, scheduled))
        if self.idle > 0:
            self.idle -= 1  # a waiting worker takes it
        elif len(self.workers) < self.cap and (not self.workers or self.queue.qsize() > BACKLOG):
            # requests are piling up behind busy connections: open another (a burst that a busy
            # connection clears in a moment does not grow the pool, which would only cost both sides)
            self.workers.append(asyncio.create_task(self._worker(len(self.workers))))

    async def _worker(self, worker: int) -> None:
        out = self.out
        assert out is not None
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while True:
            if self.queue.empty():
                self.idle += 1  # until submit() hands this worker the next request
            item = await self.queue.get()
            if item is None:
                break
            index, scheduled = item
            counted = self._in_window(scheduled)
            try:
                if conn is None:
                    left = self.timeout_s - (time.perf_counter() - scheduled)
                    conn = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port), max(left, 0.001)
                    )
                    out.connections += 1
                reader, writer = conn
                sent = time.perf_counter()
                if counted and sent - scheduled > LATE_S:
                    out.late_sends += 1
                self.busy[worker] = (scheduled, writer)
                writer.write(self.requests[index % len(self.requests)])
                status = await _read_response(reader)
                done = time.perf_counter()
                if done - scheduled > self.timeout_s:
                    raise TimeoutError
                if counted:
                    out.statuses[status] = out.statuses.get(status, 0) + 1
                    if status == 200:
                        out.ok_latencies_s.append(done - scheduled)
                        out.ok_service_s.append(done - sent)
            except TimeoutError:  # counted as a client timeout: it never got an answer
                await _drop(conn)
                conn = None
            except (OSError, asyncio.IncompleteReadError, RuntimeError):
                if time.perf_counter() - scheduled <= self.timeout_s:  # else the watchdog cut it: a timeout
                    out.connection_errors += counted
                await _drop(conn)
                conn = None
            finally:
                self.busy.pop(worker, None)
        await _drop(conn)

    async def watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            for scheduled, writer in list(self.busy.values()):
                if now - scheduled > self.timeout_s:
                    writer.transport.abort()  # its read fails at once: counted as a client timeout


async def _drop(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if conn is not None:
        conn[1].transport.abort()
        with contextlib.suppress(Exception):
            await conn[1].wait_closed()


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
    rng = np.random.default_rng(seed)
    total = warmup_s + duration_s
    gaps = rng.exponential(1.0 / rate_rps, size=int(rate_rps * total * 1.2) + 100)
    offsets = np.cumsum(gaps)
    offsets = offsets[offsets < total]
    t0 = time.perf_counter() + 0.05
    run = _Run(
        host=host,
        port=port,
        requests=requests,
        start=t0 + warmup_s,
        stop=t0 + total,
        timeout_s=timeout_s,
        cap=max_connections,
    )
    out = run.out = OpenLoopResult(offered_rps=rate_rps, window_s=duration_s)
    out.scheduled = int(((offsets >= warmup_s) & (offsets < total)).sum())
    watchdog = asyncio.create_task(run.watchdog())
    for index, offset in enumerate(offsets.tolist()):
        scheduled = t0 + offset
        ahead = scheduled - time.perf_counter()
        if ahead > 0:
            await asyncio.sleep(max(ahead, DISPATCH_S))
        run.submit(index, scheduled)
    for _ in run.workers:
        run.queue.put_nowait(None)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*run.workers, return_exceptions=True), timeout_s + 5)
    watchdog.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watchdog
    for task in run.workers:
        task.cancel()
    # whatever was scheduled in the window and got neither an answer nor a connection error (timed out,
    # never sent, still queued at the end) is a client timeout
    out.client_timeouts = out.scheduled - out.answered() - out.connection_errors
    return out
