"""A seeded canary simulator: a fake deploy target + metrics source with the fault catalogue, on a fake clock.

It drives the SAME `run_canary` and `decide` as production. One window is synthesized per
`observe()`: Poisson requests at `rate_rps` over the elapsed fake time, split by the routed weight
(binomially), per-arm 5xx (binomial), lognormal latencies, and scores from a latent logit
(class 1 with probability `positive_share`, logit ~ N(+-logit_mean, logit_sd), score = sigmoid).
Shadowed requests are paired: the canary scores the SAME latent input as the stable.

Per task (`SimParams.task`): binary as above (score = P(class 1)); multiclass: a latent class with
`classes` one-hot logits of size `logit_mean` plus N(0, logit_sd) noise, softmaxed (score = the top
class's probability, label = argmax); regression: a latent value N(value_mean, value_sd) (score =
the value). Each fault acts on the latent: a shift moves it (multiclass: class 0's logit), a flip
permutes the classes cyclically (binary: swaps them; regression: mirrors values around the mean),
constant/collapsed squash it. Scores and labels are summarized exactly as the server does
(`slipway.serving.answers.row_scores`).

Classes (F-numbers from shared/notes/canary-analysis.md; a fault class's canary is otherwise a
healthy retrain, i.e. logit + N(0, retrain_noise) per request):
  aa       identical arms (the same model): must promote.
  retrain  a healthy new version (per-request logit noise, same distribution): must promote.
  F1  never Ready (start_canary times out).          F2  5xx rate U(0.5, 1.0).
  F3  NaN on every row, NaN on U(5%, 50%) of rows, or out-of-range scores on U(5%, 100%) of rows.
  F4  constant score 0.5 (all-zero logits) or collapsed scores sigmoid(0.03 z).
  F5  every latency x2 at equal load.                F6  5xx 0.5% -> 2%.
  F7  silent shift: logit + 0.3 sd of the stable's logit mixture (KS D ~ 0.13; labels ~95% agree).
  F8  bad config, same image and version, env changed: SLIPWAY_SERVE_FAULT_OUTPUT=flip (score 1 - s),
      or a scaling setting off (logit 0.5 z - 1) that also rejects 3% of requests with 5xx.
  F9  metrics backend down from window 1..10 on: every later window stale.
  F10 routing wrong: the canary gets a tenth of its weight, or the analysis reads the stable for both arms.
  F11 a blip on BOTH arms for one window in 1..10: 5xx U(20%, 60%) and latency x3: must NOT roll back.
  F12 on a noisy machine (below), the canary adds `f12_added_ms` to every request.
  noisy    a healthy retrain on a noisy machine: must promote.
A noisy machine slows both arms by a heavy-tailed per-request factor (lognormal, median `noisy_factor`,
sigma `noisy_sigma`): live requests draw it independently, a shadowed request's two copies share it
(sent at the same moment), so the paired comparison cancels the machine's noise and the live one cannot.
Its scheduler is not fair either: the canary's process meets `noisy_canary_stall_share` more stalls
(x`noisy_stall_factor`) than the stable's (seen in CI: a healthy canary's p99 1.6x the stable's, 6.7 % of its
requests above the stable's p95).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from slipway.canary.clock import FakeClock
from slipway.canary.controller import CanaryOutcome, run_canary
from slipway.canary.output import Baselines, OutputSpec, offline_baselines
from slipway.config import CanaryConfig
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
from slipway.serving.answers import row_scores

FAULT_CLASSES = ("F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "F10", "F12")
CONTROL_CLASSES = ("aa", "retrain", "F11", "noisy")  # must not roll back
CLASSES = ("aa", "retrain", *FAULT_CLASSES, "F11", "noisy")
ScoreMode = Literal["identity", "retrain", "shift", "constant", "collapsed", "flip", "misconfig"]
Routing = Literal["ok", "tenth", "reads_stable"]


@dataclass(frozen=True)
class SimParams:
    """The simulated service: traffic, baseline health, score and latency distributions, fault sizes."""

    rate_rps: float = 20.0
    base_error_rate: float = 0.005
    latency_median_ms: float = 20.0
    latency_sigma: float = 0.25  # lognormal: p99/p50 = e^(2.33 sigma) ~ 1.8
    positive_share: float = 0.37
    logit_mean: float = 2.5
    logit_sd: float = 1.5
    retrain_noise: float = 0.25  # logit sd of a healthy retrain's per-request difference
    ready_s: tuple[float, float] = (1.0, 5.0)
    f6_error_rate: float = 0.02
    f5_latency_factor: float = 2.0
    f12_added_ms: float = 50.0  # the latency fault on a noisy machine: ms added to every canary request
    noisy_factor: float = 3.0  # a noisy machine's median slow-down of every request (both arms)
    noisy_sigma: float = 0.6  # ... and its lognormal sigma (heavy tail: p99 ~ 4x the median)
    noisy_canary_stall_share: float = (
        0.03  # ... and the canary's process alone stalls on this share of requests
    )
    noisy_stall_factor: float = 3.0  # ... each stall slowing that request this much
    f7_shift_sd: float = 0.3  # in sd of the stable's logit mixture
    f7_multiclass_bump: float = 1.2  # class 0's logit (predicted-label TVD ~0.14 with 3 classes)
    task: str = "binary"  # binary | multiclass | regression
    classes: int = 3  # multiclass: how many
    value_mean: float = 150.0  # regression: the latent value's mean and sd
    value_sd: float = 60.0

    def logit_mixture_sd(self) -> float:
        """Pure; sd of the stable's latent logit (a two-component normal mixture)."""
        p = self.positive_share
        return math.sqrt(self.logit_sd**2 + 4 * p * (1 - p) * self.logit_mean**2)


