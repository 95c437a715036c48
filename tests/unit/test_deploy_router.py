"""The local router without processes: its ASGI app over in-memory upstreams (httpx MockTransport), and over
a real overloaded server for load shedding."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from slipway.data.reference import Reference
from slipway.deploy.router import (
    UPSTREAM_KEEPALIVE_S,
    Entry,
    Outcome,
    Router,
    aggregate,
    entity_count,
    score_rows,
)
from slipway.deploy.state import DeploymentFile, ProcessRecord, ReleaseRecord, write_state
from slipway.serving.bundle import write_bundle
from slipway.serving.settings import ServeSettings
from tests.unit.serving.conftest import linear_onnx, live_server

STABLE, CANARY = 9001, 9002
NEGATIVE = {"label": 0, "probabilities": {"0": 0.9, "1": 0.1}}


def upstream(port: int, version: str) -> ProcessRecord:
    release = ReleaseRecord(model_name="m", model_version=version, bundle_dir="/b")
    return ProcessRecord(role="x", pid=1, port=port, release=release)


def write(path: Path, *, generation: int, weight: int = 0, shadow: int = 0, canary: bool = True) -> None:
    doc = DeploymentFile(
        generation=generation,
        weight=weight,
        shadow=shadow,
        stable=upstream(STABLE, "1"),
        canary=upstream(CANARY, "2") if canary else None,
    )
    write_state(path, doc)


def answers(canary: dict[str, Any] | None = None, *, canary_status: int = 200) -> httpx.MockTransport:
    """Stable answers NEGATIVE per row; the canary answers `canary` (default the same) with `canary_status`."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/model":
            return httpx.Response(200, json={"model_version": "1" if request.url.port == STABLE else "2"})
        n = len(json.loads(request.content)["instances"])
        if request.url.port == STABLE:
            return httpx.Response(200, json={"model_version": "1", "predictions": [NEGATIVE] * n})
        if canary_status == 0:
            raise httpx.ConnectError("refused", request=request)
        doc = canary or {"model_version": "2", "predictions": [NEGATIVE] * n}
        return httpx.Response(canary_status, json=doc)

    return httpx.MockTransport(handle)


def run(router: Router, requests: int, *, rows: int = 1) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
            out = [
                await client.post("/predict", json={"instances": [[0.0] * 30] * rows})
                for _ in range(requests)
            ]
            await asyncio.sleep(0)  # let shadow copies record
            for _ in range(10):
                await asyncio.sleep(0.01)
            return out

    return asyncio.run(go())


def window(router: Router, since: int = 0, min_generation: int = 0) -> dict[str, Any]:
    return router.window(since=since, boot=router.boot, min_generation=min_generation)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "deployment.json"


def test_the_split_follows_the_weight_and_is_seeded(state: Path) -> None:
    write(state, generation=1, weight=30)
    counts = []
    for _ in range(2):
        router = Router(state, client=httpx.AsyncClient(transport=answers()))
        responses = run(router, 400)
        arms = [r.headers["x-slipway-arm"] for r in responses]
        win = window(router)
        assert win["arms"]["canary"]["requests"] == arms.count("canary")
        assert win["arms"]["canary"]["versions"] == {"2": arms.count("canary")}
        counts.append(arms.count("canary"))
    assert counts[0] == counts[1] and 90 <= counts[0] <= 150  # same seed, same draws; about 30%


def test_shadow_copies_are_paired_and_never_answer_the_client(state: Path) -> None:
    write(state, generation=1, weight=0, shadow=100)
    flipped = {"model_version": "2", "predictions": [{"label": 1, "probabilities": {"0": 0.1, "1": 0.9}}] * 2}
    router = Router(state, client=httpx.AsyncClient(transport=answers(flipped)))
    responses = run(router, 5, rows=2)
    assert {r.json()["model_version"] for r in responses} == {"1"}
    win = window(router)
    assert win["arms"]["canary"]["requests"] == 0
    assert win["shadow"]["requests"] == 5
    assert win["shadow"]["pairs"] == [[0.1, 0.9]] * 10


