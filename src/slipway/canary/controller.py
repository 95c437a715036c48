"""`run_canary` drives a deploy target through shadow and weight steps, one `decide` per window; `reconcile` cleans up.

The controller owns no judgement: every window it sleeps one interval, reads one `Observation`
(any exception from the metrics source or from `target.state()` becomes a stale window, which
fails closed through `stale_limit`), calls `decide`, and does what the decision says:
`set_traffic` for a step, `promote()` for the final step, `rollback()` for ROLLBACK/ERROR. A
deploy call that raises a `SlipwayError` ends the canary as ERROR with a rollback; any other
exception (including KeyboardInterrupt) rolls back and re-raises. A SIGKILL cannot be caught:
the next run calls `reconcile(target)` first. Meanwhile the canary does not go on unattended: the
controller renews its traffic lease (`hold_canary`, `canary_lease_s`: two windows + LEASE_SLACK_S)
every window, and a target that can (the local router) sends it nothing once the lease runs out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from slipway.canary.clock import Clock
from slipway.canary.decision import ControllerState, Decision, Outcome, decide, error_decision, initial_state
from slipway.canary.output import BINARY, NO_BASELINES, Baselines, OutputSpec
from slipway.canary.policy import PROMOTED_WEIGHT, thresholds
from slipway.config import CanaryConfig
from slipway.deploy.base import DeployTarget, MetricsSource, ModelRelease, Observation
from slipway.errors import SlipwayError

Result = Literal["promoted", "rolled_back"]
SHIFT_CHECKS = ("shift", "shadow_shift")
LEASE_SLACK_S = 15.0  # a late window or a slow router confirmation must not let a live canary lapse


@dataclass(frozen=True)
class TimelinePoint:
    """One window for the plot: weight, error rate and p99 per arm, the shift statistic, the outcome."""

    elapsed_s: float
    weight: int
    outcome: str
    canary_error_rate: float | None
    stable_error_rate: float | None
    canary_p99_ms: float | None
    stable_p99_ms: float | None
    shift: float | None  # KS D on live windows, median paired difference in shadow
    stale: bool


def timeline(decisions: list[Decision]) -> list[TimelinePoint]:
    """Pure; one point per decision that had a window."""
    points = []
    for d in decisions:
        w = d.window
        if w is None:
            continue
        shift = next(
            (c.statistic for c in d.checks if c.name in SHIFT_CHECKS and c.statistic is not None), None
        )
        points.append(
            TimelinePoint(
                elapsed_s=d.elapsed_s,
                weight=d.weight,
                outcome=d.outcome.value,
                canary_error_rate=w.canary_error_rate,
                stable_error_rate=w.stable_error_rate,
                canary_p99_ms=w.canary_p99_ms,
                stable_p99_ms=w.stable_p99_ms,
                shift=shift,
                stale=w.stale,
            )
        )
    return points


@dataclass
class CanaryOutcome:
    """How a canary ended, why, and every decision on the way (serializable with `to_dict`)."""

    result: Result
    reason: str
    decisions: list[Decision]
    peak_weight: int  # the highest live weight the canary held (100 once promoted)
    intervals: float  # elapsed time in analysis intervals, from start_canary to the end
    elapsed_s: float
    canary_version: str
    stable_version: str
    policy: dict[str, Any] = field(default_factory=dict)
    timeline: list[TimelinePoint] = field(default_factory=list)
    baselines: dict[str, float] = field(
        default_factory=dict
    )  # the offline differences the analysis allowed for

    @property
    def last(self) -> Decision | None:
        """Pure; the deciding (last) decision."""
        return self.decisions[-1] if self.decisions else None

    def to_dict(self) -> dict[str, Any]:
        """Pure; JSON-safe: result, reason, numbers, policy, every decision."""
        return {
            "result": self.result,
            "reason": self.reason,
            "peak_weight": self.peak_weight,
            "intervals": round(self.intervals, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "canary_version": self.canary_version,
            "stable_version": self.stable_version,
            "policy": self.policy,
            "baselines": self.baselines,
            "decisions": [d.to_dict() for d in self.decisions],
        }


class _Run:
    """One canary's mutable bookkeeping (kept out of run_canary to keep it short)."""

    def __init__(
        self,
        *,
        target: DeployTarget,
        metrics: MetricsSource,
        policy: CanaryConfig,
        clock: Clock,
        on_decision: Callable[[Decision], None] | None,
    ) -> None:
        self.target, self.metrics, self.policy, self.clock = target, metrics, policy, clock
        self.on_decision = on_decision
        self.started = clock.now()
        self.decisions: list[Decision] = []
        self.history: list[Observation] = []
        self.peak = 0
        self.state = ControllerState()

    def elapsed(self) -> float:
        """Non-blocking; seconds since run_canary started."""
        return self.clock.now() - self.started

    def record(self, decision: Decision) -> Decision:
        """Keeps the decision and hands it to on_decision (whose exceptions propagate: rolled back)."""
        self.decisions.append(decision)
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision

    def observe(self, weight: int) -> tuple[Observation, bool]:
        """One window and the canary's readiness; any failure to read either is a stale window."""
        start = self.clock.now()
        try:
            obs = self.metrics.observe(weight=weight)
            ready = self.target.state().canary_ready
        except Exception as exc:  # fail closed: counts toward stale_limit
            end = self.clock.now()
            why = f"{type(exc).__name__}: {exc}"
            return Observation.unavailable(start_s=start, end_s=end, weight=weight, why=why), True
        return obs, ready

    def finish(self, result: Result, reason: str, state: ControllerState) -> CanaryOutcome:
        """Pure over the run so far; the outcome record."""
        elapsed = self.elapsed()
        return CanaryOutcome(
            result=result,
            reason=reason,
            decisions=self.decisions,
            peak_weight=PROMOTED_WEIGHT if result == "promoted" else self.peak,
            intervals=elapsed / self.policy.interval_s,
            elapsed_s=elapsed,
            canary_version=state.canary_version,
            stable_version=state.stable_version,
            policy=thresholds(self.policy),
            timeline=timeline(self.decisions),
            baselines=asdict(state.baselines),
        )

    def hold(self) -> None:
        """The canary's traffic lease for two more windows (+ slack): if this run dies, the target falls back."""
        self.target.hold_canary(ttl_s=canary_lease_s(self.policy))

    def loop(self, state: ControllerState) -> CanaryOutcome:
        """Windows until a terminal or final decision; applies each decision to the target."""
        self.hold()
        self.target.set_traffic(weight=state.weight, shadow=state.shadow)
        self.peak = state.weight
        self.observe(state.weight)  # primes the source (the first window starts now); failures ignored here
        while True:
            self.state = state
            self.clock.sleep(self.policy.interval_s)
            obs, ready = self.observe(state.weight)
            self.hold()
            self.history.append(obs)
            state = replace(state, elapsed_s=self.elapsed(), canary_ready=ready)
            d = self.record(decide(self.history, state=state, policy=self.policy))
            if d.outcome.terminal:
                self.target.rollback()
                return self.finish("rolled_back", d.reason, d.state)
            if d.outcome is Outcome.PROMOTE_STEP and d.final:
                self.target.promote()
                return self.finish("promoted", d.reason, d.state)
            if d.outcome is Outcome.PROMOTE_STEP:
                self.target.set_traffic(weight=d.next_weight, shadow=d.state.shadow)
                self.peak = max(self.peak, d.next_weight)
            state = d.state


