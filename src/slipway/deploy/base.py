"""The deploy-target interface the canary controller drives, and the measurements it reads.

A target keeps a STABLE arm (the champion) and at most one CANARY arm, splits traffic between
them by a weight, and can mirror (shadow) a share of the stable's traffic to the canary. Every
mutating call is idempotent and reconciles with what is actually deployed, so a controller that
was killed mid-canary can call it again (no orphan canary keeps traffic).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from slipway.locks.base import ReleaseLock

Arm = Literal["stable", "canary"]

DIGEST_REF = re.compile(r"^[A-Za-z0-9][^\s@]*@sha256:[0-9a-f]{64}$")  # `repo[:tag]@sha256:<64 hex>`


def is_digest_ref(image_ref: str | None) -> bool:
    """Pure; True when the reference pins an image by digest (`repo[:tag]@sha256:<64 hex>`, no scheme)."""
    return bool(image_ref) and "://" not in str(image_ref) and DIGEST_REF.match(str(image_ref)) is not None


def require_digest(image_ref: str | None, *, target: str, what: str) -> str:
    """Pure; the reference if it pins a digest, else DeployError naming the target, `what` and the fix."""
    from slipway.errors import DeployError

    if not image_ref:
        raise DeployError(
            f"{target}: {what} has no image_ref: this target runs the release's image by digest, so the image "
            "stage must build and push it (install buildah or Docker, set SLIPWAY_IMAGE_REGISTRY)"
        )
    if not is_digest_ref(image_ref):
        raise DeployError(
            f"{target}: {what} image {image_ref!r} is not pinned by digest (want repo@sha256:<64 hex>)"
        )
    return image_ref


@dataclass(frozen=True)
class ModelRelease:
    """What one arm serves: a registered version, as a bundle (local) and/or an image pinned by digest."""

    model_name: str
    model_version: str
    bundle_dir: Path | None = None
    image_ref: str | None = None  # `repo@sha256:...`; Kubernetes deploys only by digest
    env: dict[str, str] = field(default_factory=dict)  # server env, e.g. SLIPWAY_SERVE_FAULT_OUTPUT=flip


@dataclass(frozen=True)
class DeploymentState:
    """What is deployed now, read back from the target (not remembered)."""

    stable: ModelRelease | None
    canary: ModelRelease | None
    weight: int  # percent of live traffic to the canary, 0..100
    shadow: int  # percent of stable traffic mirrored to the canary, 0..100
    canary_ready: bool
    # a canary whose release stopped renewing its traffic lease (`hold_canary`): the target sends it nothing
    canary_unattended: bool = False


HealthState = Literal["ready", "not ready", "degraded", "down", "running", "scaled to 0"]
"""ready: answers; not ready: runs, /readyz not 200 (no pod Ready); degraded: some pods Ready, not all;
down: its process is gone; running: alive, no health endpoint (the supervisor); scaled to 0: no pods wanted."""


@dataclass(frozen=True)
class ComponentHealth:
    """One part of what a target runs (router, stable, canary, supervisor), as it answers now."""

    name: str
    state: HealthState
    detail: str = ""  # where it runs (pid and port, or pods ready of wanted)
    restarts: int = 0  # how often it was started again after it died

    def line(self) -> str:
        """Pure; `name: state (detail, restarted N times)`."""
        extra = [self.detail] if self.detail else []
        if self.restarts:
            extra.append(f"restarted {self.restarts}x")
        return f"{self.name}: {self.state}" + (f" ({', '.join(extra)})" if extra else "")


@dataclass
class ArmWindow:
    """One arm's measurements over one analysis window (live traffic only; shadow copies excluded)."""

    requests: int = 0
    errors: int = 0  # 5xx and transport failures, shed requests included
    shed: int = 0  # of the errors: 503s with Retry-After (refused for load: queue, deadline, connections)
    latencies_ms: list[float] = field(default_factory=list)
    # one score per answered row (see `slipway.serving.answers`): binary P(positive class), multiclass the
    # top class's probability, regression the predicted value
    scores: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # classification: the predicted class index per row
    nonfinite: int = 0  # rows answered with NaN/Inf (or null) outputs
    invalid: int = 0  # rows whose output broke the schema (out of range, wrong shape)
    entities: int = 0  # a feature-store model: entities looked up by key in the online store
    missing_entities: int = 0  # of those, the ones the online store lacked (answered 404 in their row)


@dataclass
class Observation:
    """One analysis window: both arms over the same interval, plus paired shadow outputs."""

    start_s: float
    end_s: float
    weight: int
    stable: ArmWindow
    canary: ArmWindow
    # (stable score, canary score) for the same request, from shadowed traffic
    shadow_pairs: list[tuple[float, float]] = field(default_factory=list)
    # classification: (stable label, canary label) for the same shadowed requests
    shadow_labels: list[tuple[int, int]] = field(default_factory=list)
    # (stable ms, canary ms) of the same shadowed request, sent to both arms at once, both answered 200
    shadow_latencies: list[tuple[float, float]] = field(default_factory=list)
    stale: bool = False  # the metrics source could not give fresh data for this window
    source_error: str | None = None
    # (low, high) share of live traffic the routing gave the canary during the window, when the source
    # knows it better than `weight` (replica ratio at the window's two ends on Kubernetes); None: weight/100
    routed_share: tuple[float, float] | None = None

    @classmethod
    def unavailable(cls, *, start_s: float, end_s: float, weight: int, why: str) -> Observation:
        """Pure; a window with no data (stale): what a source returns when it cannot measure, saying why."""
        return cls(
            start_s=start_s,
            end_s=end_s,
            weight=weight,
            stable=ArmWindow(),
            canary=ArmWindow(),
            stale=True,
            source_error=why,
        )


