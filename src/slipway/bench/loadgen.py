"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams (keep-alive, fixed concurrency).

The same generator drives every server a benchmark compares, so its own cost cancels in ratios;
raw streams keep that cost small next to the servers' (an httpx client would dominate them).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LoadResult:
    """Completed requests inside the measured window, their latencies, and non-200 answers."""

    concurrency: int
    window_s: float
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        """Requests completed inside the window."""
        return len(self.latencies_s)

    @property
    def rps(self) -> float:
        """Successful (200) requests per second over the window."""
        return (self.requests - self.errors) / self.window_s

    def percentile_ms(self, q: float) -> float:
        """Latency percentile in milliseconds (nan with no requests)."""
        return float(np.percentile(self.latencies_s, q) * 1000.0) if self.latencies_s else float("nan")

    def summary(self) -> dict[str, float | int]:
        """Pure; rps, p50/p90/p99 in ms, counts."""
        return {
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile_ms(50), 4),
            "p90_ms": round(self.percentile_ms(90), 4),
            "p99_ms": round(self.percentile_ms(99), 4),
            "requests": self.requests,
            "errors": self.errors,
            "concurrency": self.concurrency,
            "window_s": round(self.window_s, 3),
        }


def get_request(host: str, port: int, path: str) -> bytes:
    """Pure; the bytes of a keep-alive GET."""
    return f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\n\r\n".encode()


def post_json_request(host: str, port: int, path: str, body: bytes) -> bytes:
    """Pure; the bytes of a keep-alive POST with a JSON body."""
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    else:
        raise RuntimeError("response without content-length (chunked bodies are not supported)")
    await reader.readexactly(length)
    return status


async def _client(
    host: str, port: int, requests: list[bytes], offset: int, start: float, stop: float, out: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop:
                return
            writer.write(requests[i % len(requests)])
            i += 1
            status = await _read_response(reader)
            t1 = time.perf_counter()
            if start <= t1 < stop:
                out.latencies_s.append(t1 - t0)
                out.statuses[status] = out.statuses.get(status, 0) + 1
                if status != 200:
                    out.errors += 1
    finally:
        writer.close()
        await writer.wait_closed()


async def run_load(
    *, host: str, port: int, requests: list[bytes], concurrency: int, warmup_s: float, duration_s: float
) -> LoadResult:
    """`concurrency` keep-alive connections, each sending the next request as soon as its answer arrives.

    Requests that complete during `warmup_s` are not counted; the window is the `duration_s` after it.
    """
    start = time.perf_counter() + warmup_s
    stop = start + duration_s
    out = LoadResult(concurrency=concurrency, window_s=duration_s)
    clients = [_client(host, port, requests, k * 7, start, stop, out) for k in range(concurrency)]
    await asyncio.gather(*clients)
    return out
