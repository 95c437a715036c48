"""`decide`: a pure function from the observed windows and the controller's state to one of four outcomes.

Rules, in order (each a line of `decide`):
1. the total deadline has passed -> ROLLBACK; the canary is not Ready past its deadline -> ROLLBACK;
2. inputs that contradict the state (no window, wrong weight, errors > requests, missing entities > looked
   up) -> ERROR (rolled back);
3. the latest window is stale, empty or not newer than the previous one -> HOLD, and `stale_limit`
   such windows in a row -> ROLLBACK (missing metrics fail closed, never promote);
4. every check runs on fresh windows only: shadow checks on paired outputs, live checks on the
   current weight's windows (errors on every live window, stratified);
5. a failed hard check -> ROLLBACK at `hard_failure_threshold` consecutive windows, a failed
   statistical one at `failure_threshold` (at once when p < `decisive_alpha`); below the
   threshold -> HOLD (never raise the weight);
6. the stable itself above `max_error_rate` in the latest window (environment off, e.g. a blip on
   both arms) -> HOLD, and such windows are left out of every check's evidence;
7. otherwise PROMOTE_STEP when the evidence is enough (shadow: its windows and every shadow check
   passed; a step: `step_min_samples` and STEP_GATES passed; the last step: `min_samples_per_arm`
   per arm and EVERY check passed), else HOLD. PROMOTE_STEP from the last step is final (weight 100).
   That promotion look judges the live checks at `promotion_alpha` (looser than `alpha`): with
   thousands of samples the effect floors, not alpha, keep a healthy canary from failing there; and
   the error rate must also be shown within `promotion_error_margin` of the stable's (its upper
   confidence bound), else the canary HOLDS for more samples: no promotion on an unlucky draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np

from slipway.canary import checks as ck
from slipway.canary.checks import CheckResult, CheckStatus, Severity
from slipway.canary.output import BINARY, NO_BASELINES, Baselines, OutputSpec
from slipway.canary.policy import PROMOTED_WEIGHT, live_weights
from slipway.config import CanaryConfig
from slipway.deploy.base import ArmWindow, Observation

STEP_GATES = ("traffic_share", "nonfinite", "invalid", "collapse")  # must have PASSED to raise a weight


class Outcome(StrEnum):
    """What the controller does after a window."""

    PROMOTE_STEP = "promote_step"  # next weight, or promotion when `Decision.final`
    HOLD = "hold"  # keep the weight, observe another window
    ROLLBACK = "rollback"  # the canary failed (or ran out of time): all traffic to the stable
    ERROR = "error"  # the decision could not be made (contradictory inputs): rolled back too

    @property
    def terminal(self) -> bool:
        """Pure; True for outcomes that end the canary with a rollback."""
        return self in (Outcome.ROLLBACK, Outcome.ERROR)


class Phase(StrEnum):
    """Shadow (weight 0, mirrored copies) or live (a weight step)."""

    SHADOW = "shadow"
    LIVE = "live"


@dataclass(frozen=True)
class ControllerState:
    """Everything `decide` needs besides the windows; the next state comes back in `Decision.state`."""

    phase: Phase = Phase.SHADOW
    step: int = 0  # index into live_weights(policy) while live
    weight: int = 0  # canary weight the latest window was measured at
    shadow: int = 0  # percent mirrored to the canary
    canary_ready: bool = True
    elapsed_s: float = 0.0  # since start_canary was called
    phase_start: int = 0  # index in the history where the current shadow phase / step began
    live_start: int = 0  # index in the history where live traffic began
    failure_streak: int = 0  # consecutive windows with a failed statistical check
    hard_streak: int = 0  # consecutive windows with a failed hard check
    stale_streak: int = 0  # consecutive stale/empty windows
    canary_version: str = ""
    stable_version: str = ""
    spec: OutputSpec = BINARY  # the task and the valid score range (set by the release)
    baselines: Baselines = NO_BASELINES  # offline differences between the two models on the holdout


def initial_state(
    policy: CanaryConfig,
    *,
    canary_ready: bool,
    elapsed_s: float = 0.0,
    canary_version: str = "",
    stable_version: str = "",
    spec: OutputSpec = BINARY,
    baselines: Baselines = NO_BASELINES,
) -> ControllerState:
    """Pure; the state before the first window: shadow phase if the policy has one, else the first weight."""
    shadowing = policy.shadow_intervals > 0
    return ControllerState(
        phase=Phase.SHADOW if shadowing else Phase.LIVE,
        weight=0 if shadowing else live_weights(policy)[0],
        shadow=policy.shadow_percent if shadowing else 0,
        canary_ready=canary_ready,
        elapsed_s=elapsed_s,
        canary_version=canary_version,
        stable_version=stable_version,
        spec=spec,
        baselines=baselines,
    )


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


@dataclass(frozen=True)
class WindowSummary:
    """The latest window in numbers (for the timeline and the decision table)."""

    index: int
    start_s: float
    end_s: float
    weight: int
    stale: bool
    n_canary: int
    n_stable: int
    pairs: int
    canary_error_rate: float | None
    stable_error_rate: float | None
    canary_p99_ms: float | None
    stable_p99_ms: float | None
    canary_missing_entities: int = 0  # entities the online store lacked (feature-store models)
    stable_missing_entities: int = 0
    canary_entities: int = 0  # entities looked up by key
    stable_entities: int = 0


def _p99(arm: ArmWindow) -> float | None:
    return float(np.quantile(np.asarray(arm.latencies_ms, dtype=float), 0.99)) if arm.latencies_ms else None


def summarize(obs: Observation, *, index: int, stale: bool) -> WindowSummary:
    """Pure; one window's counts, error rates, p99 latency and missing entities (of those looked up) per arm."""
    c, s = obs.canary, obs.stable
    return WindowSummary(
        index=index,
        start_s=obs.start_s,
        end_s=obs.end_s,
        weight=obs.weight,
        stale=stale,
        n_canary=c.requests,
        n_stable=s.requests,
        pairs=len(obs.shadow_pairs),
        canary_error_rate=c.errors / c.requests if c.requests else None,
        stable_error_rate=s.errors / s.requests if s.requests else None,
        canary_p99_ms=_p99(c),
        stable_p99_ms=_p99(s),
        canary_missing_entities=c.missing_entities,
        stable_missing_entities=s.missing_entities,
        canary_entities=c.entities,
        stable_entities=s.entities,
    )


