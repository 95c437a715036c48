"""Hand-built windows for the canary tests: healthy arms by default, one knob per fault."""

from __future__ import annotations

import numpy as np

from slipway.canary.decision import ControllerState, Phase
from slipway.config import CanaryConfig
from slipway.deploy.base import ArmWindow, Observation


def arm(
    n: int,
    *,
    errors: int = 0,
    latency_factor: float = 1.0,
    scores: str = "healthy",
    nonfinite: int = 0,
    shed: int = 0,
    entities: int = 0,
    missing: int = 0,
    seed: int = 0,
) -> ArmWindow:
    """A window of one arm: n requests, lognormal latency (median 20 ms), bimodal scores; `shed` of the errors;
    `entities` looked up by key, `missing` of them not in the online store."""
    rng = np.random.default_rng(seed)
    answered = n - errors - nonfinite
    lat = 20.0 * latency_factor * np.exp(rng.normal(0.0, 0.25, n))
    sign = np.where(rng.random(answered) < 0.37, 1.0, -1.0)
    z = sign * 2.5 + rng.normal(0.0, 1.5, answered)
    if scores == "constant":
        s = np.full(answered, 0.5)
    elif scores == "shifted":
        s = 1.0 / (1.0 + np.exp(-(z + 2.5)))
    else:
        s = 1.0 / (1.0 + np.exp(-z))
    return ArmWindow(
        requests=n,
        errors=errors,
        shed=shed,
        latencies_ms=lat.tolist(),
        scores=s.tolist(),
        nonfinite=nonfinite,
        entities=entities,
        missing_entities=missing,
    )


def window(
    i: int,
    *,
    weight: int,
    n_c: int,
    n_s: int,
    canary: dict[str, object] | None = None,
    stable: dict[str, object] | None = None,
    pairs: list[tuple[float, float]] | None = None,
    added_ms: float = 0.0,
    stale: bool = False,
    interval: float = 10.0,
) -> Observation:
    """Window i (ends at (i + 1) * interval) with healthy arms unless told otherwise; each shadow pair's
    request took the same lognormal time on both arms (20 ms median) plus `added_ms` on the canary."""
    c = arm(n_c, seed=7 * i + 1, **(canary or {}))  # type: ignore[arg-type]
    s = arm(n_s, seed=7 * i + 3, **(stable or {}))  # type: ignore[arg-type]
    rng = np.random.default_rng(7 * i + 5)
    shared = 20.0 * np.exp(rng.normal(0.0, 0.5, len(pairs or [])))
    own = np.exp(rng.normal(0.0, 0.1, (2, shared.size)))
    latencies = list(zip((shared * own[0]).tolist(), (shared * own[1] + added_ms).tolist(), strict=True))
    return Observation(
        i * interval,
        (i + 1) * interval,
        weight,
        s,
        c,
        shadow_pairs=pairs or [],
        shadow_latencies=latencies,
        stale=stale,
    )


def pairs(n: int, *, seed: int = 0, canary: str = "same") -> list[tuple[float, float]]:
    """Paired (stable, canary) scores of the same inputs."""
    rng = np.random.default_rng(seed)
    sign = np.where(rng.random(n) < 0.37, 1.0, -1.0)
    z = sign * 2.5 + rng.normal(0.0, 1.5, n)
    s = 1.0 / (1.0 + np.exp(-z))
    if canary == "nan":
        c = np.full(n, np.nan)
    elif canary == "flip":
        c = 1.0 - s
    elif canary == "shift":
        c = 1.0 / (1.0 + np.exp(-(z + 0.85)))
    else:
        c = 1.0 / (1.0 + np.exp(-(z + rng.normal(0.0, 0.25, n))))
    return list(zip(s.tolist(), c.tolist(), strict=True))


def live(policy: CanaryConfig, *, step: int, weight: int, **kw: object) -> ControllerState:
    """A live state at `step` whose step and live traffic began at window 0."""
    return ControllerState(phase=Phase.LIVE, step=step, weight=weight, **kw)  # type: ignore[arg-type]


def small_policy(**kw: object) -> CanaryConfig:
    """The default policy with small sample minimums, so hand-built windows can reach them."""
    base: dict[str, object] = {
        "shadow_intervals": 0,
        "min_samples_per_arm": 400,
        "shift_min_samples": 100,
        "step_min_samples": 20,
        "promotion_error_margin": 0.05,  # 400 samples cannot bound the difference within 0.0075
    }
    return CanaryConfig.model_validate(base | kw)