@dataclass(frozen=True)
class Fault:
    """What is wrong with the canary (or the environment) in one run."""

    name: str
    variant: str = ""
    never_ready: bool = False
    error_rate: float | None = None  # canary 5xx rate (None = the baseline)
    latency_factor: float = 1.0
    added_ms: float = 0.0  # canary latency added to every request
    noisy: bool = False  # the machine slows both arms (SimParams.noisy_factor, noisy_sigma)
    score_mode: ScoreMode = "retrain"
    shift_logit: float = 0.0
    nan_share: float = 0.0
    invalid_share: float = 0.0
    stale_from: int | None = None  # window index from which the metrics backend is down
    routing: Routing = "ok"
    blip_window: int | None = None
    blip_error: float = 0.0
    blip_latency: float = 1.0
    env: dict[str, str] = field(default_factory=dict)


def make_fault(name: str, rng: np.random.Generator, params: SimParams) -> Fault:
    """Pure given rng; the fault of class `name` with its variant and size drawn from rng."""
    pick = float(rng.random())
    match name:
        case "aa":
            return Fault(name, "identical arms", score_mode="identity")
        case "retrain":
            return Fault(name, "healthy retrain")
        case "F1":
            return Fault(name, "never ready", never_ready=True)
        case "F2":
            rate = float(rng.uniform(0.5, 1.0))
            return Fault(name, f"5xx {rate:.0%}", error_rate=rate)
        case "F3":
            if pick < 0.4:
                return Fault(name, "NaN on every row", nan_share=1.0)
            if pick < 0.7:
                share = float(rng.uniform(0.05, 0.5))
                return Fault(name, f"NaN on {share:.0%}", nan_share=share)
            share = float(rng.uniform(0.05, 1.0))
            return Fault(name, f"out-of-range on {share:.0%}", invalid_share=share)
        case "F4":
            mode: ScoreMode = "constant" if pick < 0.5 else "collapsed"
            return Fault(name, mode, score_mode=mode)
        case "F5":
            return Fault(
                name, f"latency x{params.f5_latency_factor:g}", latency_factor=params.f5_latency_factor
            )
        case "F6":
            return Fault(
                name,
                f"5xx {params.base_error_rate:.1%} -> {params.f6_error_rate:.1%}",
                error_rate=params.f6_error_rate,
            )
        case "F7":
            if params.task == "multiclass":  # sized like the binary one: predicted-label TVD ~0.14
                bump = params.f7_multiclass_bump
                return Fault(name, f"class-0 logit +{bump:g}", score_mode="shift", shift_logit=bump)
            if params.task == "regression":
                return Fault(name, f"value +{params.f7_shift_sd:g} sd", score_mode="shift")
            shift = params.f7_shift_sd * params.logit_mixture_sd()
            return Fault(name, f"logit +{params.f7_shift_sd:g} sd", score_mode="shift", shift_logit=shift)
        case "F8":
            if pick < 0.5:
                return Fault(
                    name, "env flips outputs", score_mode="flip", env={"SLIPWAY_SERVE_FAULT_OUTPUT": "flip"}
                )
            return Fault(
                name,
                "env turns scaling off",
                score_mode="misconfig",
                error_rate=0.03,
                env={"SLIPWAY_FEATURE_SCALING": "off"},
            )
        case "F9":
            start = 1 if pick < 0.3 else int(rng.integers(2, 11))
            return Fault(name, f"metrics down from window {start}", stale_from=start)
        case "F10":
            routing: Routing = "tenth" if pick < 0.5 else "reads_stable"
            return Fault(name, routing, routing=routing)
        case "F12":
            added = params.f12_added_ms
            return Fault(name, f"+{added:g} ms on a noisy machine", added_ms=added, noisy=True)
        case "noisy":
            return Fault(name, "healthy retrain on a noisy machine", noisy=True)
        case "F11":
            return Fault(
                name,
                "blip on both arms",
                blip_window=int(rng.integers(1, 11)),
                blip_error=float(rng.uniform(0.2, 0.6)),
                blip_latency=3.0,
            )
    raise ValueError(f"unknown simulation class {name!r}; known: {CLASSES}")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


