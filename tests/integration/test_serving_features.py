"""`python -m slipway.serving` on a bundle that reads the breast-cancer-feast feature service, as a real process.

Given a copy of the example repository applied and materialized through the library (SQLite online store, or
Redis through $SLIPWAY_FEATURES_ONLINE_STORE), the server answers `/predict` by patient id with the model's
answer on the patient's latest visit, a 404 row in place for an unknown patient, a 404 when none is known, and
counts them. Given a copy whose feature definition changed and was applied, the same bundle never turns Ready,
and says which service and both hashes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from slipway.features.direct import direct_online
from slipway.features.feast_repo import online_store_override, redis_client
from slipway.features.feast_store import FeastFeatureStore
from slipway.ports import free_port
from slipway.serving.bundle import FeatureServiceMeta, write_bundle
from slipway.serving.model import softmax
from tests.support.feast_example import (
    FEATURES,
    MATERIALIZE_END,
    SERVICE,
    change_one_definition,
    copy_example,
    visit_values,
    visits,
)
from tests.support.onnx_models import linear_onnx
from tests.support.redis import redis_binary, redis_server
from tests.support.servers import clean_env, stop

pytestmark = pytest.mark.integration

READY_TIMEOUT_S = 60.0  # importing Feast takes ~5 s on this machine, more when it is loaded
UNKNOWN = 10**6
WEIGHTS = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32) / 1000
BIAS = np.array([0.1, -0.1], dtype=np.float32)


def store_of(
    root: Path, *, online: dict[str, str] | None = None, change: bool = False, materialize: bool = True
) -> FeastFeatureStore:
    """A copy of the example under `root` (`change`: mean_area is Float64), applied and materialized."""
    repo = copy_example(root / "feature_repo")
    if change:
        change_one_definition(repo)
    store = FeastFeatureStore(repo=repo, service=SERVICE, state_dir=root / "state", online_store=online)
    store.apply()
    if materialize:
        store.materialize(end=MATERIALIZE_END)
    return store


def bundle_for(root: Path, store: FeastFeatureStore, *, service_hash: str | None = None) -> Path:
    """A linear model over the service's 30 features, bundled with the service (its hash, or `service_hash`)."""
    onnx_path = linear_onnx(root / "model.onnx", weights=WEIGHTS, bias=BIAS)
    service = FeatureServiceMeta(
        name=SERVICE,
        service_hash=service_hash or store.service_hash(),
        entity_keys=list(store.entity_keys()),
        features=list(store.features()),
        repo=str(store.repo),
    )
    return write_bundle(
        root / "bundle",
        onnx_path=onnx_path,
        model_name="feast-linear",
        model_version="1",
        features=list(FEATURES),
        classes=["benign", "malignant"],
        feature_service=service,
    )


@contextmanager
def server(bundle: Path, tmp: Path, *, env: dict[str, str] | None = None) -> Iterator[str]:
    """`python -m slipway.serving` on a free port; yields its URL once /healthz answers; SIGTERM on exit (0)."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "slipway.serving", "--model", str(bundle), "--port", str(port)],
        env={**clean_env(), "SLIPWAY_HOME": str(tmp / "home"), **(env or {})},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"server exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"no /healthz in {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
            )
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        stop(proc, grace_s=20)
    assert proc.returncode == 0, log.read_text()[-3000:]


def readyz(url: str, *, settled: bool = False) -> httpx.Response:
    """/readyz once it answers 200 (or, `settled`, once it gives a reason other than starting up), or its last
    answer after READY_TIMEOUT_S."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        resp = httpx.get(f"{url}/readyz", timeout=5)
        starting = resp.status_code == 503 and resp.json()["reason"] in ("loading the model", "warming up")
        if resp.status_code == 200 or (settled and not starting) or time.monotonic() > deadline:
            return resp
        time.sleep(0.1)


