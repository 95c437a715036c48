"""Server-side micro-batching: gather concurrent requests into one model call.

Requests queue their rows; one loop takes up to `max_batch` rows, waiting at most `max_wait_s`
for more once something is queued, runs one call on a single worker thread, and hands each
request its slice. Rows arriving during a call form the next batch. A request whose deadline
(time.monotonic) has passed when its batch is formed is dropped with `DeadlineExpired`, uncomputed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


class BatcherClosed(RuntimeError):
    """The batcher stopped before this request ran (the server is shutting down)."""


class DeadlineExpired(RuntimeError):
    """The request's deadline passed before its batch was formed; it was not computed."""


@dataclass
class _Item:
    x: np.ndarray
    future: asyncio.Future[np.ndarray]
    deadline: float


class MicroBatcher:
    """Gathers rows from concurrent `submit` calls; start() and stop() on the serving event loop."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], *, max_batch: int, max_wait_s: float) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: deque[_Item] = deque()
        self._rows = 0
        self._ready = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: list[_Item] = []
        self.calls = 0

    def start(self) -> None:
        """Non-blocking; idempotent; starts the gathering loop and its worker thread."""
        if self._task is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slipway-batch")
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="slipway-microbatch")

    async def stop(self) -> None:
        """Waits for the running call; idempotent; fails queued requests with BatcherClosed."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for item in [*self._inflight, *self._pending]:
            if not item.future.done():
                item.future.set_exception(BatcherClosed("server is shutting down"))
        self._pending.clear()
        self._inflight = []
        self._rows = 0
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, x: np.ndarray, *, deadline: float = math.inf) -> np.ndarray:
        """Awaits this request's output rows; BatcherClosed if not running, DeadlineExpired past `deadline` (time.monotonic)."""
        if self._task is None:
            raise BatcherClosed("micro-batcher is not running")
        item = _Item(x=x, future=asyncio.get_running_loop().create_future(), deadline=deadline)
        self._pending.append(item)
        self._rows += len(x)
        self._ready.set()
        if self._rows >= self.max_batch:
            self._full.set()
        return await item.future

    def _drop_expired(self, now: float) -> None:
        if all(item.deadline > now for item in self._pending):
            return
        kept: deque[_Item] = deque()
        for item in self._pending:
            if item.deadline > now:
                kept.append(item)
                continue
            self._rows -= len(item.x)
            if not item.future.done():
                item.future.set_exception(DeadlineExpired("deadline passed before the batch ran"))
        self._pending = kept

    def _take(self) -> list[_Item]:
        self._drop_expired(time.monotonic())
        if not self._pending:
            self._ready.clear()
            self._full.clear()
            return []
        items = [self._pending.popleft()]  # always at least one, even if larger than max_batch
        rows = len(items[0].x)
        while self._pending and rows + len(self._pending[0].x) <= self.max_batch:
            items.append(self._pending.popleft())
            rows += len(items[-1].x)
        self._rows -= rows
        if not self._pending:
            self._ready.clear()
        if self._rows < self.max_batch:
            self._full.clear()
        return [i for i in items if not i.future.cancelled()]

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.wait()
            if self._rows < self.max_batch and self.max_wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_wait_s)
            items = self._inflight = self._take()
            if not items:
                continue
            x = items[0].x if len(items) == 1 else np.concatenate([i.x for i in items])
            try:
                out = await loop.run_in_executor(self._executor, self._run, x)
            except Exception as exc:  # the model call failed: every request of the batch gets the error
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.calls += 1
            start = 0
            for item in items:
                if not item.future.done():
                    item.future.set_result(out[start : start + len(item.x)])
                start += len(item.x)
