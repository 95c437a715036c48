"""The HTTP server in-process (TestClient runs its lifespan): answers, refusals, metrics, faults, logs."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from slipway.errors import UsageError
from slipway.serving.app import create_app
from slipway.serving.model import softmax
from slipway.serving.settings import ServeSettings
from tests.unit.serving.conftest import (
    ClientFactory,
    LiveServer,
    live_server,
    metric,
    offline_logits,
    started,
)

JSON = {"content-type": "application/json"}


def probs(doc: dict[str, Any], classes: tuple[str, ...] = ("0", "1")) -> np.ndarray:
    """The answer's per-class probabilities (each row's object keyed by class) as a matrix in class order."""
    return np.asarray([[row["probabilities"][c] for c in classes] for row in doc["predictions"]], dtype=float)


def labels(doc: dict[str, Any]) -> list[Any]:
    """The answer's predicted label per row."""
    return [row["label"] for row in doc["predictions"]]


def test_health_readiness_and_model_metadata(client_for: ClientFactory, features: list[str]) -> None:
    client = client_for()
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json() == {"ready": True, "model_version": "3"}
    meta = client.get("/model").json()
    assert meta["features"] == features and meta["classes"] == [0, 1] and meta["model_name"] == "tiny"


def test_predictions_match_the_offline_model_for_lists_and_objects(
    client_for: ClientFactory, rows: np.ndarray, features: list[str], weights: tuple[np.ndarray, np.ndarray]
) -> None:
    client = client_for()
    expected = softmax(offline_logits(rows, weights))
    as_lists = client.post("/predict", json={"instances": rows.tolist()})
    as_objects = client.post(
        "/predict", json={"instances": [dict(zip(features, r, strict=True)) for r in rows.tolist()]}
    )
    for resp in (as_lists, as_objects):
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        assert (doc["model_name"], doc["model_version"]) == ("tiny", "3")
        np.testing.assert_allclose(probs(doc), expected, atol=1e-6)
        assert labels(doc) == expected.argmax(axis=1).tolist()
        assert all(set(row) == {"label", "probabilities"} for row in doc["predictions"])
        assert resp.headers["x-request-id"] == doc["request_id"]
        assert uuid.UUID(doc["request_id"]).version == 4


def test_a_given_request_id_is_echoed(client_for: ClientFactory) -> None:
    resp = client_for().post(
        "/predict", json={"instances": [[0.0] * 30]}, headers={"x-request-id": "abc-123"}
    )
    assert resp.headers["x-request-id"] == "abc-123" and resp.json()["request_id"] == "abc-123"


def _row(value: object = 1.0, at: int = 0) -> list[object]:
    row: list[object] = [1.0] * 30
    row[at] = value
    return row


