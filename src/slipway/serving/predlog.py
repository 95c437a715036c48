"""Sampled prediction logging to a rotating JSONL file, written by a background thread.

One JSON object per line: time, request id, model name and version, inputs and outputs: what
drift monitoring and shadow comparison read later.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from logging.handlers import QueueListener, RotatingFileHandler
from pathlib import Path
from typing import Any

import numpy as np


class _JsonLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record.__dict__["payload"], separators=(",", ":"), allow_nan=False)


class PredictionLog:
    """A sampled JSONL sink; `record` only enqueues, the file is written off the event loop."""

    def __init__(
        self, path: Path, *, sample_rate: float, max_bytes: int, backups: int, seed: int | None = None
    ) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self._rng = np.random.default_rng(seed)
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._handler: RotatingFileHandler | None = None
        self._listener: QueueListener | None = None
        self._max_bytes, self._backups = max_bytes, backups

    def start(self) -> None:
        """Blocking (opens the file); idempotent; creates the folder and starts the writer thread."""
        if self._listener is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handler = RotatingFileHandler(
            self.path, maxBytes=self._max_bytes, backupCount=self._backups, encoding="utf-8", delay=True
        )
        self._handler.setFormatter(_JsonLine())
        self._listener = QueueListener(self._queue, self._handler)
        self._listener.start()

    def stop(self) -> None:
        """Blocking; idempotent; writes what is queued, then closes the file."""
        if self._listener is None:
            return
        self._listener.stop()
        if self._handler is not None:
            self._handler.close()
        self._listener = self._handler = None

    def sampled(self) -> bool:
        """Non-blocking; draws whether this request is logged."""
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
        """Non-blocking; enqueues one line (call only for sampled requests)."""
        payload = {
            "ts": round(time.time(), 6),
            "request_id": request_id,
            "model_name": model_name,
            "model_version": model_version,
            "inputs": inputs.tolist(),
            "outputs": outputs,
        }
        self._queue.put(logging.makeLogRecord({"payload": payload, "msg": "prediction"}))