@dataclass(frozen=True)
class Decision:
    """One window's outcome, the one-line reason, every check behind it, and the state for the next window."""

    outcome: Outcome
    reason: str
    phase: Phase
    weight: int  # the weight the decision was taken at
    next_weight: int  # after the decision: the next step, 100 when final, 0 after a rollback
    final: bool  # a PROMOTE_STEP that completes the canary (the controller calls promote())
    elapsed_s: float
    checks: tuple[CheckResult, ...]
    window: WindowSummary | None
    state: ControllerState

    def check(self, name: str) -> CheckResult | None:
        """Pure; the named check's result, None if it did not run."""
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Pure; JSON-safe."""
        window = None if self.window is None else asdict(self.window)
        if window is not None:
            window = {k: _finite(v) if isinstance(v, float) else v for k, v in window.items()}
        state = asdict(self.state) | {"phase": self.state.phase.value}
        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "phase": self.phase.value,
            "weight": self.weight,
            "next_weight": self.next_weight,
            "final": self.final,
            "elapsed_s": round(self.elapsed_s, 3),
            "canary_version": self.state.canary_version,
            "stable_version": self.state.stable_version,
            "checks": [c.to_dict() for c in self.checks],
            "window": window,
            "state": state,
        }


def _is_stale(history: Sequence[Observation], i: int) -> bool:
    o = history[i]
    if o.stale or o.source_error is not None:
        return True
    if o.canary.requests + o.stable.requests == 0:
        return True
    return i > 0 and o.end_s <= history[i - 1].end_s


def _inconsistent(obs: Observation, state: ControllerState, history_len: int) -> str | None:
    if obs.weight != state.weight:
        return f"window measured at weight {obs.weight}% but the canary is at {state.weight}%"
    for arm_name, arm in (("canary", obs.canary), ("stable", obs.stable)):
        if min(arm.requests, arm.errors, arm.nonfinite, arm.invalid) < 0 or arm.errors > arm.requests:
            return f"impossible {arm_name} counts: {arm.errors} errors of {arm.requests} requests"
        if not 0 <= arm.missing_entities <= arm.entities:
            return f"impossible {arm_name} counts: {arm.missing_entities} missing of {arm.entities} entities"
    if not 0 <= state.phase_start < history_len or not 0 <= state.live_start <= history_len:
        return f"state points past the history ({state.phase_start}/{state.live_start} of {history_len})"
    return None


def _shadow_checks(
    windows: Sequence[Observation], *, state: ControllerState, policy: CanaryConfig
) -> list[CheckResult]:
    pairs = [p for o in windows for p in o.shadow_pairs]
    labels = [p for o in windows for p in o.shadow_labels]
    spec, base = state.spec, state.baselines
    if spec.task == "binary" and not labels:  # a source that pairs scores only
        labels = [(int(s >= 0.5), int(c >= 0.5)) for s, c in pairs if math.isfinite(s) and math.isfinite(c)]
    stable, canary = ck.pool_pairs(pairs, labels, spec)
    checks = [
        ck.shadow_errors(windows, shadow=state.shadow, policy=policy),
        ck.nonfinite(canary, stable, policy=policy, name="shadow_nonfinite"),
        ck.invalid(canary, stable, policy=policy, name="shadow_invalid"),
        ck.collapse(
            canary,
            stable,
            policy=policy,
            spec=spec,
            name="shadow_collapse",
            baseline_std_ratio=state.baselines.score_std_ratio,
        ),
    ]
    if spec.classification:
        checks.append(ck.shadow_agreement(labels, policy=policy, baseline=base.agreement))
    else:
        checks.append(ck.shadow_divergence(pairs, policy=policy, baseline=base.paired_spread))
    checks.append(ck.shadow_shift(pairs, policy=policy, spec=spec, baseline=base.paired_median))
    checks.append(ck.shadow_latency([p for o in windows for p in o.shadow_latencies], policy=policy))
    return checks


def _live_checks(
    step: Sequence[Observation],
    live: Sequence[Observation],
    *,
    state: ControllerState,
    policy: CanaryConfig,
    at_gate: bool = False,
) -> list[CheckResult]:
    spec, base = state.spec, state.baselines
    canary = ck.pool((o.canary for o in step), spec)
    stable = ck.pool((o.stable for o in step), spec)
    checks = [
        ck.traffic_share(step, weight=state.weight, policy=policy),
        ck.error_rate(live, policy=policy, promotion=at_gate),
        ck.missing_entities(live, policy=policy),
        ck.nonfinite(canary, stable, policy=policy),
        ck.invalid(canary, stable, policy=policy),
        ck.collapse(canary, stable, policy=policy, spec=spec, baseline_std_ratio=base.score_std_ratio),
        ck.latency(canary.latencies, stable.latencies, policy=policy),
        ck.shift(canary.scores, stable.scores, policy=policy, baseline=base.score_ks),
    ]
    if spec.classification:
        checks.append(
            ck.label_shift(canary.labels, stable.labels, policy=policy, spec=spec, baseline=base.label_tvd)
        )
    return checks


def _decisive(c: CheckResult, policy: CanaryConfig) -> bool:
    """A statistical failure so significant that it counts as hard (rolls back without waiting)."""
    return c.p_value is not None and c.p_value < policy.decisive_alpha


def _names(results: Sequence[CheckResult]) -> str:
    return ", ".join(c.name for c in results)


def _failure_line(c: CheckResult) -> str:
    parts = [c.name]
    if c.statistic is not None:
        parts.append(f"stat {c.statistic:.4g}")
    if c.p_value is not None:
        parts.append(f"p {c.p_value:.2g}")
    parts.append(f"n {c.n_canary}/{c.n_stable}")
    return " ".join(parts) + (f" ({c.detail})" if c.detail else "")


class _Builder:
    """Collects what every return path of `decide` shares."""

    def __init__(self, *, state: ControllerState, window: WindowSummary | None) -> None:
        self.state = state
        self.window = window

    def make(
        self,
        outcome: Outcome,
        reason: str,
        checks: Sequence[CheckResult],
        *,
        next_state: ControllerState | None = None,
        final: bool = False,
    ) -> Decision:
        """Pure; a Decision for the builder's state and window (next_weight 0 when terminal, 100 when final)."""
        nxt = next_state or self.state
        if outcome.terminal:
            next_weight = 0
        elif final:
            next_weight = PROMOTED_WEIGHT
        else:
            next_weight = nxt.weight
        return Decision(
            outcome=outcome,
            reason=reason,
            phase=self.state.phase,
            weight=self.state.weight,
            next_weight=next_weight,
            final=final,
            elapsed_s=self.state.elapsed_s,
            checks=tuple(checks),
            window=self.window,
            state=nxt,
        )


