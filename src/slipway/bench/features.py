"""`make bench`, features part: online lookups through the feature service, and what the apply/materialize
caches save.

On a copy of examples/breast-cancer-feast (569 patients, 30 features in two views):
1. Online lookup latency, in process, for batches of 1 and 32 random patients, on the repository's SQLite
   online store and on Redis (Debian's `redis-server` on a loopback port; skipped with the reason when absent):
   Feast's own `get_online_features` through the service (`feast`), Slipway's `FeatureStore.online`
   (`slipway`: the same call plus float32 rows in features() order and the missing-key report), and the
   server's direct read of the same stored rows (`direct`: `slipway.features.direct`, the same answer without
   Feast's request path). p50/p99/mean. Target: p50 <= 2 ms for one entity.
2. Cold vs cached: `import feast`, apply and materialize in this process (cold, then the cached no-op), and
   `slipway features apply` as a fresh process before and after the cache holds it (what CI pays).
3. `/predict` by entity vs by vector (`predict_by_entity`), per online store: ONE `python -m slipway.serving`
   process serving the shipped example MLP (exported as a release does) bundled with the feature service, driven
   by the serving bench's closed-loop generator (`slipway.bench.loadgen`, same concurrency, warm-up and window as
   `slipway.bench.serving`) with batch-1 requests: `{"instances": [the patient's latest features]}`, then
   `{"entities": [{"patient_id": p}]}` for the same random patients. Ratio = by-entity rps / by-vector rps;
   target >= 0.5.
Writes OUT/features.json and OUT/features.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

import numpy as np

from slipway.features.feast_repo import online_store_override
from slipway.features.feast_store import FeastFeatureStore
from slipway.ports import free_port

REPO: Final = Path(__file__).resolve().parents[3]
EXAMPLE: Final = REPO / "examples" / "breast-cancer-feast"
SERVICE: Final = "tumor_diagnosis"
PATIENTS: Final = 569
BATCHES: Final = (1, 32)
CALLS: Final = 2_000
QUICK_CALLS: Final = 100
WARMUP: Final = 50
END: Final = datetime(2025, 6, 1, tzinfo=UTC)
TARGET_P50_MS: Final = 2.0
TARGET_BY_ENTITY_RATIO: Final = 0.5
REQUEST_BODIES: Final = 2_000  # distinct batch-1 requests each mode cycles through


def copy_project(dest: Path) -> Path:
    """Blocking; a copy of the example project without Feast's generated files; returns its feature repository."""
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("*.db", "__pycache__", ".slipway"))
    return dest / "feature_repo"


@contextlib.contextmanager
def local_redis(state: Path) -> Iterator[str | None]:
    """Blocking start (~0.1 s); `redis-server` on a free loopback port without persistence, its URL; None when
    the binary is absent. Stopped on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    state.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*args, "--dir", str(state)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """Pure; p50, p99 and mean in ms, rounded to microseconds."""
    values = np.asarray(samples_ms)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "mean_ms": round(float(values.mean()), 3),
        "calls": len(samples_ms),
    }


def time_calls(
    call: Callable[[list[dict[str, Any]]], object], *, batch: int, calls: int, seed: int
) -> list[float]:
    """Blocking; `call` on `calls` random batches of patient keys (after WARMUP calls), each timed in ms."""
    rng = np.random.default_rng(seed)
    batches = [
        [{"patient_id": int(p)} for p in rng.integers(0, PATIENTS, size=batch)] for _ in range(calls + WARMUP)
    ]
    samples = []
    for i, rows in enumerate(batches):
        t0 = time.perf_counter()
        call(rows)
        if i >= WARMUP:
            samples.append((time.perf_counter() - t0) * 1000)
    return samples


def lookups(store: FeastFeatureStore, *, calls: int) -> dict[str, Any]:
    """Blocking; latency per batch size of Feast's call and of `FeatureStore.online`, through the service."""
    service = store.feast.get_feature_service(SERVICE)

    def feast_call(rows: list[dict[str, Any]]) -> object:
        return store.feast.get_online_features(features=service, entity_rows=rows)

    from slipway.features.direct import direct_online

    direct, how = direct_online(store)
    assert direct is not None, how
    result: dict[str, Any] = {}
    for batch in BATCHES:
        result[str(batch)] = {
            "feast": percentiles(time_calls(feast_call, batch=batch, calls=calls, seed=batch)),
            "slipway": percentiles(time_calls(store.online, batch=batch, calls=calls, seed=batch)),
            "direct": percentiles(time_calls(direct, batch=batch, calls=calls, seed=batch)),
        }
    return result