class FakeSimTarget(DeployTarget, MetricsSource):
    """A deploy target and metrics source in one: state in memory, windows synthesized from a seeded rng."""

    name = "sim"

    def __init__(
        self, *, clock: FakeClock, fault: Fault, params: SimParams, rng: np.random.Generator
    ) -> None:
        self.clock, self.fault, self.params, self.rng = clock, fault, params, rng
        self._stable: ModelRelease | None = None
        self._canary: ModelRelease | None = None
        self._ready = False
        self._weight = 0
        self._shadow = 0
        self._last = clock.now()
        self._index = 0
        self.calls: list[str] = []

    # -- DeployTarget ---------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Pure; a router-like target: shadow, any weight, no digest needed."""
        return Capabilities(shadow=True, weights=None, requires_digest=False)

    def metrics_source(self) -> MetricsSource:
        """Non-blocking; itself (windows are synthesized)."""
        return self

    def hold_canary(self, *, ttl_s: float) -> None:
        """Instant; no-op (a simulated controller never dies)."""

    def release_lock(self) -> ReleaseLock:
        """Instant; an in-memory lease (one simulated release per run)."""
        return FakeReleaseLock()

    def state(self) -> DeploymentState:
        """Non-blocking; what is deployed."""
        return DeploymentState(self._stable, self._canary, self._weight, self._shadow, self._ready)

    def deploy_stable(self, release: ModelRelease, *, ready_timeout_s: float) -> None:
        """Instant; the stable serves `release` at weight 0."""
        self.calls.append("deploy_stable")
        self._stable, self._weight, self._shadow = release, 0, 0

    def start_canary(self, release: ModelRelease, *, ready_timeout_s: float) -> bool:
        """Advances the fake clock by the time to Ready (the whole timeout for F1); False if never Ready."""
        self.calls.append("start_canary")
        self._canary, self._weight, self._shadow = release, 0, 0
        ready_in = float(self.rng.uniform(*self.params.ready_s))
        if self.fault.never_ready or ready_in > ready_timeout_s:
            self.clock.sleep(ready_timeout_s)
            self._ready = False
            return False
        self.clock.sleep(ready_in)
        self._ready = True
        return True

    def set_traffic(self, *, weight: int, shadow: int) -> None:
        """Instant; DeployError without a canary."""
        self.calls.append(f"set_traffic {weight}/{shadow}")
        if self._canary is None:
            raise DeployError("sim: set_traffic without a canary")
        self._weight, self._shadow = weight, shadow

    def promote(self) -> None:
        """Instant; the canary becomes the stable."""
        self.calls.append("promote")
        if self._canary is not None:
            self._stable = self._canary
        self._canary, self._ready, self._weight, self._shadow = None, False, 0, 0

    def rollback(self) -> None:
        """Instant; all traffic to the stable, canary removed."""
        self.calls.append("rollback")
        self._canary, self._ready, self._weight, self._shadow = None, False, 0, 0

    def close(self) -> None:
        """No-op."""

    # -- MetricsSource --------------------------------------------------------------------------------

    def observe(self, *, weight: int) -> Observation:
        """Instant; one synthesized window over the fake time since the previous call."""
        now = self.clock.now()
        start, self._last = self._last, now
        index, self._index = self._index, self._index + 1
        f = self.fault
        if f.stale_from is not None and index >= f.stale_from:
            return Observation.unavailable(start_s=start, end_s=now, weight=weight, why="sim: backend down")
        live = self._canary is not None and self._ready
        routed = self._weight / (10.0 if f.routing == "tenth" else 1.0) if live else 0.0
        total = int(self.rng.poisson(self.params.rate_rps * max(0.0, now - start)))
        n_c = int(self.rng.binomial(total, routed / 100.0))
        blip = f.blip_window == index
        stable, stable_latent, stable_scores, stable_labels = self._arm(total - n_c, canary=False, blip=blip)
        canary, _, _, _ = self._arm(n_c, canary=True, blip=blip)
        if f.routing == "reads_stable" and self._weight > 0:
            canary = replace(
                stable,
                latencies_ms=list(stable.latencies_ms),
                scores=list(stable.scores),
                labels=list(stable.labels),
            )
        pairs: list[tuple[float, float]] = []
        labels: list[tuple[int, int]] = []
        latencies: list[tuple[float, float]] = []
        if live and self._shadow > 0:
            pairs, labels, latencies = self._pairs(stable_latent, (stable_scores, stable_labels), blip=blip)
        return Observation(
            start,
            now,
            weight,
            stable,
            canary,
            shadow_pairs=pairs,
            shadow_labels=labels,
            shadow_latencies=latencies,
        )

    def _error_rate(self, *, canary: bool, blip: bool) -> float:
        f = self.fault
        rate = f.error_rate if canary and f.error_rate is not None else self.params.base_error_rate
        return 1.0 - (1.0 - rate) * (1.0 - f.blip_error) if blip else rate

    def _latent(self, n: int) -> np.ndarray:
        p = self.params
        if p.task == "regression":
            return np.asarray(self.rng.normal(p.value_mean, p.value_sd, n))
        if p.task == "multiclass":
            which = self.rng.integers(0, p.classes, n)
            return np.asarray(
                np.eye(p.classes)[which] * p.logit_mean + self.rng.normal(0.0, p.logit_sd, (n, p.classes))
            )
        sign = np.where(self.rng.random(n) < p.positive_share, 1.0, -1.0)
        return np.asarray(sign * p.logit_mean + self.rng.normal(0.0, p.logit_sd, n))

    def _outputs(self, latent: np.ndarray, mode: ScoreMode) -> np.ndarray:
        """What the arm answers for the latent inputs: probabilities [n, K] or values [n]."""
        p, f, n = self.params, self.fault, latent.shape[0]
        if p.task == "regression":
            mean, sd = p.value_mean, p.value_sd
            noise = self.rng.normal(0.0, p.retrain_noise * sd / p.logit_sd, n)
            match mode:
                case "identity":
                    return latent
                case "retrain":
                    return latent + noise
                case "shift":
                    return latent + p.f7_shift_sd * sd + noise
                case "constant":
                    return np.full(n, mean)
                case "collapsed":
                    return mean + 0.03 * (latent - mean)
                case "flip":
                    return 2.0 * mean - latent
                case "misconfig":
                    return 0.5 * latent + 0.2 * mean
        multi = p.task == "multiclass"
        z = latent if multi else np.stack([np.zeros(n), latent], axis=1)
        noisy = np.ones(z.shape[1]) if multi else np.array([0.0, 1.0])  # binary: the logit of class 1 only
        match mode:
            case "identity":
                pass
            case "retrain":
                z = z + self.rng.normal(0.0, p.retrain_noise, z.shape) * noisy
            case "shift":
                bump = np.zeros(z.shape[1])
                bump[0 if multi else 1] = f.shift_logit
                z = z + bump + self.rng.normal(0.0, p.retrain_noise, z.shape) * noisy
            case "constant":
                z = np.zeros_like(z)
            case "collapsed":
                z = 0.03 * z
            case "flip":
                z = np.roll(z, 1, axis=1)
            case "misconfig":
                z = 0.5 * z
                z[:, 0] = z[:, 0] + 1.0
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def _summarize(self, outputs: np.ndarray, *, corrupt: bool) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels) as the server summarizes them, after the fault's NaN / out-of-range rows."""
        p, f = self.params, self.fault
        scores, labels = row_scores(p.task, outputs)
        n = scores.size
        if corrupt and f.nan_share > 0:
            scores = np.where(self.rng.random(n) < f.nan_share, np.nan, scores)
        if corrupt and f.invalid_share > 0:
            bad = 1.0 + self.rng.exponential(1.0, n)
            if p.task == "regression":
                bad = p.value_mean + p.value_sd * (50.0 + 10.0 * self.rng.exponential(1.0, n))
            scores = np.where(self.rng.random(n) < f.invalid_share, bad, scores)
        return scores, labels

    def offline_baselines(self, *, same_model: bool, rows: int = 2000) -> Baselines:
        """What the release would measure on a holdout: the stable vs the HEALTHY challenger (faults are
        injected at serving time, not in the model), from its own seeded stream."""
        saved, self.rng = self.rng, np.random.default_rng(12345)
        try:
            latent = self._latent(rows)
            stable = row_scores(self.params.task, self._outputs(latent, "identity"))
            canary = row_scores(
                self.params.task, self._outputs(latent, "identity" if same_model else "retrain")
            )
        finally:
            self.rng = saved
        return offline_baselines(stable=stable, canary=canary, spec=self.spec())

    def spec(self) -> OutputSpec:
        """Pure; the simulated model's task and valid score range."""
        p = self.params
        if p.task == "regression":
            return OutputSpec.regression((p.value_mean - 4 * p.value_sd, p.value_mean + 4 * p.value_sd))
        return OutputSpec(task=p.task, classes=p.classes if p.task == "multiclass" else 2)

    def _arm(
        self, n: int, *, canary: bool, blip: bool
    ) -> tuple[ArmWindow, np.ndarray, np.ndarray, np.ndarray]:
        f = self.fault
        errors = int(self.rng.binomial(n, self._error_rate(canary=canary, blip=blip)))
        latencies = self._latencies(self._machine(n), canary=canary, blip=blip)
        latent = self._latent(n - errors)
        scores, labels = self._summarize(
            self._outputs(latent, f.score_mode if canary else "identity"), corrupt=canary
        )
        spec = self.spec()
        finite = np.isfinite(scores)
        valid = finite & (scores >= spec.low) & (scores <= spec.high)
        arm = ArmWindow(
            requests=n,
            errors=errors,
            latencies_ms=latencies.tolist(),
            scores=scores[valid].tolist(),
            labels=labels[valid].tolist() if spec.classification else [],
            nonfinite=int((~finite).sum()),
            invalid=int((finite & ~valid).sum()),
        )
        return arm, latent, scores, labels

    def _machine(self, n: int) -> np.ndarray:
        """Per-request slow-down by the machine: 1, or a noisy machine's heavy-tailed factor."""
        p = self.params
        if not self.fault.noisy:
            return np.ones(n)
        return np.asarray(p.noisy_factor * np.exp(self.rng.normal(0.0, p.noisy_sigma, n)))

    def _latencies(self, machine: np.ndarray, *, canary: bool, blip: bool) -> np.ndarray:
        """Per-request ms of one arm under the machine's per-request slow-down."""
        p, f = self.params, self.fault
        factor = (f.latency_factor if canary else 1.0) * (f.blip_latency if blip else 1.0)
        own = np.exp(self.rng.normal(0.0, p.latency_sigma, machine.size))
        if canary and f.noisy:
            own = np.where(
                self.rng.random(machine.size) < p.noisy_canary_stall_share, own * p.noisy_stall_factor, own
            )
        return np.asarray(p.latency_median_ms * factor * machine * own + (f.added_ms if canary else 0.0))

    def _pairs(
        self, latent: np.ndarray, stable: tuple[np.ndarray, np.ndarray], *, blip: bool
    ) -> tuple[list[tuple[float, float]], list[tuple[int, int]], list[tuple[float, float]]]:
        n = latent.shape[0]
        mirrored = self.rng.random(n) < self._shadow / 100.0
        answered = self.rng.random(n) >= self._error_rate(canary=True, blip=blip)
        keep = mirrored & answered
        scores, labels = self._summarize(self._outputs(latent[keep], self.fault.score_mode), corrupt=True)
        pairs = list(zip(stable[0][keep].tolist(), scores.tolist(), strict=True))
        label_pairs = (
            list(zip(stable[1][keep].tolist(), labels.tolist(), strict=True))
            if self.spec().classification
            else []
        )
        machine = self._machine(int(np.count_nonzero(keep)))  # both copies of a request meet the same machine
        latencies = zip(
            self._latencies(machine, canary=False, blip=blip).tolist(),
            self._latencies(machine, canary=True, blip=blip).tolist(),
            strict=True,
        )
        return pairs, label_pairs, list(latencies)


