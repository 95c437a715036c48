"""An in-memory deploy target and metrics source for flow tests: no processes, same contract as `local`.

What is "deployed" lives in a `FakeWorld` that several `FakeTarget`s can share, so a test can drop
one target (the orchestrator "killed") and reconcile with a new one. `observe` synthesises one
window per call from a seeded RNG: `requests_per_window` live requests split by the weight, and the
server's fault knobs in each release's env (`SLIPWAY_SERVE_FAULT_ERROR_RATE`, `_LATENCY_MS`,
`_OUTPUT`) applied to the arm that carries them. `world.metrics_down = True` makes windows stale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from slipway.deploy.base import (
    ArmWindow,
    Capabilities,
    DeploymentState,
    DeployTarget,
    MetricsSource,
    ModelRelease,
    Observation,
)
from slipway.errors import DeployError
from slipway.locks.base import ReleaseLock
from slipway.locks.fake import FakeReleaseLock

FAULT = "SLIPWAY_SERVE_FAULT_"


@dataclass
class FakeWorld:
    """What the fake has "deployed", shared by every FakeTarget built on it; `calls` logs mutations."""

    stable: ModelRelease | None = None
    canary: ModelRelease | None = None
    weight: int = 0
    shadow: int = 0
    canary_ready: bool = False
    metrics_down: bool = False
    clock_s: float = 0.0
    calls: list[str] = field(default_factory=list)
    lock: FakeReleaseLock = field(default_factory=FakeReleaseLock)
    canary_lease_until: float | None = (
        None  # fake clock time the canary's traffic lasts until (None: no lease)
    )

    def lapsed(self) -> bool:
        """Non-blocking; a canary whose traffic lease expired (its release stopped renewing it)."""
        return (
            self.canary is not None
            and self.canary_lease_until is not None
            and self.clock_s >= self.canary_lease_until
        )


def _knob(release: ModelRelease, name: str, default: str) -> str:
    return release.env.get(FAULT + name, default).strip().lower()


def becomes_ready(release: ModelRelease, *, ready_timeout_s: float) -> bool:
    """Pure; whether a server with this release's fault knobs turns ready within the timeout."""
    if _knob(release, "NEVER_READY", "false") in ("1", "true", "yes", "on"):
        return False
    return float(_knob(release, "SLOW_START_S", "0")) <= ready_timeout_s