def timed(step: Callable[[], Any]) -> tuple[float, Any]:
    """Blocking; seconds `step` took and what it returned."""
    t0 = time.perf_counter()
    value = step()
    return round(time.perf_counter() - t0, 3), value


def cli_apply_s(project: Path, *, home: Path) -> tuple[float, bool]:
    """Blocking; `slipway features apply --json` as a fresh process: wall seconds and whether it was cached."""
    env = {**os.environ, "SLIPWAY_HOME": str(home)}
    env.pop("SLIPWAY_FEATURES_ONLINE_STORE", None)
    cmd = [
        sys.executable,
        "-m",
        "slipway.cli",
        "features",
        "apply",
        "--json",
        "--config",
        str(project / "slipway.yaml"),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=True)
    return round(time.perf_counter() - t0, 2), bool(json.loads(proc.stdout.splitlines()[-1])["cached"])


def caching(tmp: Path, *, with_cli: bool) -> dict[str, Any]:
    """Blocking; cold and cached apply/materialize (in process, and `slipway features apply` as a process)."""
    import_s, _ = timed(lambda: __import__("feast"))
    repo = copy_project(tmp / "caching")
    store = FeastFeatureStore(repo=repo, service=SERVICE, state_dir=tmp / "caching-home" / "features")
    doc: dict[str, Any] = {"feast_import_s": import_s}
    for name, step in (("apply", store.apply), ("materialize", lambda: store.materialize(end=END))):
        cold_s, cold = timed(step)
        cached_s, cached = timed(step)
        assert not cold.cached and cached.cached, (cold, cached)
        doc[name] = {"cold_s": cold_s, "cached_s": cached_s}
    if with_cli:
        project = tmp / "cli"
        copy_project(project)
        cold_s, cold = cli_apply_s(project, home=tmp / "cli-home")
        cached_s, cached = cli_apply_s(project, home=tmp / "cli-home")
        doc["cli_apply"] = {
            "cold_s": cold_s,
            "cached_s": cached_s,
            "cold_cached": cold,
            "second_cached": cached,
        }
    return doc


