"""The local weighted router: `python -m slipway.deploy.router --state deployment.json --port N`.

A raw ASGI app on uvicorn in front of the stable and canary server processes. It re-reads the
deployment file whenever it changes (the controller rewrites it atomically; see `state.py`), sends
each `POST /predict` to the canary with probability weight% (seeded per generation), mirrors
shadow% of the stable's requests to the canary (the client gets the stable's answer; both outputs
are kept as pairs), and records per arm and request the status, latency and returned scores.

`GET /router/window?since=SEQ&boot=ID&min_generation=G` returns what was recorded after cursor SEQ
(an ArmWindow per arm plus the shadow pairs) and the next cursor; `GET /router/healthz` returns the
applied generation; `GET /model` is the stable's own. Upstream failures (refused, timed out, 5xx) count as that arm's errors and are
answered 502 (transport) or the upstream's own 5xx; nothing waits longer than the upstream timeout.
An upstream that sheds load (503 with Retry-After) is passed through as is (Retry-After and
x-slipway-shed included) and counted in its arm's `shed` as well as its errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import secrets
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from slipway.deploy.state import DeploymentFile, read_state
from slipway.errors import DeployError
from slipway.serving.answers import AnswerColumns, answer_columns

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("slipway.deploy.router")

MAX_BODY_BYTES = 2 << 20
MAX_ENTRIES = 200_000  # recorded requests kept for window reads (oldest dropped first)
TRANSPORT = 0  # recorded status of a request that got no HTTP answer
# An idle pooled connection to a server is dropped after this long: well under the server's own keep-alive
# (`ServeSettings.keep_alive_s`, 5 s by default), so a request is never written to a connection the server is
# closing at that very moment (which would surface as a 502 to the caller).
UPSTREAM_KEEPALIVE_S = 2.0
SUPERVISOR_CHECK_S = 1.0  # how often the router looks for a dead supervisor
SUPERVISOR_RESTART_S = 5.0  # at most one supervisor started per this long
_PASS_HEADERS = (b"content-type", b"x-request-id", b"x-slipway-fault", b"retry-after", b"x-slipway-shed")
Scope = dict[str, Any]


@dataclass(frozen=True)
class RouteConfig:
    """What the router applies: upstream URLs, traffic split, RNG seed, timeout, and its generation."""

    generation: int = -1
    stable: str | None = None
    canary: str | None = None
    weight: int = 0
    shadow: int = 0
    seed: int = 0
    timeout_s: float = 5.0
    canary_until: float | None = None  # the canary's traffic lease (wall clock); past it, the stable only

    def canary_live(self, *, now: float) -> bool:
        """Pure; whether the canary gets traffic now: it exists and its lease (if any) has not expired."""
        return self.canary is not None and (self.canary_until is None or now < self.canary_until)

    @classmethod
    def of(cls, doc: DeploymentFile) -> RouteConfig:
        """Pure; the routing part of a deployment file."""
        return cls(
            generation=doc.generation,
            stable=doc.stable.url if doc.stable else None,
            canary=doc.canary.url if doc.canary else None,
            weight=doc.weight,
            shadow=doc.shadow,
            seed=doc.seed,
            timeout_s=doc.upstream_timeout_s,
            canary_until=doc.canary_lease_until,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """One upstream call: status (0 = no answer), latency, per-row scores (None: non-finite or invalid)."""

    status: int
    latency_ms: float
    rows: tuple[float | None, ...] = ()
    labels: tuple[int | None, ...] = ()  # classification: the argmax class index per row (None: not finite)
    nonfinite: int = 0
    invalid: int = 0
    version: str | None = None
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    detail: str = ""
    shed: bool = False  # a 503 with Retry-After: the upstream refused it for load (also an error)
    entities: int = 0  # a request by entity key answered 200 or 404: the entities it looked up
    missing: int = 0  # of those, the entities the online store lacked (404 rows)

    @property
    def error(self) -> bool:
        """A transport failure or a 5xx (shed requests included)."""
        return self.status == TRANSPORT or self.status >= 500


@dataclass(slots=True)
class Entry:
    """One recorded request (live, or a shadow copy with its pairs)."""

    seq: int
    generation: int
    arm: str
    shadow: bool
    outcome: Outcome
    pairs: list[tuple[float, float | None]] = field(default_factory=list)  # canary None: NaN/invalid
    label_pairs: list[tuple[int, int]] = field(default_factory=list)  # classification: both argmax labels
    latency_pair: tuple[float, float] | None = None  # (stable ms, canary ms) when both copies answered 200


def score_rows(doc: Any) -> tuple[tuple[float | None, ...], tuple[int | None, ...], int, int]:
    """Pure; a /predict answer summarized per row as the server summarizes it (`slipway.serving.answers`):
    (score per row, None where not finite or invalid; argmax label per row; non-finite count; invalid count).

    Rows are read by `answer_columns`. A classifier's row carries `probabilities` (keyed by class, or a list):
    a binary row's score is P(second class), a multiclass row's its top probability; a row is invalid unless
    its values are numbers in [0, 1] summing to 1 (±1e-3). A regressor's row carries a numeric `value`: the
    value is the score. An answer with neither counts as one invalid row.
    """
    return score_columns(answer_columns(doc))


def score_columns(
    columns: AnswerColumns,
) -> tuple[tuple[float | None, ...], tuple[int | None, ...], int, int]:
    """Pure; `score_rows` of an answer already read into columns; an answer whose every row is a missing
    entity has no rows (and nothing invalid)."""
    if columns.probabilities:
        return _class_rows(columns.probabilities)
    values = columns.values
    if values and all(v is None or _is_number(v) for v in values):
        rows = tuple(float(v) if v is not None and math.isfinite(v) else None for v in values)
        nonfinite = sum(1 for v in rows if v is None)
        return rows, (None,) * len(rows), nonfinite, 0
    if columns.missing and columns.labels is None and columns.values is None:
        return (), (), 0, 0
    return (), (), 0, 1


def entity_count(body: bytes) -> int:
    """Pure; how many entities a /predict body asks for by key (`{"entities": [...]}`), 0 for anything else
    (only a body that mentions them is parsed)."""
    if b'"entities"' not in body:
        return 0
    try:
        doc = json.loads(body)
    except ValueError:
        return 0
    rows = doc.get("entities") if isinstance(doc, dict) else None
    return len(rows) if isinstance(rows, list) else 0


def _class_rows(probs: list[Any]) -> tuple[tuple[float | None, ...], tuple[int | None, ...], int, int]:
    rows: list[float | None] = []
    labels: list[int | None] = []
    nonfinite = invalid = 0
    for raw in probs:
        row = list(raw.values()) if isinstance(raw, dict) else raw
        if not isinstance(row, list) or not row or not all(_is_number(v) or v is None for v in row):
            invalid += 1
            rows.append(None)
            labels.append(None)
        elif any(v is None or not math.isfinite(v) for v in row):
            nonfinite += 1
            rows.append(None)
            labels.append(None)
        elif any(v < 0 or v > 1 for v in row) or abs(sum(row) - 1.0) > 1e-3:
            invalid += 1
            rows.append(None)
            labels.append(None)
        else:
            top = max(range(len(row)), key=row.__getitem__)
            rows.append(float(row[1] if len(row) == 2 else row[top]))
            labels.append(top)
    return tuple(rows), tuple(labels), nonfinite, invalid


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def aggregate(entries: list[Entry]) -> dict[str, Any]:
    """Pure; ArmWindow-shaped dicts per arm (live traffic only) and the shadow copies' pairs and counts."""
    arms: dict[str, dict[str, Any]] = {arm: _empty_arm() for arm in ("stable", "canary")}
    shadow: dict[str, Any] = {
        "requests": 0,
        "errors": 0,
        "shed": 0,
        "nonfinite": 0,
        "invalid": 0,
        "pairs": [],
        "label_pairs": [],
        "latency_pairs": [],
    }
    for entry in entries:
        out = entry.outcome
        if entry.shadow:
            shadow["requests"] += 1
            shadow["errors"] += int(out.error)
            shadow["shed"] += int(out.shed)
            shadow["nonfinite"] += out.nonfinite
            shadow["invalid"] += out.invalid
            shadow["pairs"].extend([a, b] for a, b in entry.pairs)
            shadow["label_pairs"].extend([a, b] for a, b in entry.label_pairs)
            if entry.latency_pair is not None:
                shadow["latency_pairs"].append([round(v, 4) for v in entry.latency_pair])
            continue
        arm = arms[entry.arm]
        arm["requests"] += 1
        arm["errors"] += int(out.error)
        arm["shed"] += int(out.shed)
        arm["latencies_ms"].append(round(out.latency_ms, 4))
        arm["scores"].extend(s for s in out.rows if s is not None)
        arm["labels"].extend(
            k for s, k in zip(out.rows, out.labels, strict=False) if s is not None and k is not None
        )
        arm["nonfinite"] += out.nonfinite
        arm["invalid"] += out.invalid
        arm["entities"] += out.entities
        arm["missing_entities"] += out.missing
        key = str(out.status) if out.status else "transport"
        arm["statuses"][key] = arm["statuses"].get(key, 0) + 1
        if out.version is not None:
            arm["versions"][out.version] = arm["versions"].get(out.version, 0) + 1
    return {"arms": arms, "shadow": shadow}


