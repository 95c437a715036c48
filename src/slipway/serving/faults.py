"""Fault injection for tests and demos (errors, latency, corrupted outputs); every knob off by default."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from slipway.serving.bundle import BundleMeta
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

    def corrupt(self, raw: np.ndarray, *, meta: BundleMeta | None = None) -> np.ndarray:
        """Pure for a given knob; the raw outputs as the `fault_output` knob corrupts them (a copy when changed)."""
        return corrupt_output(raw, self.output, meta=meta)


def corrupt_output(raw: np.ndarray, kind: str, *, meta: BundleMeta | None = None) -> np.ndarray:
    """Pure; the model's raw outputs as a fault corrupts them, per task:

    * nan: every value NaN;
    * constant: classification, uniform scores (zero logits, or 1/K probabilities: the first class wins);
      regression, the reference label's mean for every row;
    * flip: classification, every class moved to the next column (a cyclic permutation: no class stays,
      binary swaps); regression, each value mirrored around the reference label's mean.
    """
    regression = meta is not None and meta.task == "regression"
    if kind == "nan":
        return np.full_like(raw, np.nan)
    if kind == "constant":
        if regression:
            return np.full_like(raw, meta.value_mean if meta and meta.value_mean is not None else 0.0)
        if meta is not None and meta.output == "probabilities":
            return np.full_like(raw, 1.0 / raw.shape[1])
        return np.zeros_like(raw)
    if kind == "flip":
        if regression:
            mean = meta.value_mean if meta and meta.value_mean is not None else 0.0
            return np.asarray(2.0 * mean - raw, dtype=raw.dtype)
        return np.ascontiguousarray(np.roll(raw, 1, axis=1))
    return raw


FAULT_ENV_PREFIX = "SLIPWAY_SERVE_FAULT_"
FAULT_KINDS: tuple[str, ...] = ("errors", "latency", "nan", "constant", "flip", "never-ready")
_FAULT_ENV: dict[str, dict[str, str]] = {
    "errors": {"SLIPWAY_SERVE_FAULT_ERROR_RATE": "0.5"},
    "latency": {"SLIPWAY_SERVE_FAULT_LATENCY_MS": "50"},
    "nan": {"SLIPWAY_SERVE_FAULT_OUTPUT": "nan"},
    "constant": {"SLIPWAY_SERVE_FAULT_OUTPUT": "constant"},
    "flip": {"SLIPWAY_SERVE_FAULT_OUTPUT": "flip"},
    "never-ready": {"SLIPWAY_SERVE_FAULT_NEVER_READY": "true"},
}


def injects_fault(env: Mapping[str, str]) -> bool:
    """Pure; whether this server env turns a fault knob (`SLIPWAY_SERVE_FAULT_*`) on."""
    return any(name.startswith(FAULT_ENV_PREFIX) for name in env)


def fault_env(kind: str | None) -> dict[str, str]:
    """Pure; the server env that injects one fault kind (`--canary-fault`); empty for None; UsageError if unknown."""
    from slipway.errors import UsageError

    if kind is None:
        return {}
    if kind not in _FAULT_ENV:
        raise UsageError(f"--canary-fault: unknown kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
    return dict(_FAULT_ENV[kind])
