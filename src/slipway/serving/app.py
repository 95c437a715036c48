"""The HTTP face of the server: `POST /predict` as a bare ASGI handler, the rest as FastAPI routes.

`POST /predict`, `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /model`, `POST /lease` (a canary's
traffic lease, `SLIPWAY_SERVE_LEASE_S`). A model with a feature service also answers `{"entities": [...]}`:
the entities' online features, in the model's column order, are predicted together; an entity the online
store lacks is answered in place by `{"error": "entity not found", "status": 404, "key": {...}}` (the
request is a 200 while any entity was found, else a 404). Bad input is always
a 4xx whose `detail` starts with the field at fault; a 500 means a bug in the server or model.
Overload is a 503 with `Retry-After` and `x-slipway-shed` (`queue-full` at once when the in-flight
and queue limits are full, `deadline` when the request waited past its deadline), never computed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from pydantic_core import to_json

from slipway import __version__
from slipway.serving.admission import TICKET_KEY, TIMED_OUT_KEY, Ticket
from slipway.serving.batcher import BatcherClosed, DeadlineExpired
from slipway.serving.faults import FAULT_HEADER
from slipway.serving.features import StoreFactory, open_feast_store
from slipway.serving.model import ModelRuntime
from slipway.serving.schemas import InputError, parse_predict_request
from slipway.serving.service import ServingService, postprocess
from slipway.serving.settings import ServeSettings

if TYPE_CHECKING:
    from slipway.features.base import MissingKey  # features.base imports pandas: never at run time here

log = logging.getLogger("slipway.serving")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
SHED_HEADER = "x-slipway-shed"
SHED_DETAIL = "overloaded: in-flight and queue limits full"
CLIENT_GONE = 499  # recorded status of a request whose client left before its answer (nothing is sent)
_UNSET = object()
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "oneOf": [{"required": ["instances"]}, {"required": ["entities"]}],
                "properties": {
                    "instances": {
                        "type": "array",
                        "items": {
                            "oneOf": [
                                {"type": "array", "items": {"type": "number"}},
                                {"type": "object", "additionalProperties": {"type": "number"}},
                            ]
                        },
                    },
                    "entities": {
                        "description": "A model with a feature service: entity keys whose online features it reads.",
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                        },
                    },
                },
            },
            "example": {"instances": [[17.99, 10.38, 122.8, "... 30 values in feature order"]]},
        }
    },
}


class ClientGone(Exception):
    """The client disconnected before the request body arrived."""


def request_id(given: bytes | None) -> str:
    """Non-blocking; `given` when it is 1-128 printable ASCII characters, else a new uuid4."""
    if given is not None and 0 < len(given) <= 128 and given.isascii():
        text = given.decode("ascii")
        if text.isprintable():
            return text
    # a random-module uuid4 (unique enough for tracing, no getrandom() syscall), formatted by hand:
    # version nibble 4, variant bits 10, as str(uuid.UUID(int=..., version=4)) gives, at a third of its cost
    h = f"{random.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


async def _read_body(receive: Receive, *, declared: bytes | None, limit: int) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InputError(413, "body", f"{int(declared)} bytes exceed the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise InputError(413, "body", f"more than {limit} bytes (the limit)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


Answer = tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]
NOT_FOUND = "entity not found"


def missing_row(miss: MissingKey, *, n_features: int) -> dict[str, Any]:
    """Pure; what an entity the online store lacks is answered with, in its row's place (`absent` names the
    features when only some of the `n_features` are missing)."""
    row: dict[str, Any] = {"error": NOT_FOUND, "status": 404, "key": miss.key}
    if len(miss.absent) < n_features:
        row["absent"] = list(miss.absent)
    return row


class PredictHandler:
    """`POST /predict` as a bare ASGI app: admission, limits, parsing, inference, metrics, one JSON answer."""

    def __init__(self, service: ServingService, settings: ServeSettings) -> None:
        self.service = service
        self.settings = settings
        retry = (b"retry-after", str(settings.retry_after_s).encode())
        self._queue_full = [retry, (SHED_HEADER.encode(), b"queue-full")]
        self._expired = [retry, (SHED_HEADER.encode(), b"deadline")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry; never raises for a request (an unexpected error is a JSON 500)."""
        start = time.perf_counter()
        service = self.service
        ticket = scope.get(TICKET_KEY, _UNSET)
        if ticket is _UNSET:  # not admitted by the protocol (another server, a test client): admit now
            ticket = service.admission.arrive(time.monotonic())
        content_type = length = given_id = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
            elif name == b"x-request-id":
                given_id = value
        rid = request_id(given_id)
        status = 500
        try:
            status, doc, extra = await self._answer(
                receive, ticket, rid=rid, content_type=content_type, length=length
            )
        except ClientGone:  # nothing can be sent; a body that timed out was answered 408 by the protocol
            status = 408 if scope.get(TIMED_OUT_KEY) else CLIENT_GONE
            return
        except Exception as exc:
            log.exception("unhandled error on POST /predict")
            doc, extra = {"detail": f"internal error: {type(exc).__name__}", "request_id": rid}, []
        finally:
            if ticket is not None:
                service.admission.leave(ticket)
            service.metrics.request(
                status=status, version=service.version, seconds=time.perf_counter() - start
            )
        body = to_json(doc)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid.encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(
        self,
        receive: Receive,
        ticket: Ticket | None,
        *,
        rid: str,
        content_type: bytes | None,
        length: bytes | None,
    ) -> Answer:
        service, settings = self.service, self.settings
        version = service.version
        if ticket is None:
            service.metrics.admission(outcome="shed", version=version)
            return 503, {"detail": SHED_DETAIL, "request_id": rid}, self._queue_full
        runtime = service.runtime
        if runtime is None:
            return 503, {"detail": "model not loaded", "request_id": rid}, []
        meta = runtime.bundle.meta
        fs = meta.feature_service
        try:
            media = (content_type or b"").split(b";", 1)[0].strip().lower()
            if media != b"application/json":
                shown = media.decode("latin-1") or "nothing"
                raise InputError(415, "content-type", f"expected application/json, got {shown!r}")
            body = await _read_body(receive, declared=length, limit=settings.max_body_bytes)
            x = parse_predict_request(
                body,
                features=meta.features,
                entity_keys=fs.entity_keys if fs is not None else None,
                max_instances=settings.max_batch_size,
            )
        except InputError as exc:
            return exc.status, {"detail": exc.message, "field": exc.field, "request_id": rid}, []
        if service.faults.should_fail():
            return (
                503,
                {"detail": "injected fault: error", "request_id": rid},
                [(FAULT_HEADER.encode(), b"error")],
            )
        if not await service.admission.acquire(ticket):
            return self._deadline(rid, version)
        try:
            service.metrics.admission(outcome="admitted", version=version)
            if service.faults.latency_s > 0:
                await asyncio.sleep(service.faults.latency_s)
            if isinstance(x, list):
                return await self._by_entity(x, runtime, rid, deadline=ticket.deadline)
            logits = await service.infer(x, deadline=ticket.deadline)
        except DeadlineExpired:
            return self._deadline(rid, version)
        except BatcherClosed as exc:
            return 503, {"detail": str(exc), "request_id": rid}, []
        finally:
            service.admission.release()
        return 200, self._predicted(x, logits, runtime, rid), []

    async def _by_entity(
        self, keys: list[dict[str, Any]], runtime: ModelRuntime, rid: str, *, deadline: float
    ) -> Answer:
        """One online read for the entities, the found rows predicted together, the missing answered in place."""
        service, meta = self.service, runtime.bundle.meta
        lookup = service.lookup
        if lookup is None:  # before Ready: the feature service is not open (or does not match)
            detail = f"feature store not open: {service.not_ready_reason}"
            return 503, {"detail": detail, "request_id": rid}, []
        start = time.perf_counter()
        try:
            rows = await lookup.online(keys)
        except Exception as exc:  # the store is down or refuses: the server's failure, not the client's
            log.warning("online feature lookup failed: %s: %s", type(exc).__name__, exc)
            detail = f"feature store: online lookup failed: {type(exc).__name__}: {exc}"
            return 503, {"detail": detail, "request_id": rid}, []
        service.metrics.entities(
            version=meta.model_version,
            looked_up=len(keys),
            missing=len(rows.missing),
            seconds=time.perf_counter() - start,
        )
        if not rows.missing:
            logits = await service.infer(rows.values, deadline=deadline)
            return 200, self._predicted(rows.values, logits, runtime, rid), []
        head = {"model_name": meta.model_name, "model_version": meta.model_version, "request_id": rid}
        answers: list[Any] = [None] * len(keys)
        for miss in rows.missing:
            answers[miss.index] = missing_row(miss, n_features=len(rows.features))
        found = np.flatnonzero(rows.found)
        if not found.size:
            first = ", ".join(f"{k}={v!r}" for k, v in rows.missing[0].key.items())
            detail = f"entities: none of the {len(keys)} entities is in the online store (first: {first})"
            return 404, {"detail": detail, "field": "entities", **head, "predictions": answers}, []
        x = rows.values[found]
        logits = await service.infer(x, deadline=deadline)
        for i, answer in zip(
            found.tolist(), self._predicted(x, logits, runtime, rid)["predictions"], strict=True
        ):
            answers[i] = answer
        return 200, {**head, "predictions": answers}, []

    def shed_bytes(self, rid: str) -> bytes:
        """Non-blocking; the complete HTTP/1.1 503 of a request shed before reaching the app, counted as the app would."""
        service = self.service
        service.metrics.admission(outcome="shed", version=service.version)
        service.metrics.request(status=503, version=service.version, seconds=0.0)
        body = to_json({"detail": SHED_DETAIL, "request_id": rid})
        head = [
            b"HTTP/1.1 503 Service Unavailable",
            b"content-type: application/json",
            b"content-length: " + str(len(body)).encode(),
            b"x-request-id: " + rid.encode(),
            *(name + b": " + value for name, value in self._queue_full),
        ]
        return b"\r\n".join(head) + b"\r\n\r\n" + body

    def _deadline(self, rid: str, version: str) -> Answer:
        self.service.metrics.admission(outcome="deadline", version=version)
        detail = f"overloaded: waited past the {self.settings.deadline_ms:g} ms deadline, not computed"
        return 503, {"detail": detail, "request_id": rid}, self._expired

    def _predicted(
        self, x: np.ndarray, logits: np.ndarray, runtime: ModelRuntime, rid: str
    ) -> dict[str, Any]:
        service, meta = self.service, runtime.bundle.meta
        out = postprocess(logits, meta=meta)
        service.metrics.outputs(version=meta.model_version, labels=out.indices, scores=out.scores)
        if service.predlog is not None and service.predlog.sampled():
            service.predlog.record(
                request_id=rid,
                model_name=meta.model_name,
                model_version=meta.model_version,
                inputs=x,
                outputs=out.as_dict(),
            )
        return {
            "model_name": meta.model_name,
            "model_version": meta.model_version,
            "request_id": rid,
            **out.as_dict(),
        }