def test_each_shadowed_request_pairs_the_two_arms_latency_when_both_answered(state: Path) -> None:
    write(state, generation=1, weight=0, shadow=100)
    plain = answers()

    async def slow_canary(request: httpx.Request) -> httpx.Response:
        if request.url.port != STABLE:
            await asyncio.sleep(0.05)
        return plain.handler(request)  # type: ignore[no-any-return]

    router = Router(state, client=httpx.AsyncClient(transport=httpx.MockTransport(slow_canary)))
    run(router, 4)
    latencies = window(router)["shadow"]["latency_pairs"]
    assert len(latencies) == 4 and all(canary - stable >= 45 for stable, canary in latencies)

    failing = Router(state, client=httpx.AsyncClient(transport=answers(canary_status=500)))
    run(failing, 3)
    assert window(failing)["shadow"]["latency_pairs"] == []  # an error is no latency evidence


def test_upstream_failures_are_the_arms_errors(state: Path) -> None:
    write(state, generation=1, weight=100)
    router = Router(state, client=httpx.AsyncClient(transport=answers(canary_status=0)))
    responses = run(router, 3)
    assert [r.status_code for r in responses] == [502] * 3
    assert "canary upstream failed" in responses[0].json()["detail"]
    win = window(router)
    assert (win["arms"]["canary"]["errors"], win["arms"]["canary"]["statuses"]) == (3, {"transport": 3})

    router = Router(state, client=httpx.AsyncClient(transport=answers({"detail": "x"}, canary_status=503)))
    assert [r.status_code for r in run(router, 2)] == [503, 503]
    assert window(router)["arms"]["canary"]["errors"] == 2


def test_a_rewritten_file_is_applied_and_windows_filter_by_generation(state: Path) -> None:
    write(state, generation=1, weight=100)
    router = Router(state, client=httpx.AsyncClient(transport=answers()))
    run(router, 3)
    write(state, generation=2, weight=0)
    assert router.health()["generation"] == 2
    run(router, 4)
    win = window(router, min_generation=2)
    assert (win["arms"]["stable"]["requests"], win["arms"]["canary"]["requests"]) == (4, 0)
    assert win["next"] == 7
    assert window(router, since=7)["arms"]["stable"]["requests"] == 0
    other_boot = router.window(since=7, boot="another router", min_generation=0)
    assert other_boot["arms"]["canary"]["requests"] == 3  # a cursor from another router starts at 0


def test_no_stable_is_a_503(state: Path) -> None:
    router = Router(state, client=httpx.AsyncClient(transport=answers()))
    assert [r.status_code for r in run(router, 1)] == [503]


Rows = tuple[tuple[float | None, ...], tuple[int | None, ...], int, int]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            {
                "predictions": [
                    {"label": 1, "probabilities": {"0": 0.25, "1": 0.75}},
                    {"label": 0, "probabilities": {"0": 1.0, "1": 0.0}},
                ]
            },
            ((0.75, 0.0), (1, 0), 0, 0),
        ),
        (
            {"probabilities": [[0.25, 0.75], [1.0, 0.0]]},
            ((0.75, 0.0), (1, 0), 0, 0),
        ),  # columns: an older image
        (
            {"predictions": [{"label": "c", "probabilities": {"a": 0.2, "b": 0.1, "c": 0.7}}]},
            ((0.7,), (2,), 0, 0),
        ),  # multiclass: the top class
        ({"probabilities": [[None, None], [0.5, 0.5]]}, ((None, 0.5), (None, 0), 1, 0)),
        (
            {"probabilities": [[0.7, 0.7], [1.5, -0.5], ["a", 1]]},
            ((None, None, None), (None, None, None), 0, 3),
        ),
        (
            {"predictions": [{"value": 12.5}, {"value": None}, {"value": -3.0}]},
            ((12.5, None, -3.0), (None, None, None), 1, 0),
        ),  # regression
        (
            {"predictions": [12.5, None, -3.0]},
            ((12.5, None, -3.0), (None, None, None), 1, 0),
        ),  # an older image
        (
            {"predictions": [{"value": 1.0}, {"label": 0, "probabilities": {"0": 1.0}}]},
            ((), (), 0, 1),
        ),  # mixed
        ({"predictions": [{"value": 1.0}, 2.0]}, ((), (), 0, 1)),  # objects and bare values mixed
        ({"probabilities": []}, ((), (), 0, 1)),
        (
            {
                "predictions": [
                    {"error": "entity not found", "status": 404, "key": {"patient_id": 9}},
                    {"label": 1, "probabilities": {"0": 0.25, "1": 0.75}},
                ]
            },
            ((0.75,), (1,), 0, 0),
        ),  # by entity: a missing entity's row is no answer (counted apart), not an invalid one
        (
            {"predictions": [{"error": "entity not found", "status": 404, "key": {"patient_id": 9}}]},
            ((), (), 0, 0),
        ),
        ({"detail": "no"}, ((), (), 0, 1)),
        (None, ((), (), 0, 1)),
    ],
)
def test_score_rows(doc: Any, expected: Rows) -> None:
    assert score_rows(doc) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"entities": [{"patient_id": 1}, {"patient_id": 2}]}', 2),
        (b'{"instances": [[1.0, 2.0]]}', 0),
        (b'{"instances": [{"entities": 1.0}]}', 0),  # a feature named so: not a request by entity
        (b'{"entities": ', 0),
    ],
)
def test_entity_count_reads_requests_by_entity_only(body: bytes, expected: int) -> None:
    assert entity_count(body) == expected


