"""Sampled prediction records, written by a background thread to a rotating JSONL file or to stdout.

One JSON object per line, `event` first so a reader picks records out of a pod's mixed stdout:

    {"event":"slipway.prediction","schema":1,"ts":...,"request_id":...,"model_name":...,
     "model_version":...,"inputs":[[...]],"outputs":{"predictions":[...]}}

A record whose line would pass `max_record_bytes` keeps neither inputs nor outputs: it says
`"truncated":true` and `"rows":N` instead (an oversized request's body is never logged). Non-finite
numbers are written as null; a record JSON cannot hold keeps only `rows` and an `error`. `record` only enqueues; serializing and writing happen on the listener
thread, and a record that fails there is reported on stderr without stopping the logging.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import sys
import time
from logging.handlers import QueueListener, RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import numpy as np

if TYPE_CHECKING:
    from slipway.serving.settings import ServeSettings

EVENT = "slipway.prediction"
SCHEMA = 1
Sink = Literal["file", "stdout"]


def encode_record(payload: dict[str, Any], *, max_record_bytes: int) -> str:
    """Pure; one compact JSON line (no newline) for a record whose `inputs` is an ndarray; the truncated
    form (no inputs, no outputs, `truncated` and `rows`) when the full line would pass `max_record_bytes`."""
    inputs = np.asarray(payload["inputs"])
    rows = int(inputs.shape[0]) if inputs.ndim else 1
    head = {k: v for k, v in payload.items() if k not in ("inputs", "outputs")}
    if inputs.size * 2 <= max_record_bytes:  # every number takes at least two characters ("0,")
        try:
            line = _dumps({**head, "inputs": _finite_lists(inputs), "outputs": payload["outputs"]})
        except (TypeError, ValueError) as exc:  # something JSON cannot hold: still one line, never a raise
            return _dumps({**head, "rows": rows, "error": f"not JSON-serializable: {exc}"})
        if len(line) <= max_record_bytes:  # ASCII only (ensure_ascii): characters are bytes
            return line
    return _dumps({**head, "truncated": True, "rows": rows})


def _finite_lists(inputs: np.ndarray) -> Any:
    if np.issubdtype(inputs.dtype, np.floating) and not np.isfinite(inputs).all():
        cells = inputs.astype(object)
        cells[~np.isfinite(inputs)] = None
        return cells.tolist()
    return inputs.tolist()


def _dumps(doc: dict[str, Any]) -> str:
    try:
        return json.dumps(doc, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a non-finite float somewhere in the outputs
        return json.dumps(_nulled(doc), separators=(",", ":"), allow_nan=False)


def _nulled(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _nulled(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nulled(v) for v in value]
    return value


class _JsonLine(logging.Formatter):
    def __init__(self, *, max_record_bytes: int) -> None:
        super().__init__()
        self.max_record_bytes = max_record_bytes

    def format(self, record: logging.LogRecord) -> str:
        return encode_record(record.__dict__["payload"], max_record_bytes=self.max_record_bytes)


class PredictionLog:
    """A sampled record sink, `file` (rotating JSONL at `path`) or `stdout` (`stream`, default sys.stdout);
    `record` only enqueues, the line is serialized and written off the event loop."""

    def __init__(
        self,
        *,
        sink: Sink,
        sample_rate: float,
        max_record_bytes: int,
        path: Path | None = None,
        max_bytes: int = 10 << 20,
        backups: int = 5,
        stream: TextIO | None = None,
        seed: int | None = None,
    ) -> None:
        if sink == "file" and path is None:
            raise ValueError("the file sink needs a path")
        self.sink, self.path, self.sample_rate = sink, path, sample_rate
        self._rng = np.random.default_rng(seed)
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._handler: logging.Handler | None = None
        self._listener: QueueListener | None = None
        self._max_bytes, self._backups, self._max_record_bytes = max_bytes, backups, max_record_bytes
        self._stream = stream

    def start(self) -> None:
        """Blocking (creates the folder of a file sink); idempotent; starts the writer thread."""
        if self._listener is not None:
            return
        handler: logging.Handler
        if self.sink == "file":
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handler = RotatingFileHandler(
                self.path, maxBytes=self._max_bytes, backupCount=self._backups, encoding="utf-8", delay=True
            )
        else:
            # StreamHandler writes `line + "\n"` in one call, then flushes: no partial line meets other output
            handler = logging.StreamHandler(self._stream if self._stream is not None else sys.stdout)
        handler.setFormatter(_JsonLine(max_record_bytes=self._max_record_bytes))
        self._handler = handler
        self._listener = QueueListener(self._queue, handler)
        self._listener.start()

    def stop(self) -> None:
        """Blocking; idempotent; writes what is queued, then closes a file sink (stdout stays open)."""
        if self._listener is None:
            return
        self._listener.stop()
        if isinstance(self._handler, RotatingFileHandler):
            self._handler.close()
        elif self._handler is not None:
            self._handler.flush()
        self._listener = self._handler = None

    def sampled(self) -> bool:
        """Non-blocking; draws whether this request is logged (never at sample rate 0)."""
        return self.sample_rate >= 1.0 or bool(self._rng.random() < self.sample_rate)

    def record(
        self,
        *,
        request_id: str,
        model_name: str,
        model_version: str,
        inputs: np.ndarray,
        outputs: dict[str, Any],
    ) -> None:
        """Non-blocking; enqueues one record (call only for sampled requests; `inputs` must not change after)."""
        payload = {
            "event": EVENT,
            "schema": SCHEMA,
            "ts": round(time.time(), 6),
            "request_id": request_id,
            "model_name": model_name,
            "model_version": model_version,
            "inputs": inputs,
            "outputs": outputs,
        }
        self._queue.put(logging.makeLogRecord({"payload": payload, "msg": "prediction"}))


def prediction_log(settings: ServeSettings) -> PredictionLog | None:
    """Pure; the sink `settings` ask for (not started), None when prediction logging is off."""
    sink = settings.prediction_sink()
    if sink == "off":
        return None
    return PredictionLog(
        sink=sink,
        path=settings.log_predictions_path,
        sample_rate=settings.log_sample_rate,
        max_bytes=settings.log_max_bytes,
        backups=settings.log_backups,
        max_record_bytes=settings.log_max_record_bytes,
        seed=settings.fault_seed,
    )