def machine_facts() -> dict[str, Any]:
    """Blocking (reads /proc); CPU, cores, load and the versions lookups depend on."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    model = next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), None)
    redis_server = shutil.which("redis-server")
    server = (
        subprocess.run([redis_server, "--version"], capture_output=True, text=True).stdout.split()[2:3]
        if redis_server
        else []
    )
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "feast": version("feast"),
        "redis_py": version("redis"),
        "redis_server": server[0].removeprefix("v=") if server else None,
    }


def feature_bundle(dst: Path, store: FeastFeatureStore) -> Path:
    """Blocking (seconds; imports torch); the shipped example MLP, exported and bundled as the serving bench does,
    its inputs renamed to the service's features (the same 30 measurements in the same order) and the service
    recorded (repo, hash, keys)."""
    from slipway.bench.serving import build_bundle
    from slipway.serving.bundle import FeatureServiceMeta, read_bundle, write_bundle

    plain, _ = build_bundle(dst / "plain", config_path=REPO / "slipway.yaml")
    meta = read_bundle(plain).meta
    features = list(store.features())
    assert len(features) == len(meta.features), (features, meta.features)
    service = FeatureServiceMeta(
        name=SERVICE,
        service_hash=store.service_hash(),
        entity_keys=list(store.entity_keys()),
        features=features,
        repo=str(store.repo),
    )
    return write_bundle(
        dst / "bundle",
        onnx_path=plain / "model.onnx",
        model_name=meta.model_name,
        model_version="bench",
        features=features,
        classes=meta.classes,
        feature_service=service,
    )


def request_bodies(store: FeastFeatureStore, *, seed: int = 0) -> tuple[list[bytes], list[bytes]]:
    """Blocking (one online read); batch-1 bodies for the same random patients: by vector (their online features)
    and by entity."""
    rng = np.random.default_rng(seed)
    patients = [int(p) for p in rng.integers(0, PATIENTS, size=REQUEST_BODIES)]
    rows = store.online([{"patient_id": p} for p in range(PATIENTS)])
    assert bool(rows.found.all()), rows.missing[:3]
    by_vector = [json.dumps({"instances": [rows.values[p].tolist()]}).encode() for p in patients]
    by_entity = [json.dumps({"entities": [{"patient_id": p}]}).encode() for p in patients]
    return by_vector, by_entity


def predict_by_entity(
    bundle: Path, store: FeastFeatureStore, *, online_url: str | None, quick: bool
) -> dict[str, Any]:
    """Blocking (~30 s; quick ~5 s); one server, loaded by vector then by entity (same load protocol as the
    serving bench); both runs' numbers and the ratio of their rps."""
    import httpx

    from slipway.bench.serving import closed_loop, protocol, started_server

    proto = protocol(quick=quick)
    by_vector, by_entity = request_bodies(store)
    env = {"SLIPWAY_FEATURES_ONLINE_STORE": online_url} if online_url else {}
    cmd = [sys.executable, "-m", "slipway.serving", "--model", str(bundle), "--host", "127.0.0.1"]
    with started_server(cmd, ready_path="/readyz", env=env) as (proc, port):
        service = httpx.get(f"http://127.0.0.1:{port}/model").json()["feature_service"]["name"]
        vector = closed_loop(proc, port, bodies=by_vector, proto=proto)
        entity = closed_loop(proc, port, bodies=by_entity, proto=proto)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    ratio = round(entity["rps"] / vector["rps"], 3) if vector["rps"] else None
    return {
        "service": service,
        "by_vector": vector,
        "by_entity": entity,
        "ratio": ratio,
        "missing_entities": _sample(metrics, "slipway_missing_entities_total"),
        "entity_lookups": _sample(metrics, "slipway_entity_lookups_total"),
        "protocol": {
            "concurrency": proto.concurrency,
            "warmup_s": proto.warmup_s,
            "duration_s": proto.duration_s,
        },
    }


