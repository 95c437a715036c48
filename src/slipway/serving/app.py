"""The HTTP face of the server: FastAPI routes over `ServingService`.

`POST /predict`, `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /model`. Bad input is always
a 4xx whose `detail` starts with the field at fault; a 500 means a bug in the server or model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from slipway import __version__
from slipway.serving.batcher import BatcherClosed
from slipway.serving.faults import FAULT_HEADER
from slipway.serving.model import ModelRuntime
from slipway.serving.schemas import InputError, parse_predict_body
from slipway.serving.service import ServingService, postprocess
from slipway.serving.settings import ServeSettings

log = logging.getLogger("slipway.serving")

REQUEST_ID_HEADER = "x-request-id"
_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["instances"],
                "properties": {
                    "instances": {
                        "type": "array",
                        "items": {
                            "oneOf": [
                                {"type": "array", "items": {"type": "number"}},
                                {"type": "object", "additionalProperties": {"type": "number"}},
                            ]
                        },
                    }
                },
            },
            "example": {"instances": [[17.99, 10.38, 122.8, "... 30 values in feature order"]]},
        }
    },
}


def _request_id(request: Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    if 0 < len(given) <= 128 and given.isascii() and given.isprintable():
        return given
    # a random-module uuid4: unique enough for tracing, without a getrandom() syscall per request
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def _json(status: int, doc: dict[str, Any], headers: dict[str, str]) -> Response:
    body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _read_body(request: Request, *, limit: int) -> bytes:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise InputError(415, "content-type", f"expected application/json, got {media or 'nothing'!r}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InputError(413, "body", f"{int(declared)} bytes exceed the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InputError(413, "body", f"more than {limit} bytes (the limit)")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: ServeSettings, *, runtime: ModelRuntime | None = None) -> FastAPI:
    """Non-blocking; a new app with its own metrics registry; the model loads and warms in its lifespan (or use `runtime`)."""
    service = ServingService(settings, runtime=runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="Slipway model server", version=__version__, lifespan=lifespan)
    app.state.service = service

    async def _predict(request: Request, rid: str) -> Response:
        headers = {REQUEST_ID_HEADER: rid}
        runtime = service.runtime
        if runtime is None:
            return _json(503, {"detail": "model not loaded", "request_id": rid}, headers)
        meta = runtime.bundle.meta
        try:
            body = await _read_body(request, limit=settings.max_body_bytes)
            x = parse_predict_body(body, features=meta.features, max_instances=settings.max_batch_size)
        except InputError as exc:
            return _json(exc.status, {"detail": exc.message, "field": exc.field, "request_id": rid}, headers)
        if service.faults.should_fail():
            doc = {"detail": "injected fault: error", "request_id": rid}
            return _json(503, doc, headers | {FAULT_HEADER: "error"})
        if service.faults.latency_s > 0:
            await asyncio.sleep(service.faults.latency_s)
        try:
            logits = await service.infer(x)
        except BatcherClosed as exc:
            return _json(503, {"detail": str(exc), "request_id": rid}, headers)
        out = postprocess(logits, classes=meta.classes)
        service.metrics.outputs(version=meta.model_version, labels=out.labels, scores=out.scores)
        if service.predlog is not None and service.predlog.sampled():
            service.predlog.record(
                request_id=rid,
                model_name=meta.model_name,
                model_version=meta.model_version,
                inputs=x,
                outputs=out.as_dict(),
            )
        doc = {"model_name": meta.model_name, "model_version": meta.model_version, "request_id": rid}
        return _json(200, doc | out.as_dict(), headers)

    @app.post("/predict", openapi_extra={"requestBody": _PREDICT_BODY})
    async def predict(request: Request) -> Response:
        """Predict labels and probabilities for a list of instances (values in feature order, or objects)."""
        start = time.perf_counter()
        rid = _request_id(request)
        status = 500
        try:
            response = await _predict(request, rid)
            status = response.status_code
            return response
        finally:
            service.metrics.request(
                status=status, version=service.version, seconds=time.perf_counter() - start
            )

    app.state.predict = predict

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive: the process answers HTTP."""
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready: the model is loaded and warmed (503 with the reason otherwise)."""
        if service.ready:
            return JSONResponse({"ready": True, "model_version": service.version})
        return JSONResponse({"ready": False, "reason": service.not_ready_reason}, status_code=503)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text exposition of this app's metrics."""
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/model")
    async def model() -> JSONResponse:
        """The served bundle's metadata: name, version, feature order, classes, ONNX sha256."""
        if service.runtime is None:
            return JSONResponse({"detail": "model not loaded"}, status_code=503)
        return JSONResponse(service.runtime.bundle.meta.model_dump(mode="json"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    return app


class FastPredictFront:
    """ASGI front: `POST /predict` goes straight to the app's handler, skipping routing and middleware.

    Same handler, same validation, metrics and errors; everything else (health, metrics, docs,
    lifespan) goes to the FastAPI app. The framework's per-request cost is most of a small model's.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._predict = app.state.predict

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """ASGI entry; never raises for a request (an unexpected error is a JSON 500)."""
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            response = await self._predict(Request(scope, receive))
        except Exception as exc:  # the same answer FastAPI's handler gives
            log.exception("unhandled error on POST /predict")
            response = JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)
        await response(scope, receive, send)