@dataclass(frozen=True)
class Capabilities:
    """What a deploy target can do for a canary; `problems` says which policy fields it cannot honour."""

    shadow: bool  # can mirror stable traffic to the canary (a shadow phase)
    weights: tuple[int, ...] | None  # the live canary weights it can produce; None: any of 1..99
    requires_digest: bool  # deploys only images pinned by digest (`repo@sha256:...`)
    canary_lease: bool = (
        False  # falls back to the stable by itself when the canary's lease runs out (hold_canary)
    )
    why: str = ""  # what limits it, naming the config field (appended to each problem)

    def problems(self, *, steps: list[int], shadow_intervals: int, image_ref: str | None) -> list[str]:
        """Pure; why a canary with this policy and image cannot run on the target (empty when it can)."""
        problems = []
        if shadow_intervals and not self.shadow:
            problems.append(
                f"canary.shadow_intervals is {shadow_intervals}, but this target cannot mirror traffic, so there "
                "is no shadow phase (set canary.shadow_intervals: 0)"
            )
        off = [w for w in steps if w < 100 and self.weights is not None and w not in self.weights]
        if off and self.weights is not None:
            problems.append(
                f"canary.steps {steps}: weight(s) {off} cannot be produced; use weights from {list(self.weights)}"
            )
        if self.requires_digest and not is_digest_ref(image_ref):
            problems.append(
                "this target deploys images pinned by digest, but the release has "
                + (f"image {image_ref!r}" if image_ref else "no pushed image")
                + " (install buildah or Docker and set SLIPWAY_IMAGE_REGISTRY)"
            )
        return [f"{p}{f' ({self.why})' if self.why else ''}" for p in problems]


class DeployTarget(ABC):
    """Where stable and canary run; backends receive their clients/settings."""

    name: str = "base"

    @abstractmethod
    def capabilities(self) -> Capabilities:
        """Pure; what this target can do: shadow traffic, which weights it can produce, whether it needs digests."""

    @abstractmethod
    def metrics_source(self) -> MetricsSource:
        """Non-blocking; where this target's canary windows come from (the target itself, or a scraper of its pods)."""

    def health(self) -> list[ComponentHealth]:
        """Non-blocking (probes take ms); each part it runs and whether it answers; [] when it cannot tell."""
        return []

    def replay_url(self) -> str | None:
        """Non-blocking; a URL the release replays holdout traffic at during a canary (a local router), or None
        when real clients drive the traffic (default)."""
        return None

    @abstractmethod
    def release_lock(self) -> ReleaseLock:
        """Non-blocking; the lease that lets one release at a time drive this target (kept where its state is)."""

    @abstractmethod
    def state(self) -> DeploymentState:
        """Non-blocking read of what is deployed; the stable is None before the first release."""

    @abstractmethod
    def deploy_stable(self, release: ModelRelease, *, ready_timeout_s: float) -> None:
        """Blocking until ready or timeout (DeployError); idempotent; (re)places the stable arm, weight 0."""

    @abstractmethod
    def start_canary(self, release: ModelRelease, *, ready_timeout_s: float) -> bool:
        """Blocking until ready or timeout; idempotent; canary at weight 0; False if it never became ready."""

    @abstractmethod
    def set_traffic(self, *, weight: int, shadow: int) -> None:
        """Blocking (seconds at most); idempotent; routes `weight`% to the canary, mirrors `shadow`% of the rest."""

    @abstractmethod
    def hold_canary(self, *, ttl_s: float) -> None:
        """Blocking (one write); idempotent; the canary keeps its traffic for `ttl_s` more, after which the target
        falls back to the stable on its own unless renewed (the controller renews every window); no canary:
        no-op; a target that cannot fall back by itself: no-op (documented per target)."""

    @abstractmethod
    def promote(self) -> None:
        """Blocking; idempotent; the canary becomes the stable at 100%, canary resources removed."""

    @abstractmethod
    def rollback(self) -> None:
        """Blocking; idempotent; all traffic to the stable, canary resources removed (no-op without a canary)."""

    @abstractmethod
    def close(self) -> None:
        """Idempotent; releases client resources (does NOT tear down what is deployed)."""


class MetricsSource(ABC):
    """Where analysis windows come from (the local router, or a metrics backend)."""

    @abstractmethod
    def observe(self, *, weight: int) -> Observation:
        """Blocking for at most one window; the measurements since the previous call; stale=True if unavailable."""
