"""Fault injection for tests and demos (errors, latency, corrupted outputs); every knob off by default."""

from __future__ import annotations

import numpy as np

from slipway.serving.settings import ServeSettings

FAULT_HEADER = "x-slipway-fault"


class FaultInjector:
    """Draws and applies the faults a `ServeSettings` asks for; used from the event loop thread only."""

    def __init__(self, settings: ServeSettings) -> None:
        self.error_rate = settings.fault_error_rate
        self.latency_s = settings.fault_latency_ms / 1000.0
        self.output = settings.fault_output
        self._rng = np.random.default_rng(settings.fault_seed)

    def should_fail(self) -> bool:
        """Non-blocking; True for a request that must be answered with an injected 503."""
        return self.error_rate > 0 and bool(self._rng.random() < self.error_rate)

    def corrupt(self, logits: np.ndarray) -> np.ndarray:
        """Pure for a given knob; the logits as the `fault_output` knob corrupts them (a copy when changed)."""
        return corrupt_logits(logits, self.output)


def corrupt_logits(logits: np.ndarray, kind: str) -> np.ndarray:
    """Pure; nan: every value NaN; constant: zeros (uniform probabilities, first class); flip: columns reversed."""
    if kind == "nan":
        return np.full_like(logits, np.nan)
    if kind == "constant":
        return np.zeros_like(logits)
    if kind == "flip":
        return np.ascontiguousarray(logits[:, ::-1])
    return logits


FAULT_KINDS: tuple[str, ...] = ("errors", "latency", "nan", "constant", "flip", "never-ready")
_FAULT_ENV: dict[str, dict[str, str]] = {
    "errors": {"SLIPWAY_SERVE_FAULT_ERROR_RATE": "0.5"},
    "latency": {"SLIPWAY_SERVE_FAULT_LATENCY_MS": "50"},
    "nan": {"SLIPWAY_SERVE_FAULT_OUTPUT": "nan"},
    "constant": {"SLIPWAY_SERVE_FAULT_OUTPUT": "constant"},
    "flip": {"SLIPWAY_SERVE_FAULT_OUTPUT": "flip"},
    "never-ready": {"SLIPWAY_SERVE_FAULT_NEVER_READY": "true"},
}


def fault_env(kind: str | None) -> dict[str, str]:
    """Pure; the server env that injects one fault kind (`--canary-fault`); empty for None; UsageError if unknown."""
    from slipway.errors import UsageError

    if kind is None:
        return {}
    if kind not in _FAULT_ENV:
        raise UsageError(f"--canary-fault: unknown kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
    return dict(_FAULT_ENV[kind])