@dataclass(frozen=True)
class RunResult:
    """One simulated canary, summarized for the benchmark."""

    cls: str
    seed: int
    variant: str
    result: str
    reason: str
    failed_checks: tuple[str, ...]
    intervals: float
    windows: int
    peak_weight: int
    post_stable_share: float  # share of the next window's requests the stable answered
    restored: bool  # the stable deployed afterwards is the expected one (old on rollback, new on promote)

    def to_dict(self) -> dict[str, Any]:
        """Pure; JSON-safe."""
        return {
            "cls": self.cls,
            "seed": self.seed,
            "variant": self.variant,
            "result": self.result,
            "reason": self.reason,
            "failed_checks": list(self.failed_checks),
            "intervals": round(self.intervals, 3),
            "windows": self.windows,
            "peak_weight": self.peak_weight,
            "post_stable_share": self.post_stable_share,
            "restored": self.restored,
        }


def simulate(
    cls: str, *, seed: int, policy: CanaryConfig, params: SimParams | None = None
) -> tuple[CanaryOutcome, FakeSimTarget]:
    """Pure given the seed (no real sleeping); one canary of class `cls` through run_canary; the outcome and the target."""
    params = params or SimParams()
    rng = np.random.default_rng(np.random.SeedSequence([seed, CLASSES.index(cls)]))
    fault = make_fault(cls, rng, params)
    clock = FakeClock()
    target = FakeSimTarget(clock=clock, fault=fault, params=params, rng=rng)
    image = "registry.local/slipway-sim@sha256:" + "a" * 64
    stable = ModelRelease("sim", "1", image_ref=image)
    if cls == "F8":  # config only: same version and image, a different env
        canary = ModelRelease("sim", "1", image_ref=image, env=dict(fault.env))
    else:
        canary = ModelRelease("sim", "2", image_ref="registry.local/slipway-sim@sha256:" + "b" * 64)
    target.deploy_stable(stable, ready_timeout_s=policy.readiness_deadline_s)
    baselines = target.offline_baselines(same_model=cls in ("aa", "F8"))
    outcome = run_canary(
        target, target, release=canary, policy=policy, clock=clock, spec=target.spec(), baselines=baselines
    )
    return outcome, target


def run_one(cls: str, *, seed: int, policy: CanaryConfig, params: SimParams | None = None) -> RunResult:
    """Pure given the seed; simulate() plus one window after the end (who answers) and what is deployed."""
    outcome, target = simulate(cls, seed=seed, policy=policy, params=params)
    expected = ("2" if cls != "F8" else "1") if outcome.result == "promoted" else "1"
    deployed = target.state()
    restored = (
        deployed.canary is None and deployed.stable is not None and deployed.stable.model_version == expected
    )
    if cls == "F8" and outcome.result != "promoted":
        restored = restored and deployed.stable is not None and not deployed.stable.env
    target.clock.sleep(policy.interval_s)
    after = target.observe(weight=0)
    total = after.stable.requests + after.canary.requests
    last = outcome.last
    failed = tuple(c.name for c in last.checks if c.failed) if last else ()
    return RunResult(
        cls=cls,
        seed=seed,
        variant=target.fault.variant,
        result=outcome.result,
        reason=outcome.reason,
        failed_checks=failed,
        intervals=outcome.intervals,
        windows=sum(1 for d in outcome.decisions if d.window is not None),
        peak_weight=outcome.peak_weight,
        post_stable_share=after.stable.requests / total if total else 1.0,
        restored=restored,
    )
