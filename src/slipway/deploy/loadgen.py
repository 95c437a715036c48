"""Background load for a canary: holdout-like rows as single-row `POST /predict` at a Poisson rate.

Open loop: arrivals follow a seeded Poisson process whatever the answers' latency (a slow canary
does not slow the load down), with at most `max_in_flight` requests outstanding (arrivals beyond
that are counted as dropped). Runs an asyncio loop on a daemon thread of the calling process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import httpx

    from slipway.config import DataConfig
    from slipway.deploy.base import DeployTarget


@dataclass
class LoadStats:
    """What the generator saw from the client side."""

    sent: int = 0
    dropped: int = 0  # arrivals skipped because max_in_flight requests were outstanding
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> count
    transport_errors: int = 0  # no HTTP answer (refused, reset, timed out)
    versions: dict[str, int] = field(default_factory=dict)  # model_version of 200 answers -> count

    @property
    def answered(self) -> int:
        """Requests that got an HTTP answer."""
        return sum(self.statuses.values())

    def copy(self) -> LoadStats:
        """Pure; a snapshot."""
        return LoadStats(
            self.sent, self.dropped, dict(self.statuses), self.transport_errors, dict(self.versions)
        )


def holdout_rows(data: DataConfig | None = None) -> np.ndarray:
    """Blocking (loads the reference data; imports pandas/scikit-learn); the holdout features, float32."""
    from slipway.config import PipelineConfig
    from slipway.data.reference import load_reference

    x, _ = load_reference(data or PipelineConfig().data).holdout_xy()
    return x


class LoadGenerator:
    """Replays `rows` (one per request, cycling) to `url` + /predict at `rate_rps`; start()/stop() from any thread."""

    def __init__(
        self,
        *,
        url: str,
        rows: np.ndarray,
        rate_rps: float,
        seed: int = 0,
        timeout_s: float = 5.0,
        max_in_flight: int = 256,
    ) -> None:
        if rate_rps <= 0:
            raise ValueError(f"rate_rps must be > 0, got {rate_rps}")
        if len(rows) == 0:
            raise ValueError("rows: need at least one row to replay")
        self.url = url.rstrip("/")
        self.rate_rps = rate_rps
        self.seed = seed
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self._bodies = [json.dumps({"instances": [row]}).encode() for row in np.asarray(rows).tolist()]
        self._stats = LoadStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """The background thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Non-blocking; idempotent; starts sending (a stopped generator starts again with its stats kept)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="slipway-loadgen", daemon=True)
        self._thread.start()

    def stop(self, *, timeout_s: float | None = None) -> LoadStats:
        """Blocking until in-flight requests finish (at most timeout_s, default the request timeout + 1 s); idempotent; the stats."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1.0 if timeout_s is None else timeout_s)
            self._thread = None
        return self.stats()

    def stats(self) -> LoadStats:
        """Non-blocking; a snapshot of what was sent and answered so far."""
        with self._lock:
            return self._stats.copy()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        import httpx

        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(self._bodies))
        in_flight: set[asyncio.Task[None]] = set()
        limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=32)
        async with httpx.AsyncClient(trust_env=False, timeout=self.timeout_s, limits=limits) as client:
            next_at = time.monotonic()
            k = 0
            while not self._stop.is_set():
                next_at = max(next_at, time.monotonic() - 1.0)  # after a stall, no burst of catch-up arrivals
                next_at += float(rng.exponential(1.0 / self.rate_rps))
                while (delay := next_at - time.monotonic()) > 0 and not self._stop.is_set():
                    await asyncio.sleep(min(delay, 0.05))
                if self._stop.is_set():
                    break
                if len(in_flight) >= self.max_in_flight:
                    with self._lock:
                        self._stats.dropped += 1
                    continue
                body = self._bodies[int(order[k % len(order)])]
                k += 1
                task = asyncio.create_task(self._send(client, body))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if in_flight:
                await asyncio.wait(in_flight, timeout=self.timeout_s)

    async def _send(self, client: httpx.AsyncClient, body: bytes) -> None:
        import httpx

        with self._lock:
            self._stats.sent += 1
        try:
            resp = await client.post(
                f"{self.url}/predict", content=body, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError:
            with self._lock:
                self._stats.transport_errors += 1
            return
        version = None
        if resp.status_code == 200:
            try:
                version = str(resp.json().get("model_version"))
            except ValueError:
                version = None
        with self._lock:
            self._stats.statuses[resp.status_code] = self._stats.statuses.get(resp.status_code, 0) + 1
            if version is not None:
                self._stats.versions[version] = self._stats.versions.get(version, 0) + 1


def replaying(
    rows: np.ndarray, *, rate_rps: float
) -> Callable[[DeployTarget], contextlib.AbstractContextManager[None]]:
    """Pure; `drive(target)`: a context that replays `rows` at the target's replay URL (if it has one) while open."""

    @contextlib.contextmanager
    def drive(target: DeployTarget) -> Iterator[None]:
        url = target.replay_url()
        if url is None:  # real clients drive this target's traffic
            yield
            return
        gen = LoadGenerator(url=url, rows=rows, rate_rps=rate_rps)
        gen.start()
        try:
            yield
        finally:
            gen.stop(timeout_s=10)

    return drive