def answers_by_entity(url: str) -> None:
    """Patients 3 and 7 found (their latest visit), an unknown one in between, then a request of unknowns only."""
    resp = httpx.post(
        f"{url}/predict", json={"entities": [{"patient_id": 3}, {"patient_id": UNKNOWN}, {"patient_id": 7}]}
    )
    assert resp.status_code == 200, resp.text
    rows = resp.json()["predictions"]
    frame = visits()
    x = np.stack([visit_values(frame, 3, 2), visit_values(frame, 7, 2)])
    expected = softmax(x @ WEIGHTS + BIAS)
    got = np.asarray([[rows[i]["probabilities"][c] for c in ("benign", "malignant")] for i in (0, 2)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert rows[1] == {"error": "entity not found", "status": 404, "key": {"patient_id": UNKNOWN}}
    none = httpx.post(f"{url}/predict", json={"entities": [{"patient_id": UNKNOWN + 1}]})
    assert none.status_code == 404 and f"patient_id={UNKNOWN + 1}" in none.json()["detail"]
    bad = httpx.post(f"{url}/predict", json={"entities": [{"patient": 3}]})
    assert bad.status_code == 422 and bad.json()["field"] == "entities[0]"
    text = httpx.get(f"{url}/metrics").text
    assert 'slipway_entity_lookups_total{model_version="1"} 4.0' in text
    assert 'slipway_missing_entities_total{model_version="1"} 2.0' in text


def test_a_sqlite_backed_server_answers_by_entity_and_refuses_ready_on_a_changed_definition(
    tmp_path: Path,
) -> None:
    store = store_of(tmp_path / "live")
    bundle = bundle_for(tmp_path / "live", store)
    with server(bundle, tmp_path) as url:
        assert readyz(url).status_code == 200
        answers_by_entity(url)
    changed = store_of(tmp_path / "changed", change=True, materialize=False)  # mean_area became Float64
    assert changed.service_hash() != store.service_hash()
    stale = bundle_for(tmp_path / "changed", changed, service_hash=store.service_hash())
    with server(stale, tmp_path) as url:
        resp = readyz(url, settled=True)
        assert resp.status_code == 503
        reason = resp.json()["reason"]
        assert f"feature service {SERVICE!r} changed" in reason
        assert store.service_hash() in reason and changed.service_hash() in reason


def test_a_redis_backed_server_reads_the_online_store_named_in_its_env(tmp_path: Path) -> None:
    redis_binary()
    with redis_server(tmp_path / "redis") as redis_url:
        store = store_of(tmp_path / "live", online=online_store_override(redis_url, base_dir=tmp_path))
        bundle = bundle_for(tmp_path / "live", store)  # the bundle names no online store: the env does
        with server(bundle, tmp_path, env={"SLIPWAY_FEATURES_ONLINE_STORE": redis_url}) as url:
            assert readyz(url).status_code == 200
            answers_by_entity(url)
    assert not os.environ.get("SLIPWAY_FEATURES_ONLINE_STORE")


def same_rows_as_feast(store: FeastFeatureStore) -> None:
    """The direct read answers every patient, an unknown one and a partly written one exactly as Feast's path."""
    read, how = direct_online(store)
    assert read is not None, how
    keys = [{"patient_id": p} for p in range(569)] + [{"patient_id": UNKNOWN}]
    direct, feast = read(keys), store.online(keys)
    np.testing.assert_array_equal(direct.values, feast.values)  # NaN where absent, on both
    assert direct.found.tolist() == feast.found.tolist() and direct.missing == feast.missing
    assert direct.features == feast.features and int(direct.found.sum()) == 569
    same_on_the_loop(read, keys, direct)
    row = visits()[lambda f: f["patient_id"] == 5].tail(1).assign(patient_id=UNKNOWN - 1)
    store.feast.write_to_online_store("tumor_means", row)  # one view of a new patient: the other absent
    one = [{"patient_id": UNKNOWN - 1}]
    assert read(one).missing == store.online(one).missing  # the extremes absent, named alike
    np.testing.assert_array_equal(read(one).values, store.online(one).values)
    assert read([{"patient_id": "5"}]).missing[0].key == {"patient_id": "5"}  # a string for an int64 key


def same_on_the_loop(read: Any, keys: list[dict[str, Any]], expected: Any) -> None:
    """A Redis read's event-loop twin (`aread`, slipway.features.resp) answers as the blocking read: the keys all
    at once, then each alone and concurrently (pipelined on one connection, replies back in order)."""
    aread = getattr(read, "aread", None)
    if aread is None:
        assert read.__class__.__name__ != "_RedisRead", "a plain Redis store reads on the loop"
        return

    async def both() -> tuple[Any, list[Any]]:
        try:
            return await aread(keys), await asyncio.gather(*(aread([k]) for k in keys))
        finally:
            read.close()

    together, alone = asyncio.run(both())
    np.testing.assert_array_equal(together.values, expected.values)
    assert together.missing == expected.missing and together.found.tolist() == expected.found.tolist()
    np.testing.assert_array_equal(np.concatenate([rows.values for rows in alone]), expected.values)


def overwrite_stored(store: FeastFeatureStore, patient: int, value: Any) -> None:
    """Replaces the stored `mean_area` of `patient` by this ValueProto, where Feast keeps it (SQLite or Redis):
    a value of another type than float32, as another writer could leave."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _mmh3
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = serialize_entity_key(
        EntityKey(join_keys=["patient_id"], entity_values=[Value(int64_val=patient)]),
        entity_key_serialization_version=3,
    )
    blob = value.SerializeToString()
    if store.facts.sqlite is not None:
        with sqlite3.connect(store.facts.sqlite) as conn:
            conn.execute(
                'UPDATE "breast_cancer_tumor_means" SET value = ? WHERE entity_key = ? AND feature_name = ?',
                (blob, key, "mean_area"),
            )
    else:
        assert store.facts.redis is not None
        client = redis_client(store.facts.redis)
        client.hset(key + b"breast_cancer", _mmh3("tumor_means:mean_area"), blob)


def other_types_as_feast(store: FeastFeatureStore) -> None:
    """A double, an int64 and a null stored value read alike on both paths (the per-value decoding)."""
    from feast.protos.feast.types.Value_pb2 import Null, Value

    read, _ = direct_online(store)
    assert read is not None
    keys = [{"patient_id": p} for p in (11, 12, 13, 14)]
    # read (and kept by a SQLite reader) before another writer changes them
    assert len(read(keys).missing) == 0
    for patient, value in (
        (11, Value(double_val=1234.5)),
        (12, Value(int64_val=7)),
        (13, Value(null_val=Null.NULL)),
    ):
        overwrite_stored(store, patient, value)
    direct, feast = read(keys), store.online(keys)
    np.testing.assert_array_equal(direct.values, feast.values)
    assert direct.missing == feast.missing and [m.index for m in direct.missing] == [2]  # the null is absent
    same_on_the_loop(read, keys, direct)
    assert direct.values[0, FEATURES.index("mean_area")] == 1234.5


def test_direct_reads_equal_feasts_on_sqlite(tmp_path: Path) -> None:
    store = store_of(tmp_path / "sqlite")
    same_rows_as_feast(store)
    other_types_as_feast(store)


def test_direct_reads_equal_feasts_on_redis(tmp_path: Path) -> None:
    redis_binary()
    with redis_server(tmp_path / "redis") as redis_url:
        store = store_of(tmp_path / "redis-repo", online=online_store_override(redis_url, base_dir=tmp_path))
        same_rows_as_feast(store)
        other_types_as_feast(store)