def canary_lease_s(policy: CanaryConfig) -> float:
    """Pure; how long the canary's traffic lasts without the controller: two windows plus LEASE_SLACK_S."""
    return 2 * policy.interval_s + LEASE_SLACK_S


def run_canary(
    target: DeployTarget,
    metrics: MetricsSource,
    *,
    release: ModelRelease,
    policy: CanaryConfig,
    clock: Clock,
    on_decision: Callable[[Decision], None] | None = None,
    spec: OutputSpec = BINARY,
    baselines: Baselines = NO_BASELINES,
) -> CanaryOutcome:
    """Blocking (up to `deadline_s`); canary `release` against the deployed stable; ends promoted or rolled back.

    `spec`: the model's task and valid score range; `baselines`: the offline differences between the
    two models the quality gate approved (see `slipway.canary.output`).
    """
    run = _Run(target=target, metrics=metrics, policy=policy, clock=clock, on_decision=on_decision)
    deployed = target.state()
    state = run.state = initial_state(
        policy,
        canary_ready=False,
        canary_version=release.model_version,
        stable_version=deployed.stable.model_version if deployed.stable else "",
        spec=spec,
        baselines=baselines,
    )
    try:
        ready = target.start_canary(release, ready_timeout_s=policy.readiness_deadline_s)
        state = run.state = replace(state, canary_ready=ready, elapsed_s=run.elapsed())
        if not ready:  # start_canary gave up: past the readiness deadline, whenever it returned
            late = replace(state, elapsed_s=max(state.elapsed_s, policy.readiness_deadline_s))
            d = run.record(decide([], state=late, policy=policy))
            target.rollback()
            return run.finish("rolled_back", d.reason, d.state)
        return run.loop(state)
    except SlipwayError as exc:
        state = replace(run.state, elapsed_s=run.elapsed())
        d = run.record(error_decision(state, f"deploy call failed: {exc}"))
        target.rollback()
        return run.finish("rolled_back", d.reason, d.state)
    except BaseException:
        target.rollback()
        raise


def reconcile(target: DeployTarget) -> bool:
    """Blocking; idempotent; rolls back a canary left by a run that is gone (killed mid-canary); True if one was found.

    Call it before a new canary while holding the release lock (one release at a time per target):
    a canary found then has nothing driving it, and the only safe state is the stable at 100%.
    Never resumes the old canary: its evidence died with the run that gathered it.
    """
    state = target.state()
    if state.canary is None and state.weight == 0 and state.shadow == 0:
        return False
    target.rollback()
    return True
