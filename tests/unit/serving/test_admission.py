"""Admission control: a bounded number computing, a bounded queue, a deadline each; 503 + Retry-After past them.

The pure tests drive `Admission` on an event loop; the live ones overload a real server whose model
call is held up by the latency fault, so the queue is full or a deadline passes for sure.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from slipway.serving.admission import Admission
from slipway.serving.batcher import DeadlineExpired, MicroBatcher
from slipway.serving.settings import ServeSettings
from tests.unit.serving.conftest import Responses, live_server, metric, post_bytes

ROW = {"instances": [[1.0] * 30]}


def test_the_queue_bound_sheds_at_arrival_and_frees_with_each_answer() -> None:
    gate = Admission(max_inflight=2, max_queue=1, deadline_s=10)
    tickets = [gate.arrive(0.0) for _ in range(3)]
    assert all(t is not None for t in tickets) and gate.arrive(0.0) is None
    gate.leave(tickets[0])  # type: ignore[arg-type]
    assert gate.arrive(0.0) is not None


def test_slots_go_to_waiters_in_arrival_order_and_expire_at_their_deadline() -> None:
    async def scenario() -> tuple[list[str], int, int]:
        gate = Admission(max_inflight=1, max_queue=3, deadline_s=10)
        now = time.monotonic()
        holder, first, second = (gate.arrive(now) for _ in range(3))
        late = gate.arrive(now - 9.95)  # arrived 9.95 s ago: its deadline is 50 ms away
        assert holder and first and second and late
        order: list[str] = []

        async def wait(name: str, ticket: object) -> None:
            order.append(f"{name}:{'slot' if await gate.acquire(ticket) else 'expired'}")  # type: ignore[arg-type]

        assert await gate.acquire(holder)
        waiting = [
            asyncio.create_task(wait(n, t)) for n, t in (("first", first), ("second", second), ("late", late))
        ]
        await asyncio.sleep(0.2)  # the late one expires while the slot is still held
        gate.release()  # to "first"
        await asyncio.sleep(0)
        gate.release()  # "first" is done: to "second"
        await asyncio.gather(*waiting)
        return order, gate.inflight, gate.waiting + gate.inflight

    order, inflight, _ = asyncio.run(scenario())
    assert order == ["late:expired", "first:slot", "second:slot"]
    assert inflight == 1  # "second" holds it


def test_a_request_past_its_deadline_gets_no_slot_even_when_one_is_free() -> None:
    async def scenario() -> bool:
        gate = Admission(max_inflight=4, max_queue=0, deadline_s=1)
        ticket = gate.arrive(time.monotonic() - 2)
        assert ticket is not None
        return await gate.acquire(ticket)

    assert asyncio.run(scenario()) is False


def test_micro_batching_drops_expired_requests_uncomputed() -> None:
    calls: list[int] = []

    def run(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return x[:, :2]

    async def scenario() -> tuple[object, np.ndarray]:
        batcher = MicroBatcher(run, max_batch=8, max_wait_s=0.01)
        batcher.start()
        try:
            expired = batcher.submit(np.ones((1, 3), dtype=np.float32), deadline=time.monotonic() - 1)
            fresh = batcher.submit(np.zeros((2, 3), dtype=np.float32), deadline=math.inf)
            results = await asyncio.gather(expired, fresh, return_exceptions=True)
        finally:
            await batcher.stop()
        return results[0], results[1]  # type: ignore[return-value]

    expired, fresh = asyncio.run(scenario())
    assert isinstance(expired, DeadlineExpired)
    assert fresh.shape == (2, 2) and calls == [2]  # only the fresh request's rows were computed


def _post_later(url: str, out: list[httpx.Response], *, delay_s: float = 0.0) -> threading.Thread:
    def go() -> None:
        time.sleep(delay_s)
        out.append(httpx.post(f"{url}/predict", json=ROW, timeout=30))

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def test_a_full_queue_is_answered_503_with_retry_after_at_once(bundle_dir: Path) -> None:
    settings = ServeSettings(
        model=bundle_dir,
        max_inflight=1,
        max_queue=1,
        fault_latency_ms=1500,
        deadline_ms=20_000,
        retry_after_s=3,
    )
    with live_server(settings) as server:
        answers: list[httpx.Response] = []
        threads = [_post_later(server.url, answers), _post_later(server.url, answers, delay_s=0.3)]
        time.sleep(0.8)  # one computing (1.5 s of injected latency), one queued behind it
        shed = httpx.post(f"{server.url}/predict", json=ROW, timeout=30)
        assert len(answers) == 0  # answered while both others were still in the server
        for thread in threads:
            thread.join()
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "3" and shed.headers["x-slipway-shed"] == "queue-full"
    assert shed.json()["request_id"] == shed.headers["x-request-id"]
    assert sorted(a.status_code for a in answers) == [200, 200]
    assert metric(text, "slipway_shed_total", model_version="3") == 1
    assert metric(text, "slipway_admitted_total", model_version="3") == 2
    assert metric(text, "slipway_requests_total", status="503", model_version="3") == 1


def test_a_request_that_waits_past_its_deadline_is_503_and_never_computed(bundle_dir: Path) -> None:
    settings = ServeSettings(
        model=bundle_dir, max_inflight=1, max_queue=4, fault_latency_ms=5000, deadline_ms=300
    )
    with live_server(settings) as server:
        answers: list[httpx.Response] = []
        holder = _post_later(server.url, answers)
        time.sleep(0.5)  # the holder is inside its 5 s of injected latency
        expired = httpx.post(f"{server.url}/predict", json=ROW, timeout=30)
        holder_done = len(answers)
        holder.join()
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert expired.status_code == 503 and expired.headers["x-slipway-shed"] == "deadline"
    assert "retry-after" in expired.headers
    assert holder_done == 0  # answered while the slot was still held, not after it
    assert [a.status_code for a in answers] == [200]
    assert metric(text, "slipway_deadline_expired_total", model_version="3") == 1
    predicted = sum(
        metric(text, "slipway_predictions_total", model_version="3", **{"class": c}) for c in "01"
    )
    assert predicted == 1  # only the holder's row reached the model


@pytest.mark.parametrize("microbatch", [False, True])
def test_overload_answers_every_request_and_the_queue_drains(bundle_dir: Path, microbatch: bool) -> None:
    """A burst far past the limits: every request gets 200 or 503 (never a hang), and nothing stays queued."""
    # a deadline far past the burst: what is answered 503 is what the bounded queue could not hold, even on a
    # loaded machine where the server reaches a request's admission more than the default 1 s after its headers
    settings = ServeSettings(
        model=bundle_dir,
        max_inflight=2,
        max_queue=2,
        microbatch=microbatch,
        fault_latency_ms=50,
        deadline_ms=30_000,
    )
    body = json.dumps(ROW).encode()

    async def burst(url: str) -> list[int]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            sent = [
                client.post(f"{url}/predict", content=body, headers={"content-type": "application/json"})
                for _ in range(64)
            ]
            return [r.status_code for r in await asyncio.gather(*sent)]

    with live_server(settings) as server:
        codes = asyncio.run(burst(server.url))
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert set(codes) == {200, 503} and len(codes) == 64
    assert metric(text, "slipway_queue_depth", model_version="3") == 0
    shed = metric(text, "slipway_shed_total", model_version="3")
    expired = metric(text, "slipway_deadline_expired_total", model_version="3")
    assert shed + expired == codes.count(503)
    assert metric(text, "slipway_admitted_total", model_version="3") == codes.count(200)


def test_a_request_shed_at_header_time_leaves_its_connection_usable(bundle_dir: Path) -> None:
    settings = ServeSettings(model=bundle_dir, max_inflight=1, max_queue=0, fault_latency_ms=1500)
    with live_server(settings) as server:
        answers: list[httpx.Response] = []
        holder = _post_later(server.url, answers)
        time.sleep(0.5)  # the only slot is taken
        with server.connect() as sock:
            body = json.dumps(ROW).encode()
            sock.sendall(post_bytes(body) + b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
            responses = Responses(sock)
            shed, after = responses.next(), responses.next()
        holder.join()
    assert (shed[0], shed[1]["x-slipway-shed"], after[0]) == (503, "queue-full", 200)
    assert json.loads(shed[2])["request_id"] == shed[1]["x-request-id"]
    assert [a.status_code for a in answers] == [200]
