"""/predict by entity key, in-process, over the in-memory feature store injected as the app's store factory.

Given a bundle whose model reads a feature service, and a fake store holding some entities' features: the server
answers found entities like their feature values, missing ones in place with a 404 row naming the key, a request
with none found as a 404, counts lookups and missing entities, logs the looked-up rows, and refuses Ready while
the store's definition hash differs from the bundle's (Ready once it matches again).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from slipway.errors import FeatureStoreError
from slipway.features.base import FeatureStore
from slipway.features.direct import direct_online
from slipway.features.fake import FakeDefinition, FakeFeatureStore
from slipway.serving.app import FastPredictFront, create_app
from slipway.serving.bundle import FeatureServiceMeta, read_bundle, write_bundle
from slipway.serving.features import (
    PROMETHEUS_DIR_ENVS,
    EntityLookup,
    drop_inherited_feast_metrics_dir,
    runs_inline,
)
from slipway.serving.model import softmax
from slipway.serving.settings import ServeSettings
from tests.unit.serving.conftest import metric, offline_logits

ENTITIES = 12  # entity_id 0..11 are in the online store
UNKNOWN = 999


def fake_store(features: list[str], rows: np.ndarray, *, scale: float | None = None) -> FakeFeatureStore:
    """Applied and materialized: entity i's features are rows[i] (`scale` on the first feature: another definition)."""
    frame = pd.DataFrame(rows[:ENTITIES], columns=features)
    frame.insert(0, "entity_id", np.arange(ENTITIES))
    frame.insert(1, "event_timestamp", pd.Timestamp("2025-01-01", tz="UTC"))
    scales = ((features[0], scale),) if scale is not None else ()
    store = FakeFeatureStore(
        definition=FakeDefinition(features=tuple(features), keys=("entity_id",), scales=scales),
        offline=frame,
    )
    store.apply()
    store.materialize(end=pd.Timestamp("2025-02-01", tz="UTC").to_pydatetime())
    return store


@pytest.fixture(scope="module")
def store(features: list[str], rows: np.ndarray) -> FakeFeatureStore:
    return fake_store(features, rows)