BAD_REQUESTS = [
    ("empty list", json.dumps({"instances": []}), JSON, 422, "instances: empty list"),
    ("not a list", json.dumps({"instances": "x"}), JSON, 422, "instances: expected a list"),
    ("bare list", json.dumps([_row()]), JSON, 400, "body: expected a JSON object"),
    (
        "wrong count",
        json.dumps({"instances": [_row(), [1.0] * 29]}),
        JSON,
        422,
        "instances[1]: expected 30 values, got 29",
    ),
    (
        "names wrong",
        json.dumps({"instances": [{"foo": 1.0}]}),
        JSON,
        422,
        "instances[0]: unknown feature 'foo'; missing",
    ),
    (
        "string value",
        json.dumps({"instances": [_row("3.2", 7)]}),
        JSON,
        422,
        "instances[0][7] (mean concave points): expected a number, got string",
    ),
    (
        "NaN literal",
        '{"instances": [[NaN' + ", 1.0" * 29 + "]]}",
        JSON,
        422,
        "instances[0][0] (mean radius): not a finite number",
    ),
    (
        "Infinity literal",
        '{"instances": [[1.0, -Infinity' + ", 1.0" * 28 + "]]}",
        JSON,
        422,
        "instances[0][1] (mean texture): not a finite number",
    ),
    (
        "nested list",
        json.dumps({"instances": [_row([1.0, 2.0], 3)]}),
        JSON,
        422,
        "instances[0][3] (mean area): expected a number, got array",
    ),
    (
        "bool",
        json.dumps({"instances": [_row(True, 2)]}),
        JSON,
        422,
        "instances[0][2] (mean perimeter): expected a number, got boolean",
    ),
    (
        "null",
        json.dumps({"instances": [_row(None, 2)]}),
        JSON,
        422,
        "instances[0][2] (mean perimeter): expected a number, got null",
    ),
    ("invalid JSON", '{"instances": [', JSON, 400, "body: invalid JSON"),
    ("empty body", "", JSON, 400, "body: empty"),
    (
        "wrong content type",
        json.dumps({"instances": [_row()]}),
        {"content-type": "text/plain"},
        415,
        "content-type: expected application/json, got 'text/plain'",
    ),
    (
        "no content type",
        json.dumps({"instances": [_row()]}),
        {},
        415,
        "content-type: expected application/json",
    ),
    (
        "too many instances",
        json.dumps({"instances": [_row()] * 5}),
        JSON,
        413,
        "instances: 5 instances exceed the limit of 4",
    ),
    ("too large body", json.dumps({"instances": [_row(1.0)] * 3, "pad": "x" * 5000}), JSON, 413, "body: 5"),
    (
        "400-digit integer",
        '{"instances": [[' + "1" * 400 + ", 1.0" * 29 + "]]}",
        JSON,
        422,
        "instances[0][0] (mean radius):",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "detail"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_is_a_4xx_naming_the_field(
    client_for: ClientFactory, case: str, body: str, headers: dict[str, str], status: int, detail: str
) -> None:
    client = client_for(max_batch_size=4, max_body_bytes=4096)
    resp = client.post(
        "/predict", content=body.encode(), headers=headers | {"x-request-id": case.replace(" ", "-")}
    )
    assert resp.status_code == status, resp.text
    doc = resp.json()
    assert doc["detail"].startswith(detail), doc
    assert doc["request_id"] == resp.headers["x-request-id"] == case.replace(" ", "-")
    assert client.post("/predict", json={"instances": [_row()]}).status_code == 200  # and it still serves


@pytest.fixture(scope="module")
def live_limits(bundle_dir: Path) -> Iterator[LiveServer]:
    with live_server(ServeSettings(model=bundle_dir, max_batch_size=4, max_body_bytes=4096)) as server:
        yield server


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "detail"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_is_the_same_4xx_on_the_serving_stack(
    live_limits: LiveServer, case: str, body: str, headers: dict[str, str], status: int, detail: str
) -> None:
    resp = httpx.post(f"{live_limits.url}/predict", content=body.encode(), headers=headers, timeout=10)
    assert resp.status_code == status, resp.text
    assert resp.json()["detail"].startswith(detail)
    assert resp.headers["x-request-id"] == resp.json()["request_id"]


def test_a_streamed_body_over_the_limit_is_refused_without_content_length(client_for: ClientFactory) -> None:
    client = client_for(max_body_bytes=4096)

    def chunks() -> Iterator[bytes]:
        yield b'{"instances": [' + b"[1.0" + b", 1.0" * 29 + b"]"
        for _ in range(100):
            yield b", [1.0" + b", 1.0" * 29 + b"]"
        yield b"]}"

    resp = client.post("/predict", content=chunks(), headers=JSON)
    assert resp.status_code == 413 and resp.json()["detail"] == "body: more than 4096 bytes (the limit)"


def test_unknown_routes_and_methods_are_4xx(client_for: ClientFactory) -> None:
    client = client_for()
    assert client.get("/nope").status_code == 404
    assert client.get("/predict").status_code == 405


def test_metrics_count_requests_latency_scores_and_classes(
    client_for: ClientFactory, rows: np.ndarray
) -> None:
    client = client_for()
    for start in range(0, 40, 10):
        assert (
            client.post("/predict", json={"instances": rows[start : start + 10].tolist()}).status_code == 200
        )
    assert client.post("/predict", json={"instances": []}).status_code == 422
    resp = client.get("/metrics")
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert metric(text, "slipway_requests_total", status="200", model_version="3") == 4
    assert metric(text, "slipway_requests_total", status="422", model_version="3") == 1
    assert metric(text, "slipway_request_latency_seconds_count", model_version="3") == 5
    assert metric(text, "slipway_prediction_score_count", model_version="3") == 40
    classes = [
        metric(text, "slipway_predictions_total", model_version="3", **{"class": c}) for c in ("0", "1")
    ]
    assert sum(classes) == 40
    assert metric(text, "slipway_nonfinite_outputs_total", model_version="3") == 0


def test_every_app_has_its_own_registry(client_for: ClientFactory) -> None:
    first, second = client_for(), client_for()
    first.post("/predict", json={"instances": [_row()]})
    assert metric(first.get("/metrics").text, "slipway_requests_total", status="200") == 1
    assert metric(second.get("/metrics").text, "slipway_requests_total", status="200") == 0


def test_micro_batching_gives_the_same_answers(
    client_for: ClientFactory, rows: np.ndarray, weights: tuple[np.ndarray, np.ndarray]
) -> None:
    client = client_for(microbatch=True, microbatch_max_batch=8, microbatch_max_wait_ms=0.5)
    expected = softmax(offline_logits(rows, weights))
    for start in (0, 5, 30):
        doc = client.post("/predict", json={"instances": rows[start : start + 10].tolist()}).json()
        np.testing.assert_allclose(probs(doc), expected[start : start + 10], atol=1e-6)


def test_a_bad_model_fails_startup(tmp_path: Path) -> None:
    with (
        pytest.raises(UsageError, match="no such bundle folder"),
        started(ServeSettings(model=tmp_path / "nope")),
    ):
        pass
    with pytest.raises(UsageError, match="no model"), started(ServeSettings()):
        pass


# --- fault injection ---------------------------------------------------------------------------


def test_injected_errors_are_503_with_the_fault_header(client_for: ClientFactory) -> None:
    resp = client_for(fault_error_rate=1.0).post("/predict", json={"instances": [_row()]})
    assert resp.status_code == 503 and resp.headers["x-slipway-fault"] == "error"
    assert resp.json()["detail"] == "injected fault: error"
    client = client_for(fault_error_rate=0.5, fault_seed=1)
    codes = [client.post("/predict", json={"instances": [_row()]}).status_code for _ in range(40)]
    assert set(codes) == {200, 503} and 8 <= codes.count(503) <= 32
    text = client.get("/metrics").text
    assert metric(text, "slipway_requests_total", status="503") == codes.count(503)


def test_injected_latency_delays_every_prediction(client_for: ClientFactory) -> None:
    client = client_for(fault_latency_ms=80)
    start = time.perf_counter()
    assert client.post("/predict", json={"instances": [_row()]}).status_code == 200
    assert time.perf_counter() - start >= 0.08


def test_corrupted_outputs(client_for: ClientFactory, rows: np.ndarray) -> None:
    body = {"instances": rows[:10].tolist()}
    clean = client_for().post("/predict", json=body).json()
    flipped = client_for(fault_output="flip").post("/predict", json=body).json()
    np.testing.assert_allclose(probs(flipped), probs(clean)[:, ::-1])
    assert labels(flipped) == [1 - p for p in labels(clean)]
    constant = client_for(fault_output="constant").post("/predict", json=body).json()
    assert constant["predictions"] == [{"label": 0, "probabilities": {"0": 0.5, "1": 0.5}}] * 10
    nan_client = client_for(fault_output="nan")
    resp = nan_client.post("/predict", json=body)
    assert resp.status_code == 200
    assert resp.json()["predictions"] == [{"label": None, "probabilities": {"0": None, "1": None}}] * 10
    text = nan_client.get("/metrics").text
    assert metric(text, "slipway_nonfinite_outputs_total", model_version="3") == 10
    assert metric(text, "slipway_prediction_score_count", model_version="3") == 0


def test_never_ready_still_serves_but_readyz_stays_503(client_for: ClientFactory) -> None:
    client = client_for(fault_never_ready=True)
    resp = client.get("/readyz")
    assert resp.status_code == 503 and resp.json() == {
        "ready": False,
        "reason": "fault injection: never ready",
    }
    assert client.get("/healthz").status_code == 200
    assert client.post("/predict", json={"instances": [_row()]}).status_code == 200


def test_slow_start_turns_ready_later(client_for: ClientFactory) -> None:
    client = client_for(fault_slow_start_s=0.4)
    assert client.get("/readyz").status_code == 503
    deadline = time.monotonic() + 5
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "never turned ready"
        time.sleep(0.05)


# --- prediction log ------------------------------------------------------------------------------


def test_sampled_prediction_log_records_inputs_and_outputs(
    bundle_dir: Path, tmp_path: Path, rows: np.ndarray
) -> None:
    path = tmp_path / "logs" / "predictions.jsonl"
    settings = ServeSettings(model=bundle_dir, log_predictions_path=path, log_sample_rate=1.0)
    with started(settings) as client:
        ids = [
            client.post("/predict", json={"instances": rows[k : k + 2].tolist()}).json()["request_id"]
            for k in range(3)
        ]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["request_id"] for r in records] == ids
    first = records[0]
    assert (first["model_name"], first["model_version"]) == ("tiny", "3")
    np.testing.assert_allclose(first["inputs"], rows[:2], rtol=1e-6)
    assert [set(row) for row in first["outputs"]["predictions"]] == [{"label", "probabilities"}] * 2


def test_the_prediction_log_is_off_by_default_samples_and_rotates(bundle_dir: Path, tmp_path: Path) -> None:
    with started(ServeSettings(model=bundle_dir)) as client:
        client.post("/predict", json={"instances": [_row()]})
        assert client.app.state.service.predlog is None  # type: ignore[attr-defined]
    path = tmp_path / "p.jsonl"
    with started(ServeSettings(model=bundle_dir, log_predictions_path=path, log_sample_rate=0.0)) as client:
        client.post("/predict", json={"instances": [_row()]})
    assert not path.exists() or path.read_text() == ""
    settings = ServeSettings(
        model=bundle_dir, log_predictions_path=path, log_sample_rate=1.0, log_max_bytes=2048, log_backups=2
    )
    with started(settings) as client:
        for _ in range(30):
            client.post("/predict", json={"instances": [_row()] * 2})
    assert sorted(p.name for p in tmp_path.glob("p.jsonl*")) == ["p.jsonl", "p.jsonl.1", "p.jsonl.2"]
    assert all(p.stat().st_size <= 2048 for p in tmp_path.glob("p.jsonl*"))


def test_readiness_drops_on_shutdown(bundle_dir: Path) -> None:
    app = create_app(ServeSettings(model=bundle_dir))
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
    service = app.state.service
    assert service.ready is False and service.not_ready_reason == "shutting down"


def test_a_canarys_traffic_lease_keeps_it_ready_until_it_runs_out(client_for: ClientFactory) -> None:
    client = client_for(lease_s=60)
    assert client.get("/readyz").status_code == 200
    assert client.post("/lease", json={"ttl_s": 0.2}).json() == {"lease_left_s": 0.2}  # its last renewal
    time.sleep(0.3)
    lapsed = client.get("/readyz")
    assert lapsed.status_code == 503 and "lease" in lapsed.json()["reason"]
    assert client.post("/predict", json={"instances": [[0.0] * 30]}).status_code == 200  # it still answers
    assert client.post("/lease", json={"ttl_s": 30}).json() == {"lease_left_s": 30}
    assert client.get("/readyz").status_code == 200


def test_a_lease_renewal_is_checked_and_a_stable_takes_none(client_for: ClientFactory) -> None:
    leased = client_for(lease_s=60)
    assert leased.post("/lease", json={"ttl_s": 0}).status_code == 422
    assert leased.post("/lease", json={"ttl_s": "soon"}).status_code == 422
    stable = client_for()
    assert stable.post("/lease", json={"ttl_s": 5}).status_code == 409
    assert stable.get("/readyz").status_code == 200