def _empty_arm() -> dict[str, Any]:
    return {
        "requests": 0,
        "errors": 0,
        "shed": 0,
        "latencies_ms": [],
        "scores": [],
        "labels": [],
        "nonfinite": 0,
        "invalid": 0,
        "entities": 0,
        "missing_entities": 0,
        "statuses": {},
        "versions": {},
    }


def _json_body(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


async def _respond(
    send: Any, status: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    base = [(b"content-length", str(len(body)).encode())]
    if not any(name == b"content-type" for name, _ in headers):
        base.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": [*base, *headers]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any, *, limit: int) -> bytes | None:
    """The request body, or None if the client left or it exceeds `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class Router:
    """The ASGI app; all state lives on the one event loop (no locks)."""

    def __init__(self, state_path: Path, *, client: httpx.AsyncClient | None = None) -> None:
        self.state_path = state_path
        self.boot = secrets.token_hex(8)  # a restarted router starts a new cursor space
        self._client = client
        self._owns_client = client is None
        self._key: tuple[int, int, int] | None = None
        self._config = RouteConfig()
        self._rng = random.Random(0)
        self._entries: list[Entry] = []
        self._seq = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    def config(self) -> RouteConfig:
        """Non-blocking (a stat; a small read when the file changed); the routing config now in force."""
        try:
            st = os.stat(self.state_path)
            key: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_ino, st.st_size)
        except OSError:
            key = None
        if key != self._key and key is not None:
            self._key = key
            try:
                new = RouteConfig.of(read_state(self.state_path))
            except DeployError as exc:
                log.warning("keeping generation %s: %s", self._config.generation, exc)
                return self._config
            if new.generation != self._config.generation or new.seed != self._config.seed:
                self._rng = random.Random(f"{new.seed}:{new.generation}")
                log.info(
                    "generation %s: stable %s, canary %s, weight %s%%, shadow %s%%",
                    new.generation,
                    new.stable,
                    new.canary,
                    new.weight,
                    new.shadow,
                )
            self._config = new
        return self._config

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """ASGI entry; never raises for a request."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/predict" and method == "POST":
            await self._predict(scope, receive, send)
        elif path == "/model" and method == "GET":
            await self._stable_model(send)
        elif path == "/router/healthz" and method == "GET":
            await _respond(send, 200, _json_body(self.health()))
        elif path == "/router/window" and method == "GET":
            await self._window(scope, send)
        else:
            await _respond(send, 404, _json_body({"detail": f"no route {method} {path}"}))

    def health(self) -> dict[str, Any]:
        """Non-blocking; alive, the applied generation and traffic, and the recording cursor."""
        cfg = self.config()
        return {
            "status": "alive",
            "boot": self.boot,
            "generation": cfg.generation,
            "weight": cfg.weight,
            "shadow": cfg.shadow,
            "stable": cfg.stable,
            "canary": cfg.canary,
            "canary_live": cfg.canary_live(now=time.time()),
            "canary_lease_until": cfg.canary_until,
            "seq": self._seq,
        }

    def window(self, *, since: int, boot: str, min_generation: int) -> dict[str, Any]:
        """Non-blocking; what was recorded after cursor `since` (from 0 if `boot` is not this router's)."""
        cfg = self.config()
        if boot != self.boot:
            since = 0
        since = max(0, min(since, self._seq))
        first = self._entries[0].seq if self._entries else self._seq + 1
        start = max(0, since + 1 - first)
        picked = [e for e in self._entries[start:] if e.generation >= min_generation]
        return {
            "boot": self.boot,
            "since": since,
            "next": self._seq,
            "now": time.time(),
            "generation": cfg.generation,
            "weight": cfg.weight,
            "shadow": cfg.shadow,
            "truncated": since + 1 < first and since < self._seq,
            **aggregate(picked),
        }

    async def _window(self, scope: Scope, send: Any) -> None:
        query = parse_qs(scope.get("query_string", b"").decode())
        try:
            since = int(query.get("since", ["0"])[0])
            min_generation = int(query.get("min_generation", ["0"])[0])
        except ValueError:
            await _respond(send, 400, _json_body({"detail": "since, min_generation: expected integers"}))
            return
        boot = query.get("boot", [""])[0]
        await _respond(
            send, 200, _json_body(self.window(since=since, boot=boot, min_generation=min_generation))
        )

    async def _stable_model(self, send: Any) -> None:
        """The stable's `GET /model` (features, their types, the classes) as it answered it; not recorded."""
        import httpx

        cfg = self.config()
        if cfg.stable is None:
            await _respond(send, 503, _json_body({"detail": "router: no stable upstream deployed"}))
            return
        if self._client is None:  # normally made at lifespan startup
            self._client = _new_client()
        try:
            resp = await self._client.get(f"{cfg.stable}/model", timeout=cfg.timeout_s)
        except httpx.HTTPError as exc:
            doc = {"detail": f"router: stable upstream failed: {type(exc).__name__}: {exc}", "arm": "stable"}
            await _respond(send, 502, _json_body(doc))
            return
        await _respond(send, resp.status_code, resp.content)

    async def _predict(self, scope: Scope, receive: Any, send: Any) -> None:
        body = await _read_body(receive, limit=MAX_BODY_BYTES)
        if body is None:
            await _respond(send, 413, _json_body({"detail": f"body: missing or over {MAX_BODY_BYTES} bytes"}))
            return
        cfg = self.config()
        if cfg.stable is None:
            await _respond(send, 503, _json_body({"detail": "router: no stable upstream deployed"}))
            return
        route_draw, shadow_draw = self._rng.random() * 100, self._rng.random() * 100
        canary_live = cfg.canary_live(now=time.time())  # an expired lease: its release is gone, stable only
        arm = "canary" if canary_live and route_draw < cfg.weight else "stable"
        headers = {
            name.decode(): value.decode()
            for name, value in scope["headers"]
            if name in (b"content-type", b"x-request-id")
        }
        copy: asyncio.Task[Outcome] | None = None
        if arm == "stable" and canary_live and cfg.canary is not None and shadow_draw < cfg.shadow:
            copy = asyncio.create_task(self._forward(cfg.canary, body, headers, cfg.timeout_s))
        url = cfg.stable if arm == "stable" or cfg.canary is None else cfg.canary
        out = await self._forward(url, body, headers, cfg.timeout_s)
        self._record(Entry(seq=0, generation=cfg.generation, arm=arm, shadow=False, outcome=out))
        if copy is not None:
            task = asyncio.create_task(self._record_shadow(cfg.generation, out, copy))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        arm_header = ((b"x-slipway-arm", arm.encode()),)
        if out.status == TRANSPORT:
            doc = {"detail": f"router: {arm} upstream failed: {out.detail}", "arm": arm}
            await _respond(send, 502, _json_body(doc), arm_header)
        else:
            await _respond(send, out.status, out.body, out.headers + arm_header)

    async def _forward(
        self, base_url: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> Outcome:
        import httpx

        if self._client is None:  # normally made at lifespan startup
            self._client = _new_client()
        start = time.perf_counter()
        try:
            resp = await self._client.post(
                f"{base_url}/predict", content=body, headers=headers, timeout=timeout_s
            )
        except httpx.TimeoutException:
            return Outcome(
                TRANSPORT, (time.perf_counter() - start) * 1000, detail=f"timed out after {timeout_s:g} s"
            )
        except httpx.HTTPError as exc:
            return Outcome(
                TRANSPORT, (time.perf_counter() - start) * 1000, detail=f"{type(exc).__name__}: {exc}"
            )
        latency_ms = (time.perf_counter() - start) * 1000
        kept = tuple((k.encode(), v.encode()) for k, v in resp.headers.items() if k.encode() in _PASS_HEADERS)
        rows: tuple[float | None, ...] = ()
        labels: tuple[int | None, ...] = ()
        nonfinite = invalid = entities = missing = 0
        version = None
        asked = entity_count(body) if resp.status_code in (200, 404) else 0  # 404: no entity found
        if resp.status_code == 200 or asked:
            try:
                doc = json.loads(resp.content)
            except ValueError:
                doc = None
            columns = answer_columns(doc)
            if resp.status_code == 200:
                rows, labels, nonfinite, invalid = score_columns(columns)
                if isinstance(doc, dict) and isinstance(doc.get("model_version"), str):
                    version = doc["model_version"]
            entities, missing = asked, min(columns.missing, asked)
        shed = resp.status_code == 503 and "retry-after" in resp.headers
        return Outcome(
            resp.status_code,
            latency_ms,
            rows,
            labels,
            nonfinite,
            invalid,
            version,
            resp.content,
            kept,
            shed=shed,
            entities=entities,
            missing=missing,
        )

    async def _record_shadow(self, generation: int, live: Outcome, copy: asyncio.Task[Outcome]) -> None:
        out = await copy
        pairs: list[tuple[float, float | None]] = []
        label_pairs: list[tuple[int, int]] = []
        latency_pair = None
        if live.status == 200 and out.status == 200:
            latency_pair = (live.latency_ms, out.latency_ms)  # sent at the same moment: the load cancels out
        if live.status == 200 and out.status == 200 and len(live.rows) == len(out.rows):
            # a canary row that answered NaN/invalid stays a pair (canary side None, NaN for the analysis)
            pairs = [(a, b) for a, b in zip(live.rows, out.rows, strict=True) if a is not None]
            if len(live.labels) == len(out.labels) == len(live.rows):
                label_pairs = [
                    (a, b)
                    for a, b in zip(live.labels, out.labels, strict=True)
                    if a is not None and b is not None
                ]
        self._record(
            Entry(
                seq=0,
                generation=generation,
                arm="canary",
                shadow=True,
                outcome=out,
                pairs=pairs,
                label_pairs=label_pairs,
                latency_pair=latency_pair,
            )
        )

    def _record(self, entry: Entry) -> None:
        self._seq += 1
        entry.seq = self._seq
        entry.outcome = replace(entry.outcome, body=b"", headers=())  # keep measurements, not payloads
        self._entries.append(entry)
        if len(self._entries) > MAX_ENTRIES:
            del self._entries[: MAX_ENTRIES // 4]

    async def _watch_supervisor(self) -> None:
        """Each SUPERVISOR_CHECK_S: the deployment records a supervisor but none runs (it was killed) -> start
        one (at most one per SUPERVISOR_RESTART_S), so the supervisor and the router heal each other."""
        from slipway.deploy.processes import alive
        from slipway.deploy.supervisor import start_supervisor, supervisor_running

        started = None
        last = -math.inf
        while True:
            await asyncio.sleep(SUPERVISOR_CHECK_S)
            if started is not None:
                alive(started)  # reaps our child once it exits
            try:
                doc = read_state(self.state_path)
            except DeployError:
                continue
            if doc.supervisor is None or time.monotonic() - last < SUPERVISOR_RESTART_S:
                continue
            if alive(doc.supervisor):  # recorded and running (it may not hold the lock yet)
                continue
            if await asyncio.to_thread(supervisor_running, self.state_path.parent):
                continue
            last = time.monotonic()
            started = await asyncio.to_thread(start_supervisor, self.state_path)
            log.warning("the supervisor (pid %s) was gone: started pid %s", doc.supervisor.pid, started.pid)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self._client is None:
                    self._client = _new_client()
                self.config()
                self._watchdog = asyncio.create_task(self._watch_supervisor())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._watchdog is not None:
                    self._watchdog.cancel()
                if self._tasks:
                    await asyncio.wait(self._tasks, timeout=self._config.timeout_s)
                if self._owns_client and self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _new_client() -> httpx.AsyncClient:
    import httpx

    # trust_env=False: a proxy from the environment must never sit between loopback processes
    return httpx.AsyncClient(
        trust_env=False,
        limits=httpx.Limits(
            max_connections=512, max_keepalive_connections=128, keepalive_expiry=UPSTREAM_KEEPALIVE_S
        ),
    )


def main(argv: list[str] | None = None) -> int:
    """Blocking until SIGTERM/SIGINT; 0 after a graceful shutdown, 3 if it could not start (port taken)."""
    parser = argparse.ArgumentParser(
        prog="python -m slipway.deploy.router", description="Slipway's local weighted router."
    )
    parser.add_argument("--state", type=Path, required=True, help="the deployment.json to follow")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    args = parser.parse_args(argv)

    from slipway.serving.server import serve_asgi
    from slipway.serving.settings import ServeSettings

    settings = ServeSettings(host=args.host, port=args.port, access_log=False, graceful_timeout_s=5)
    return serve_asgi(Router(args.state.resolve()), settings)


if __name__ == "__main__":
    sys.exit(main())