class FakeTarget(DeployTarget, MetricsSource):
    """In-memory stable/canary; every call is instantaneous and idempotent like the real targets."""

    name = "fake"

    def __init__(
        self,
        world: FakeWorld | None = None,
        *,
        requests_per_window: int = 200,
        window_s: float = 60.0,
        seed: int = 0,
        capabilities: Capabilities | None = None,
    ) -> None:
        self.world = world if world is not None else FakeWorld()
        self._capabilities = capabilities or Capabilities(
            shadow=True, weights=None, requires_digest=False, canary_lease=True
        )
        self.requests_per_window = requests_per_window
        self.window_s = window_s
        self._rng = np.random.default_rng(seed)

    def capabilities(self) -> Capabilities:
        """Pure; as constructed (default: shadow, any weight, no digest needed)."""
        return self._capabilities

    def metrics_source(self) -> MetricsSource:
        """Non-blocking; the target itself (it simulates every window)."""
        return self

    def release_lock(self) -> ReleaseLock:
        """Instant; the world's in-memory lease (shared by every FakeTarget on the world)."""
        return self.world.lock

    def state(self) -> DeploymentState:
        """Non-blocking; the shared world's deployment."""
        w = self.world
        lapsed = w.lapsed()
        return DeploymentState(
            stable=w.stable,
            canary=w.canary,
            weight=0 if lapsed else w.weight,
            shadow=0 if lapsed else w.shadow,
            canary_ready=w.canary_ready,
            canary_unattended=lapsed,
        )

    def deploy_stable(self, release: ModelRelease, *, ready_timeout_s: float) -> None:
        """Instant; idempotent; DeployError if the release would never turn ready; weight and shadow 0."""
        if not becomes_ready(release, ready_timeout_s=ready_timeout_s):
            raise DeployError(
                f"fake target: stable {release.model_name} v{release.model_version}: never ready"
            )
        self.world.calls.append(f"deploy_stable {release.model_version}")
        self.world.stable, self.world.weight, self.world.shadow = release, 0, 0

    def start_canary(self, release: ModelRelease, *, ready_timeout_s: float) -> bool:
        """Instant; idempotent; canary at weight 0 and shadow 0; False (and no canary) if it would never turn ready."""
        w = self.world
        if w.stable is None:
            raise DeployError("fake target: no stable is running; deploy a stable before a canary")
        w.calls.append(f"start_canary {release.model_version}")
        w.weight = w.shadow = 0
        if not becomes_ready(release, ready_timeout_s=ready_timeout_s):
            w.canary, w.canary_ready = None, False
            return False
        w.canary, w.canary_ready = release, True
        return True

    def set_traffic(self, *, weight: int, shadow: int) -> None:
        """Instant; idempotent; DeployError without a canary or outside 0..100."""
        if not (0 <= weight <= 100 and 0 <= shadow <= 100):
            raise DeployError(f"fake target: weight {weight} and shadow {shadow} must be within 0..100")
        if (weight or shadow) and self.world.canary is None:
            raise DeployError("fake target: no canary is running; cannot route traffic to it")
        self.world.calls.append(f"set_traffic {weight} {shadow}")
        self.world.weight, self.world.shadow = weight, shadow

    def hold_canary(self, *, ttl_s: float) -> None:
        """Instant; idempotent; the canary's traffic lasts ttl_s more on the fake clock; no canary: no-op."""
        if self.world.canary is not None:
            self.world.canary_lease_until = self.world.clock_s + ttl_s

    def promote(self) -> None:
        """Instant; idempotent (no-op without a canary); the canary becomes the stable."""
        w = self.world
        w.canary_lease_until = None
        if w.canary is None:
            w.weight = w.shadow = 0
            return
        w.calls.append(f"promote {w.canary.model_version}")
        w.stable, w.canary, w.canary_ready, w.weight, w.shadow = w.canary, None, False, 0, 0

    def rollback(self) -> None:
        """Instant; idempotent (no-op without a canary); all traffic to the stable, canary removed."""
        w = self.world
        w.canary_lease_until = None
        if w.canary is not None:
            w.calls.append(f"rollback {w.canary.model_version}")
        w.canary, w.canary_ready, w.weight, w.shadow = None, False, 0, 0

    def close(self) -> None:
        """Idempotent; nothing to release."""

    def observe(self, *, weight: int) -> Observation:
        """Instant (advances the fake clock by window_s); one synthetic window at the world's weight."""
        w = self.world
        start = w.clock_s
        w.clock_s += self.window_s
        if w.metrics_down:
            return Observation.unavailable(
                start_s=start, end_s=w.clock_s, weight=weight, why="fake metrics down"
            )
        routed = 0 if w.lapsed() else w.weight  # an expired lease: the stable only
        n_canary = int(self._rng.binomial(self.requests_per_window, routed / 100)) if w.canary else 0
        n_stable = self.requests_per_window - n_canary if w.stable else 0
        base = self._rng.beta(2.0, 2.0, size=max(n_stable, n_canary, 1))
        stable = self._arm(w.stable, base[:n_stable]) if w.stable else ArmWindow()
        canary = self._arm(w.canary, base[:n_canary]) if w.canary else ArmWindow()
        pairs: list[tuple[float, float]] = []
        latencies: list[tuple[float, float]] = []
        if w.canary is not None and w.stable is not None and w.shadow and not w.lapsed():
            mirrored = base[:n_stable][self._rng.random(n_stable) < w.shadow / 100]
            for s, c in zip(_scores(w.stable, mirrored), _scores(w.canary, mirrored), strict=True):
                if math.isfinite(s) and math.isfinite(c):
                    pairs.append((s, c))
            latencies = list(
                zip(
                    self._latencies(w.stable, len(mirrored)).tolist(),
                    self._latencies(w.canary, len(mirrored)).tolist(),
                    strict=True,
                )
            )
        obs = Observation(
            start, w.clock_s, weight, stable, canary, shadow_pairs=pairs, shadow_latencies=latencies
        )
        if weight != w.weight:
            obs.stale, obs.source_error = True, f"routes {w.weight}% to the canary, not the {weight}% asked"
        return obs

    def _arm(self, release: ModelRelease | None, base: np.ndarray) -> ArmWindow:
        n = len(base)
        if release is None or n == 0:
            return ArmWindow()
        errors = self._rng.random(n) < float(_knob(release, "ERROR_RATE", "0"))
        latency = self._latencies(release, n)
        scores = _scores(release, base[~errors])
        finite = np.isfinite(scores)
        return ArmWindow(
            requests=n,
            errors=int(errors.sum()),
            latencies_ms=latency.tolist(),
            scores=scores[finite].tolist(),
            nonfinite=int((~finite).sum()),
        )

    def _latencies(self, release: ModelRelease, n: int) -> np.ndarray:
        """n request latencies (ms) of a release: lognormal around 2 ms plus its LATENCY_MS fault."""
        return np.asarray(
            self._rng.lognormal(np.log(2.0), 0.3, size=n) + float(_knob(release, "LATENCY_MS", "0"))
        )


def _scores(release: ModelRelease, base: np.ndarray) -> np.ndarray:
    """The scores a release with this output fault returns for the healthy scores `base`."""
    kind = _knob(release, "OUTPUT", "none")
    if kind == "nan":
        return np.full_like(base, np.nan)
    if kind == "constant":
        return np.full_like(base, 0.5)
    if kind == "flip":
        return 1.0 - base
    return base