class _Handled(Response):
    """A FastAPI return value that lets a bare ASGI handler answer on the route's own scope/receive/send."""

    def __init__(self, handler: PredictHandler) -> None:
        self.handler = handler
        self.background = None
        self.status_code = 200

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI; runs the handler."""
        await self.handler(scope, receive, send)


class LeaseRenewal(BaseModel):
    """`POST /lease`: how long the canary keeps its traffic from now."""

    ttl_s: float = Field(gt=0, le=3600, description="Seconds from now until the lease runs out.")


def create_app(
    settings: ServeSettings,
    *,
    runtime: ModelRuntime | None = None,
    store_factory: StoreFactory = open_feast_store,
) -> FastAPI:
    """Non-blocking; a new app with its own metrics registry; the model loads and warms in its lifespan (or use
    `runtime`); a bundle's feature service is opened by `store_factory` (Feast; tests pass a fake)."""
    service = ServingService(settings, runtime=runtime, store_factory=store_factory)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="Slipway model server", version=__version__, lifespan=lifespan)
    app.state.service = service
    handler = PredictHandler(service, settings)
    app.state.predict = handler

    @app.post("/predict", openapi_extra={"requestBody": _PREDICT_BODY})
    async def predict() -> Response:
        """Predict labels and probabilities for a list of instances (values in feature order, or objects)."""
        return _Handled(handler)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive: the process answers HTTP."""
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready: the model is loaded and warmed, and a canary's traffic lease holds (503 with the reason otherwise)."""
        lapsed = service.lease_lapsed()
        if service.ready and lapsed is None:
            return JSONResponse({"ready": True, "model_version": service.version})
        reason = service.not_ready_reason if not service.ready else lapsed
        return JSONResponse({"ready": False, "reason": reason}, status_code=503)

    @app.post("/lease")
    async def lease(renewal: LeaseRenewal) -> JSONResponse:
        """Renew a canary's traffic lease for `ttl_s` seconds (409 on a server started without one)."""
        left = service.renew_lease(renewal.ttl_s)
        if left is None:
            return JSONResponse(
                {"detail": "this server takes no traffic lease (SLIPWAY_SERVE_LEASE_S is unset)"},
                status_code=409,
            )
        return JSONResponse({"lease_left_s": left})

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text exposition of this server's metrics (every worker's, summed)."""
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/model")
    async def model() -> JSONResponse:
        """The served bundle's metadata: name, version, feature order, classes, ONNX sha256."""
        if service.runtime is None:
            return JSONResponse({"detail": "model not loaded"}, status_code=503)
        return JSONResponse(service.runtime.bundle.meta.document())

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    return app


class FastPredictFront:
    """ASGI front: `POST /predict` goes straight to its handler, skipping routing and middleware.

    Same handler, validation, admission, metrics and errors as the app's route; everything else
    (health, metrics, docs, lifespan) goes to the FastAPI app. `admission` is what the HTTP
    protocol (slipway.serving.protocol) admits requests against at header time.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._predict: PredictHandler = app.state.predict
        self.service: ServingService = app.state.service
        self.admission = self.service.admission
        self.metrics = self.service.metrics

    def shed_response(self, given_id: bytes | None) -> bytes:
        """Non-blocking; counts one /predict request shed at header time; the bytes of its 503 (what the handler answers)."""
        return self._predict.shed_bytes(request_id(given_id))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry; never raises for a request."""
        if scope["type"] == "http" and scope["path"] == "/predict" and scope["method"] == "POST":
            await self._predict(scope, receive, send)
        else:
            await self.app(scope, receive, send)