def _advance(
    state: ControllerState, *, history_len: int, policy: CanaryConfig
) -> tuple[ControllerState | None, bool]:
    """The state after a PROMOTE_STEP (None, True when the step was the last one)."""
    weights = live_weights(policy)
    base = replace(state, phase_start=history_len, failure_streak=0, hard_streak=0, stale_streak=0)
    if state.phase is Phase.SHADOW:
        return replace(
            base, phase=Phase.LIVE, step=0, weight=weights[0], shadow=0, live_start=history_len
        ), False
    if state.step + 1 < len(weights):
        return replace(base, step=state.step + 1, weight=weights[state.step + 1]), False
    return None, True


def _env_off(obs: Observation, policy: CanaryConfig) -> bool:
    """The stable itself is above `max_error_rate` in this window: it cannot judge the canary."""
    s = obs.stable
    return s.requests >= ck.MIN_REFERENCE_SAMPLES and s.errors > policy.max_error_rate * s.requests


def _stale_decision(out: _Builder, ready: CheckResult, latest: Observation, policy: CanaryConfig) -> Decision:
    """HOLD on a stale/empty window; ROLLBACK at `stale_limit` in a row (fail closed)."""
    streak = out.state.stale_streak + 1
    why = latest.source_error or ("stale" if latest.stale else "empty or not newer than the previous")
    over = streak >= policy.stale_limit
    metrics = CheckResult(
        "metrics",
        CheckStatus.FAILED if over else CheckStatus.INSUFFICIENT,
        Severity.HARD,
        statistic=float(streak),
        threshold=f"< {policy.stale_limit} stale windows in a row",
        detail=why,
    )
    nxt = replace(out.state, stale_streak=streak)
    if over:
        reason = f"metrics missing {streak} windows in a row ({why}): fail closed"
        return out.make(Outcome.ROLLBACK, reason, [ready, metrics], next_state=nxt)
    reason = f"metrics missing ({why}), {streak} of {policy.stale_limit} in a row"
    return out.make(Outcome.HOLD, reason, [ready, metrics], next_state=nxt)


