"""Micro-batching: concurrent requests share model calls, each gets its own rows, limits hold."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from slipway.serving.batcher import BatcherClosed, MicroBatcher


class Recorder:
    """A fake model: doubles its input and records the batch sizes it saw."""

    def __init__(self, *, fail: bool = False, delay_s: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.fail = fail
        self.delay = threading.Event()
        self.delay_s = delay_s

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.sizes.append(len(x))
        if self.delay_s:
            self.delay.wait(self.delay_s)
        if self.fail:
            raise RuntimeError("model exploded")
        return x * 2


def _rows(k: int, n: int = 1) -> np.ndarray:
    return np.full((n, 3), float(k), dtype=np.float32)


def test_concurrent_requests_are_gathered_and_answered_with_their_own_rows() -> None:
    model = Recorder(delay_s=0.01)

    async def main() -> list[np.ndarray]:
        batcher = MicroBatcher(model, max_batch=16, max_wait_s=0.005)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(_rows(k, n=1 + k % 3)) for k in range(40)))
        finally:
            await batcher.stop()

    outs = asyncio.run(main())
    for k, out in enumerate(outs):
        np.testing.assert_array_equal(out, _rows(k, n=1 + k % 3) * 2)
    assert sum(model.sizes) == sum(1 + k % 3 for k in range(40))
    assert len(model.sizes) < 40 and max(model.sizes) <= 16


def test_a_request_larger_than_max_batch_runs_alone() -> None:
    model = Recorder()

    async def main() -> np.ndarray:
        batcher = MicroBatcher(model, max_batch=4, max_wait_s=0.0)
        batcher.start()
        try:
            return await batcher.submit(_rows(1, n=10))
        finally:
            await batcher.stop()

    assert asyncio.run(main()).shape == (10, 3) and model.sizes == [10]


def test_a_failing_call_fails_every_request_of_its_batch() -> None:
    async def main() -> list[object]:
        batcher = MicroBatcher(Recorder(fail=True), max_batch=8, max_wait_s=0.005)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(_rows(k)) for k in range(3)), return_exceptions=True)
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) and str(r) == "model exploded" for r in results)


def test_stopping_fails_queued_requests_and_refuses_new_ones() -> None:
    async def main() -> None:
        batcher = MicroBatcher(Recorder(delay_s=0.2), max_batch=1, max_wait_s=0.0)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit(_rows(k))) for k in range(3)]
        await asyncio.sleep(0.05)
        await batcher.stop()
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert any(isinstance(r, BatcherClosed) for r in results)
        with pytest.raises(BatcherClosed):
            await batcher.submit(_rows(9))

    asyncio.run(main())