def _sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def run(out_dir: Path, *, quick: bool = False) -> dict[str, Any]:
    """Blocking (about a minute; quick: ~20 s); writes features.json and features.md, returns the JSON."""
    started = time.perf_counter()
    calls = QUICK_CALLS if quick else CALLS
    with tempfile.TemporaryDirectory(prefix="slipway-bench-features-") as tmp_name:
        tmp = Path(tmp_name)
        cache = caching(tmp, with_cli=not quick)
        backends: dict[str, Any] = {}
        sqlite = FeastFeatureStore(
            repo=copy_project(tmp / "sqlite"), service=SERVICE, state_dir=tmp / "state"
        )
        sqlite.apply()
        sqlite.materialize(end=END)
        backends["sqlite"] = lookups(sqlite, calls=calls)
        bundle = feature_bundle(tmp / "model", sqlite)
        by_entity: dict[str, Any] = {
            "sqlite": predict_by_entity(bundle, sqlite, online_url=None, quick=quick)
        }
        with local_redis(tmp / "redis") as url:
            if url is None:
                skipped = {"skipped": "redis-server not installed (apt-get install redis-server)"}
                backends["redis"] = by_entity["redis"] = skipped
            else:
                online = online_store_override(url, base_dir=tmp)
                redis = FeastFeatureStore(
                    repo=copy_project(tmp / "redis-repo"),
                    service=SERVICE,
                    state_dir=tmp / "state",
                    online_store=online,
                )
                redis.apply()
                redis.materialize(end=END)
                backends["redis"] = lookups(redis, calls=calls)
                # the same bundle (the SQLite copy's repository, same definition) pointed at Redis by env
                by_entity["redis"] = predict_by_entity(bundle, redis, online_url=url, quick=quick)
    one = [b["1"]["slipway"]["p50_ms"] for b in backends.values() if "1" in b]
    ratios = [r["ratio"] for r in by_entity.values() if r.get("ratio") is not None]
    doc: dict[str, Any] = {
        "online_lookup": backends,
        "caching": cache,
        "predict_by_entity": by_entity,
        "notes": [
            "online_lookup: in process, one call per batch of random patients through the feature service "
            f"{SERVICE!r} (30 features, 2 views); feast = FeatureStore.get_online_features, slipway = "
            "slipway.features FeatureStore.online (float32 rows in model order + missing keys), direct = "
            "slipway.features.direct (what the server reads with: the same rows without Feast's request path)",
            "predict_by_entity: one `python -m slipway.serving` (the shipped example MLP + the feature service), "
            "closed loop at the serving bench's concurrency, batch 1, the same random patients by vector (their "
            "online features) then by entity; ratio = by-entity rps / by-vector rps",
            "caching.cli_apply: `slipway features apply` as a fresh process; the cached run never imports Feast",
        ],
        "targets": {
            "online_p50_one_entity": {
                "target": f"p50 <= {TARGET_P50_MS:g} ms for one entity (slipway path, every backend measured)",
                "value": max(one) if one else None,
                "met": bool(one) and max(one) <= TARGET_P50_MS,
            },
            "predict_by_entity_ratio": {
                "target": f"/predict by entity >= {TARGET_BY_ENTITY_RATIO:g}x by vector in rps (every backend measured)",
                "value": min(ratios) if ratios else None,
                "met": bool(ratios) and min(ratios) >= TARGET_BY_ENTITY_RATIO,
            },
        },
        "machine": machine_facts(),
        "quick": quick,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "features.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out_dir / "features.md").write_text(markdown(doc))
    return doc


def markdown(doc: dict[str, Any]) -> str:
    """Pure; the results as Markdown tables."""
    lines = [
        "# Feature store: online lookups and caching",
        "",
        f"Machine: {doc['machine']['cpu']}, {doc['machine']['cores']} cores, load {doc['machine']['load_average_1m']}; "
        f"Feast {doc['machine']['feast']}, redis-server {doc['machine']['redis_server']}.",
        "",
        "| online store | batch | path | p50 ms | p99 ms | mean ms | calls |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, batches in doc["online_lookup"].items():
        if "skipped" in batches:
            lines.append(f"| {backend} | - | - | skipped: {batches['skipped']} | | | |")
            continue
        for batch, paths in batches.items():
            for path, r in paths.items():
                lines.append(
                    f"| {backend} | {batch} | {path} | {r['p50_ms']} | {r['p99_ms']} | {r['mean_ms']} | {r['calls']} |"
                )
    target = doc["targets"]["online_p50_one_entity"]
    lines += [
        "",
        f"Target {target['target']}: {target['value']} ms, {'met' if target['met'] else 'NOT met'}.",
        "",
    ]
    cache = doc["caching"]
    lines += [
        "| step | cold s | cached s |",
        "|---|---|---|",
        f"| import feast | {cache['feast_import_s']} | - |",
    ]
    for step in ("apply", "materialize", "cli_apply"):
        if step in cache:
            lines.append(f"| {step} | {cache[step]['cold_s']} | {cache[step]['cached_s']} |")
    lines += [
        "",
        "| online store | /predict by | rps | p50 ms | p99 ms | server CPU µs/request |",
        "|---|---|---|---|---|---|",
    ]
    for backend, r in doc["predict_by_entity"].items():
        if "skipped" in r:
            lines.append(f"| {backend} | - | skipped: {r['skipped']} | | | |")
            continue
        for mode in ("by_vector", "by_entity"):
            m = r[mode]
            lines.append(
                f"| {backend} | {mode.removeprefix('by_')} | {m['rps']} | {m['p50_ms']} | {m['p99_ms']} "
                f"| {m['server_cpu_us_per_request']} |"
            )
        lines.append(f"| {backend} | **ratio** | **{r['ratio']}** | | | |")
    ratio = doc["targets"]["predict_by_entity_ratio"]
    lines += [
        "",
        f"Target {ratio['target']}: {ratio['value']}, {'met' if ratio['met'] else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Blocking; `python -m slipway.bench.features [--quick] [--out DIR]` (what `make bench` runs)."""
    from slipway.bench.cli import simple_main

    simple_main(
        "features",
        description="Online feature lookups (SQLite, Redis) and the apply/materialize caches.",
        quick_help="100 calls per case and no CLI processes: checks the plumbing, not latency",
    )


if __name__ == "__main__":
    main()