def _precondition(
    out: _Builder, ready: CheckResult, history: Sequence[Observation], policy: CanaryConfig
) -> Decision | None:
    """Deadlines, readiness and contradictory inputs: the decisions taken before any check runs."""
    state = out.state
    if state.elapsed_s >= policy.deadline_s:
        reason = f"deadline {policy.deadline_s:g} s reached at weight {state.weight}% without promotion"
        return out.make(Outcome.ROLLBACK, reason, [ready])
    if ready.failed:
        return out.make(Outcome.ROLLBACK, f"canary {ready.detail} (readiness deadline)", [ready])
    if not history:
        if ready.status is CheckStatus.INSUFFICIENT:
            return out.make(Outcome.HOLD, "waiting for the canary to become Ready", [ready])
        return out.make(Outcome.ERROR, "no window to decide on", [ready])
    problem = _inconsistent(history[-1], state, len(history))
    return out.make(Outcome.ERROR, problem, [ready]) if problem else None


def decide(history: Sequence[Observation], *, state: ControllerState, policy: CanaryConfig) -> Decision:
    """Pure; the outcome for the latest window of `history` (every window since the canary started)."""
    n = len(history)
    stale = [_is_stale(history, i) for i in range(n)]
    out = _Builder(state=state, window=summarize(history[-1], index=n - 1, stale=stale[-1]) if n else None)
    ready = ck.readiness(
        ready=state.canary_ready,
        elapsed_s=state.elapsed_s,
        live=n > 0 and state.phase is Phase.LIVE,
        policy=policy,
    )
    early = _precondition(out, ready, history, policy)
    if early is not None:
        return early
    latest = history[-1]
    if stale[-1]:
        return _stale_decision(out, ready, latest, policy)
    health = ck.stable_health(latest, policy=policy)
    if health.status is CheckStatus.INCONCLUSIVE:  # excluded from the evidence; streaks untouched
        reason = f"holding: stable error rate {health.statistic:.1%} above {policy.max_error_rate:g} (environment off)"
        return out.make(Outcome.HOLD, reason, [ready, health], next_state=replace(state, stale_streak=0))
    usable = [not stale[i] and not _env_off(history[i], policy) for i in range(n)]
    phase = [history[i] for i in range(state.phase_start, n) if usable[i]]
    live = [history[i] for i in range(state.live_start, n) if usable[i]]
    if state.phase is Phase.SHADOW:
        results = _shadow_checks(phase, state=state, policy=policy)
    else:
        at_gate = state.step + 1 >= len(live_weights(policy)) and _enough_live(live, policy=policy)
        judged = policy.model_copy(update={"alpha": policy.promotion_alpha}) if at_gate else policy
        results = _live_checks(phase, live, state=state, policy=judged, at_gate=at_gate)
    return _judge(out, [ready, health], results, phase=phase, live=live, policy=policy)