def test_a_shedding_upstream_is_passed_through_and_counted_as_shed(
    state: Path, tmp_path: Path, ref: Reference
) -> None:
    """A real, overloaded server as the canary: its 503 + Retry-After reach the client; the window counts them."""
    rng = np.random.default_rng(0)
    onnx_path = linear_onnx(tmp_path / "m.onnx", weights=rng.normal(size=(30, 2)), bias=np.zeros(2))
    bundle = write_bundle(
        tmp_path / "bundle",
        onnx_path=onnx_path,
        model_name="m",
        model_version="2",
        features=list(ref.features),
        classes=[0, 1],
    )
    settings = ServeSettings(model=bundle, max_inflight=1, max_queue=0, fault_latency_ms=800, retry_after_s=4)
    with live_server(settings) as server:
        doc = DeploymentFile(
            generation=1, weight=100, stable=upstream(STABLE, "1"), canary=upstream(server.port, "2")
        )
        write_state(state, doc)
        router = Router(state)

        async def burst() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=router)
            async with httpx.AsyncClient(transport=transport, base_url="http://router", timeout=30) as client:
                body = {"instances": [[0.0] * 30]}
                return list(await asyncio.gather(*(client.post("/predict", json=body) for _ in range(6))))

        responses = asyncio.run(burst())
    shed = [r for r in responses if r.status_code == 503]
    assert sorted(r.status_code for r in responses) == [200] + [503] * 5
    assert {(r.headers["retry-after"], r.headers["x-slipway-shed"]) for r in shed} == {("4", "queue-full")}
    canary = window(router)["arms"]["canary"]
    assert (canary["requests"], canary["errors"], canary["shed"]) == (6, 5, 5)


def test_the_router_drops_an_idle_upstream_connection_before_the_server_would() -> None:
    """Reusing a pooled connection the server is closing at that moment answers 502: the pool must let go first."""
    server_keep_alive_s = ServeSettings.model_fields["keep_alive_s"].default
    assert server_keep_alive_s / 2 >= UPSTREAM_KEEPALIVE_S


def test_model_metadata_is_the_stables_and_is_not_recorded(state: Path) -> None:
    write(state, generation=1, weight=100)  # every /predict would go to the canary
    router = Router(state, client=httpx.AsyncClient(transport=answers()))
    resp = asyncio.run(get(router))
    assert (resp.status_code, resp.json()) == (200, {"model_version": "1"})
    assert window(router)["next"] == 0


def test_model_metadata_without_a_reachable_stable(state: Path, tmp_path: Path) -> None:
    write(state, generation=1, weight=0, canary=False)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    refused = Router(state, client=httpx.AsyncClient(transport=httpx.MockTransport(down)))
    assert asyncio.run(get(refused)).status_code == 502
    nothing = Router(tmp_path / "none.json", client=httpx.AsyncClient(transport=answers()))
    assert asyncio.run(get(nothing)).status_code == 503


async def get(router: Router, path: str = "/model") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=router), base_url="http://r") as client:
        return await client.get(path)


def test_aggregate_counts_entities_and_missing_entities_per_arm() -> None:
    def entry(arm: str, status: int, entities: int, missing: int) -> Entry:
        out = Outcome(status, 1.0, entities=entities, missing=missing)
        return Entry(seq=0, generation=0, arm=arm, shadow=False, outcome=out)

    arms = aggregate([entry("canary", 200, 3, 1), entry("canary", 404, 2, 2), entry("stable", 200, 4, 0)])[
        "arms"
    ]
    assert (arms["canary"]["entities"], arms["canary"]["missing_entities"]) == (5, 3)
    assert (arms["stable"]["entities"], arms["stable"]["missing_entities"]) == (4, 0)
    assert arms["canary"]["errors"] == 0  # a 404 by entity is the client's miss, not a server error
