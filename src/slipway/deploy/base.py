"""The deploy-target interface the canary controller drives, and the measurements it reads.

A target keeps a STABLE arm (the champion) and at most one CANARY arm, splits traffic between
them by a weight, and can mirror (shadow) a share of the stable's traffic to the canary. Every
mutating call is idempotent and reconciles with what is actually deployed, so a controller that
was killed mid-canary can call it again (no orphan canary keeps traffic).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Arm = Literal["stable", "canary"]


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


@dataclass
class ArmWindow:
    """One arm's measurements over one analysis window (live traffic only; shadow copies excluded)."""

    requests: int = 0
    errors: int = 0  # 5xx and transport failures, shed requests included
    shed: int = 0  # of the errors: 503s with Retry-After (refused for load: queue, deadline, connections)
    latencies_ms: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # probability of class 1 per answered row
    nonfinite: int = 0  # rows answered with NaN/Inf (or null) probabilities
    invalid: int = 0  # rows whose output broke the schema (out of [0, 1], wrong shape)


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
    stale: bool = False  # the metrics source could not give fresh data for this window
    source_error: str | None = None


class DeployTarget(ABC):
    """Where stable and canary run; backends receive their clients/settings."""

    name: str = "base"

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