def _judge(
    out: _Builder,
    context: list[CheckResult],
    results: list[CheckResult],
    *,
    phase: Sequence[Observation],
    live: Sequence[Observation],
    policy: CanaryConfig,
) -> Decision:
    """Rules 5 and 7: roll back on failures at their thresholds, hold below them or on short evidence, else step."""
    state, every = out.state, [*context, *results]
    hard = [c for c in results if c.failed and (c.severity is Severity.HARD or _decisive(c, policy))]
    stat = [c for c in results if c.failed and c not in hard]
    nxt = replace(
        state,
        stale_streak=0,
        hard_streak=state.hard_streak + 1 if hard else 0,
        failure_streak=state.failure_streak + 1 if stat else 0,
    )
    if hard and nxt.hard_streak >= policy.hard_failure_threshold:
        return out.make(
            Outcome.ROLLBACK, "failed: " + "; ".join(map(_failure_line, hard)), every, next_state=nxt
        )
    if stat and nxt.failure_streak >= policy.failure_threshold:
        return out.make(
            Outcome.ROLLBACK, "failed: " + "; ".join(map(_failure_line, stat)), every, next_state=nxt
        )
    if hard or stat:
        streak = max(nxt.hard_streak, nxt.failure_streak)
        reason = f"holding: {_names(hard + stat)} failed ({streak} window(s) in a row, below the threshold)"
        return out.make(Outcome.HOLD, reason, every, next_state=nxt)
    short = _short_evidence(state, results, phase=phase, live=live, policy=policy)
    if short:
        return out.make(Outcome.HOLD, f"holding: {short}", every, next_state=nxt)
    n = out.window.index + 1 if out.window else 0
    advanced, final = _advance(nxt, history_len=n, policy=policy)
    if final or advanced is None:
        return out.make(
            Outcome.PROMOTE_STEP,
            "every check passed with enough samples: promote",
            every,
            next_state=nxt,
            final=True,
        )
    reason = f"checks passed at weight {state.weight}%: raise to {advanced.weight}%"
    return out.make(Outcome.PROMOTE_STEP, reason, every, next_state=advanced)


def _short_evidence(
    state: ControllerState,
    results: Sequence[CheckResult],
    *,
    phase: Sequence[Observation],
    live: Sequence[Observation],
    policy: CanaryConfig,
) -> str:
    """Why the evidence is too short to raise the weight ("" when it is enough)."""
    pending = [c for c in results if c.status is not CheckStatus.PASSED]
    if state.phase is Phase.SHADOW:
        if len(phase) < policy.shadow_intervals:
            return f"shadow window {len(phase)} of {policy.shadow_intervals}"
        return f"shadow evidence short ({_names(pending)})" if pending else ""
    if state.step + 1 < len(live_weights(policy)):
        canary_n = sum(o.canary.requests for o in phase)
        if canary_n < policy.step_min_samples:
            return f"{canary_n} of {policy.step_min_samples} canary requests at {state.weight}%"
        gating = [c for c in pending if c.name in STEP_GATES]
        return f"not verified yet: {_names(gating)}" if gating else ""
    if not _enough_live(live, policy=policy):
        n_c = sum(o.canary.requests for o in live)
        n_s = sum(o.stable.requests for o in live)
        return f"{n_c} canary / {n_s} stable live requests of {policy.min_samples_per_arm} per arm"
    return f"not passed yet: {_names(pending)}" if pending else ""


def _enough_live(live: Sequence[Observation], *, policy: CanaryConfig) -> bool:
    """True once both arms have `min_samples_per_arm` live requests (the promotion look)."""
    n_c = sum(o.canary.requests for o in live)
    n_s = sum(o.stable.requests for o in live)
    return min(n_c, n_s) >= policy.min_samples_per_arm


def error_decision(state: ControllerState, reason: str) -> Decision:
    """Pure; an ERROR decision for a failure outside `decide` (a deploy call raised): the canary is rolled back."""
    return _Builder(state=state, window=None).make(Outcome.ERROR, reason, [])
