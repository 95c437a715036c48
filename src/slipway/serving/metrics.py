"""Prometheus metrics of one app, in its own registry (so tests can build many apps)."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORE_BUCKETS = tuple(round(0.1 * k, 1) for k in range(1, 11))


class ServingMetrics:
    """Request counts by status, latency, prediction scores and classes, non-finite outputs; by model version."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "slipway_requests_total",
            "/predict requests by HTTP status and model version.",
            ["status", "model_version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "slipway_request_latency_seconds",
            "/predict latency from request to response, seconds.",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.score = Histogram(
            "slipway_prediction_score",
            "Predicted probability of class 1 (the positive class), per instance.",
            ["model_version"],
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "slipway_predictions_total",
            "Predicted instances by class label.",
            ["model_version", "class"],
            registry=self.registry,
        )
        self.nonfinite = Counter(
            "slipway_nonfinite_outputs_total",
            "Instances whose model output was NaN or infinite.",
            ["model_version"],
            registry=self.registry,
        )

        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (str(id(metric)), *labels)  # labels() costs a lock and a lookup: cache the children
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, *, status: int, version: str, seconds: float) -> None:
        """Non-blocking; counts one /predict request and its latency."""
        self._child(self.requests, str(status), version).inc()
        self._child(self.latency, version).observe(seconds)

    def outputs(self, *, version: str, labels: list[int | None], scores: np.ndarray) -> None:
        """Non-blocking; counts predicted classes, observes finite scores, counts non-finite rows (label None)."""
        counts: dict[int, int] = {}
        nonfinite = 0
        for label in labels:
            if label is None:
                nonfinite += 1
            else:
                counts[label] = counts.get(label, 0) + 1
        for label, n in counts.items():
            self._child(self.predictions, version, str(label)).inc(n)
        if nonfinite:
            self._child(self.nonfinite, version).inc(nonfinite)
        score = self._child(self.score, version)
        for value in scores[np.isfinite(scores)].tolist():
            score.observe(value)

    def exposition(self) -> bytes:
        """Non-blocking; the text exposition format of this registry."""
        return generate_latest(self.registry)