@pytest.fixture(scope="module")
def entity_bundle(
    bundle_dir: Path, store: FakeFeatureStore, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny model's bundle, reading the fake store's feature service."""
    meta = read_bundle(bundle_dir).meta
    service = FeatureServiceMeta(
        name=store.definition.service,
        service_hash=store.service_hash(),
        entity_keys=list(store.entity_keys()),
        features=list(store.features()),
        repo="/nowhere/feature_repo",
    )
    return write_bundle(
        tmp_path_factory.mktemp("entity-bundle") / "bundle",
        onnx_path=bundle_dir / "model.onnx",
        model_name=meta.model_name,
        model_version=meta.model_version,
        features=meta.features,
        classes=meta.classes,
        feature_service=service,
    )


Factory = Callable[[FeatureServiceMeta], FeatureStore]


@contextmanager
def serving(bundle: Path, factory: Factory, *, front: bool = False, **overrides: Any) -> Iterator[TestClient]:
    app: Any = create_app(ServeSettings(model=bundle, **overrides), store_factory=factory)
    with TestClient(FastPredictFront(app) if front else app, raise_server_exceptions=False) as client:
        yield client


def entities(*ids: int) -> dict[str, Any]:
    return {"entities": [{"entity_id": i} for i in ids]}


@pytest.mark.parametrize("front", [False, True], ids=["fastapi", "fast-predict-front"])
def test_found_entities_are_predicted_from_their_online_features_in_model_order(
    entity_bundle: Path,
    store: FakeFeatureStore,
    rows: np.ndarray,
    weights: tuple[np.ndarray, np.ndarray],
    front: bool,
) -> None:
    with serving(entity_bundle, lambda _: store, front=front) as client:
        assert client.get("/readyz").json() == {"ready": True, "model_version": "3"}
        by_entity = client.post("/predict", json=entities(3, 0, 7))
        by_vector = client.post("/predict", json={"instances": rows[[3, 0, 7]].tolist()})
    assert by_entity.status_code == 200, by_entity.text
    expected = softmax(offline_logits(rows[[3, 0, 7]], weights))
    got = np.asarray([[r["probabilities"][c] for c in ("0", "1")] for r in by_entity.json()["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert by_entity.json()["predictions"] == by_vector.json()["predictions"]


def test_a_missing_entity_is_a_404_row_in_its_place_and_counted(
    entity_bundle: Path, store: FakeFeatureStore
) -> None:
    with serving(entity_bundle, lambda _: store) as client:
        resp = client.post("/predict", json=entities(UNKNOWN, 2, UNKNOWN + 1, 5))
        none = client.post("/predict", json=entities(UNKNOWN))
        text = client.get("/metrics").text
    assert resp.status_code == 200
    answers = resp.json()["predictions"]
    assert answers[0] == {"error": "entity not found", "status": 404, "key": {"entity_id": UNKNOWN}}
    assert answers[2] == {"error": "entity not found", "status": 404, "key": {"entity_id": UNKNOWN + 1}}
    assert set(answers[1]) == set(answers[3]) == {"label", "probabilities"}
    assert none.status_code == 404
    doc = none.json()
    assert doc["field"] == "entities" and f"entity_id={UNKNOWN}" in doc["detail"]
    assert doc["predictions"] == [{"error": "entity not found", "status": 404, "key": {"entity_id": UNKNOWN}}]
    assert metric(text, "slipway_entity_lookups_total", model_version="3") == 5
    assert metric(text, "slipway_missing_entities_total", model_version="3") == 3
    assert metric(text, "slipway_entity_lookup_seconds_count", model_version="3") == 2
    assert metric(text, "slipway_requests_total", status="404", model_version="3") == 1
    assert (
        metric(text, "slipway_predictions_total", model_version="3", **{"class": "0"})
        + metric(text, "slipway_predictions_total", model_version="3", **{"class": "1"})
        == 2
    )  # only found rows are predicted


def test_an_entity_with_some_features_absent_names_them(
    entity_bundle: Path, features: list[str], rows: np.ndarray
) -> None:
    store = fake_store(features, rows)
    store.write_online({"entity_id": 50}, {features[0]: 1.0, features[1]: 2.0})  # only two features online
    with serving(entity_bundle, lambda _: store) as client:
        resp = client.post("/predict", json=entities(50))
    assert resp.status_code == 404
    (row,) = resp.json()["predictions"]
    assert row["key"] == {"entity_id": 50} and row["absent"] == features[2:]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"entities": []}, 422, "entities: empty list"),
        ({"entities": {"entity_id": 1}}, 422, "entities: expected a list of entity keys, got object"),
        ({"entities": [[1]]}, 422, 'entities[0]: expected an object {"entity_id": ...}, got array'),
        (
            {"entities": [{"entity_id": 1}, {"id": 2}]},
            422,
            "entities[1]: unknown key 'id'; missing 'entity_id'",
        ),
        ({"entities": [{"entity_id": 1, "x": 2}]}, 422, "entities[0]: unknown key 'x'"),
        (
            {"entities": [{"entity_id": 1.5}]},
            422,
            "entities[0].entity_id: expected an integer or a string, got number",
        ),
        (
            {"entities": [{"entity_id": True}]},
            422,
            "entities[0].entity_id: expected an integer or a string, got boolean",
        ),
        (
            {"entities": [{"entity_id": None}]},
            422,
            "entities[0].entity_id: expected an integer or a string, got null",
        ),
        ({"entities": [{"entity_id": 2**63}]}, 422, "entities[0].entity_id: integer out of int64 range"),
        ({"entities": [{"entity_id": 1}], "instances": [[0.0]]}, 422, "body: unknown key 'instances'"),
        ({"entities": [{"entity_id": 1}] * 5}, 413, "entities: 5 entities exceed the limit of 4"),
    ],
)
def test_bad_entity_requests_are_refused_naming_the_field(
    entity_bundle: Path, store: FakeFeatureStore, body: dict[str, Any], status: int, detail: str
) -> None:
    with serving(entity_bundle, lambda _: store, max_batch_size=4) as client:
        resp = client.post("/predict", json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["detail"].startswith(detail), resp.json()["detail"]


def test_a_model_without_a_feature_service_refuses_entities_with_400(bundle_dir: Path) -> None:
    with serving(
        bundle_dir, lambda _: pytest.fail("no store for a bundle without a feature service")
    ) as client:
        resp = client.post("/predict", json=entities(1))
    assert resp.status_code == 400
    assert resp.json()["field"] == "entities" and "no feature service" in resp.json()["detail"]


def test_a_changed_definition_keeps_the_server_not_ready_until_it_matches_again(
    entity_bundle: Path, store: FakeFeatureStore, features: list[str], rows: np.ndarray
) -> None:
    changed = fake_store(features, rows, scale=2.0)  # a transformation changed: another definition hash
    current: list[FeatureStore] = [changed]
    with serving(entity_bundle, lambda _: current[0], feature_recheck_s=0.05) as client:
        resp = client.get("/readyz")
        assert resp.status_code == 503
        reason = resp.json()["reason"]
        assert f"feature service {store.definition.service!r} changed" in reason
        assert changed.service_hash() in reason and store.service_hash() in reason
        refused = client.post("/predict", json=entities(1))
        assert refused.status_code == 503 and "feature store not open" in refused.json()["detail"]
        current[0] = store  # the definition the model was trained on is applied again
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not Ready after the definition matched again"
            time.sleep(0.02)
        assert client.post("/predict", json=entities(1)).status_code == 200


def test_a_store_that_cannot_be_opened_is_the_not_ready_reason(entity_bundle: Path) -> None:
    def broken(meta: FeatureServiceMeta) -> FeatureStore:
        raise FeatureStoreError(f"{meta.repo}: not a Feast repository (no feature_store.yaml)")

    with serving(entity_bundle, broken) as client:
        resp = client.get("/readyz")
    assert resp.status_code == 503
    assert "cannot be opened" in resp.json()["reason"] and "/nowhere/feature_repo" in resp.json()["reason"]


def test_a_failing_online_store_is_a_503_not_a_crash(entity_bundle: Path, store: FakeFeatureStore) -> None:
    class Down(FakeFeatureStore):
        def online(self, keys: Any) -> Any:
            raise ConnectionError("redis: connection refused")

    down = Down(definition=store.definition, offline=store._offline)
    down.apply()
    with serving(entity_bundle, lambda _: down, feature_inline_max_ms=0) as client:
        resp = client.post("/predict", json=entities(1))
    assert resp.status_code == 503 and "connection refused" in resp.json()["detail"]
    assert "retry-after" not in resp.headers  # not shed for load: an error the canary counts


def test_lookups_run_inline_for_a_fast_store_and_on_a_thread_when_told(
    entity_bundle: Path, store: FakeFeatureStore
) -> None:
    with serving(entity_bundle, lambda _: store, feature_inline_max_ms=1000) as client:
        assert client.app.state.service.lookup.inline  # type: ignore[attr-defined]
    with serving(entity_bundle, lambda _: store, feature_inline_max_ms=0) as client:
        assert not client.app.state.service.lookup.inline  # type: ignore[attr-defined]
        assert client.post("/predict", json=entities(1, 2)).status_code == 200


def test_the_prediction_log_records_the_looked_up_rows_as_inputs(
    entity_bundle: Path, store: FakeFeatureStore, rows: np.ndarray, tmp_path: Path
) -> None:
    path = tmp_path / "predictions.jsonl"
    with serving(entity_bundle, lambda _: store, log_predictions_path=path, log_sample_rate=1.0) as client:
        client.post("/predict", json=entities(4, UNKNOWN, 6))
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    np.testing.assert_allclose(record["inputs"], rows[[4, 6]], rtol=1e-6)  # the found rows' features
    assert len(record["outputs"]["predictions"]) == 2


def test_model_metadata_carries_the_feature_service(entity_bundle: Path, store: FakeFeatureStore) -> None:
    with serving(entity_bundle, lambda _: store) as client:
        doc = client.get("/model").json()
    assert doc["feature_service"]["name"] == "fake_service"
    assert doc["feature_service"]["service_hash"] == store.service_hash()
    assert doc["feature_service"]["entity_keys"] == ["entity_id"]


def test_a_feast_metrics_folder_inherited_from_another_process_is_dropped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    feast_dir = tmp_path / "feast_metrics_abc123"
    for name in PROMETHEUS_DIR_ENVS:
        monkeypatch.setenv(name, str(feast_dir))
    assert drop_inherited_feast_metrics_dir() == str(feast_dir)
    assert not any(name in os.environ for name in PROMETHEUS_DIR_ENVS)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "mine"))  # an operator's own: kept
    assert drop_inherited_feast_metrics_dir() is None
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "mine")


def test_a_store_without_a_direct_read_is_looked_up_through_its_own_online(
    entity_bundle: Path, store: FakeFeatureStore
) -> None:
    assert direct_online(store) == (None, "FakeFeatureStore: not a Feast store")
    with serving(entity_bundle, lambda _: store) as client:
        lookup = client.app.state.service.lookup  # type: ignore[attr-defined]
    assert lookup.how.startswith("FeatureStore.online") and lookup.read == store.online


def test_lookups_queued_during_a_read_are_gathered_into_the_next_one(
    store: FakeFeatureStore, rows: np.ndarray
) -> None:
    reads: list[int] = []

    def slow(keys: Any) -> Any:  # a store that waits (as on a socket), answering every key
        time.sleep(0.02)
        reads.append(len(keys))
        return store.online(keys)

    meta = FeatureServiceMeta(
        name="fake_service",
        service_hash=store.service_hash(),
        entity_keys=["entity_id"],
        features=list(store.features()),
        repo="/nowhere",
    )
    lookup = EntityLookup(store, meta, read=slow, inline=False)

    async def many() -> list[Any]:
        asked = [
            [{"entity_id": i}, {"entity_id": UNKNOWN}] if i == 5 else [{"entity_id": i}] for i in range(8)
        ]
        first = asyncio.ensure_future(lookup.online(asked[0]))
        await asyncio.sleep(0.005)  # its read is running: the next seven queue meanwhile
        return await asyncio.gather(first, *(lookup.online(keys) for keys in asked[1:]))

    try:
        answers = asyncio.run(many())
    finally:
        lookup.close()
    assert reads == [1, 8] and lookup.reads == 2  # the first alone, the seven queued meanwhile in one read
    for i, got in enumerate(answers):
        np.testing.assert_array_equal(got.values[0], rows[i])
    fifth = answers[5]
    assert fifth.found.tolist() == [True, False] and [(m.index, m.key) for m in fifth.missing] == [
        (1, {"entity_id": UNKNOWN})
    ]


@pytest.mark.parametrize(
    ("best_ms", "cpu_share", "inline"),
    [(0.05, 0.95, True), (0.05, 0.2, False), (2.0, 1.0, False), (float("inf"), 0.0, False)],
    ids=["sqlite-page-cache", "waits-on-redis", "slow", "probe-refused"],
)
def test_only_fast_reads_that_compute_run_inline(best_ms: float, cpu_share: float, inline: bool) -> None:
    assert runs_inline(best_ms, cpu_share, inline_max_ms=1.0) is inline
    assert not runs_inline(best_ms, cpu_share, inline_max_ms=0)
