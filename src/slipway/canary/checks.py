"""One pure function per canary check: measurements in, a `CheckResult` (status, statistic, p, effect, n) out.

Every comparison is canary vs stable over the SAME windows; an absolute limit only decides whether
a failure is hard (`max_error_rate`) or whether the stable itself is off (then nothing is judged).
A statistical check fails only when its test is significant at `alpha` AND its effect clears a
floor, so small samples HOLD (insufficient) instead of failing, and huge samples do not fail on
differences nobody cares about. scipy is reached through `canary.stats` (imported on first use).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from slipway.canary import stats
from slipway.canary.output import BINARY, OutputSpec, label_distribution
from slipway.config import CanaryConfig
from slipway.deploy.base import ArmWindow, Observation
from slipway.serving.answers import NO_LABEL

LATENCY_REFERENCE_QUANTILE = 0.95  # canary latencies are counted above the stable's p95
MIN_REFERENCE_SAMPLES = 20  # stable samples needed for a reference quantile / share test
MIN_EXPECTED_MINORITY = 10  # expected minority-label rows before "one label only" counts as collapse


class CheckStatus(StrEnum):
    """What a check concluded about one window's evidence."""

    PASSED = "passed"
    FAILED = "failed"
    INSUFFICIENT = "insufficient"  # not enough evidence yet: HOLD, never promote on it
    INCONCLUSIVE = "inconclusive"  # the evidence cannot judge the canary (the stable itself is off)


class Severity(StrEnum):
    """Hard checks roll back at `hard_failure_threshold`; statistical ones at `failure_threshold`."""

    HARD = "hard"
    STATISTICAL = "statistical"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict with the numbers behind it."""

    name: str
    status: CheckStatus
    severity: Severity
    statistic: float | None = None  # the check's headline number (rate, ratio, D, std ratio, share)
    p_value: float | None = None
    effect: float | None = None  # the effect size the floor applies to
    threshold: str = ""
    n_canary: int = 0
    n_stable: int = 0
    detail: str = ""

    @property
    def failed(self) -> bool:
        """Pure; True if the check failed."""
        return self.status is CheckStatus.FAILED

    def to_dict(self) -> dict[str, Any]:
        """Pure; JSON-safe (non-finite floats become None)."""
        doc = asdict(self)
        doc["status"] = self.status.value
        doc["severity"] = self.severity.value
        for key in ("statistic", "p_value", "effect"):
            value = doc[key]
            doc[key] = None if value is None or not math.isfinite(value) else round(float(value), 6)
        return doc


@dataclass(frozen=True)
class Pooled:
    """One arm's windows pooled: request/error counts and clean arrays (finite scores within the spec's range)."""

    requests: int
    errors: int
    latencies: np.ndarray
    scores: np.ndarray
    nonfinite: int
    invalid: int
    labels: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )  # predicted class per clean row

    @property
    def rows(self) -> int:
        """Pure; answered rows: clean scores plus non-finite and invalid ones."""
        return int(self.scores.size) + self.nonfinite + self.invalid


def _clean(raw: np.ndarray, spec: OutputSpec) -> tuple[np.ndarray, int, int]:
    finite = np.isfinite(raw)
    valid = finite & (raw >= spec.low) & (raw <= spec.high)
    return valid, int((~finite).sum()), int((finite & ~valid).sum())


def pool(windows: Iterable[ArmWindow], spec: OutputSpec = BINARY) -> Pooled:
    """Pure; pools an arm over windows; NaN/out-of-range scores count as non-finite/invalid (max of declared, seen)."""
    wins = list(windows)
    lat = np.fromiter(itertools.chain.from_iterable(w.latencies_ms for w in wins), dtype=float)
    raw = np.fromiter(itertools.chain.from_iterable(w.scores for w in wins), dtype=float)
    valid, seen_nan, seen_bad = _clean(raw, spec)
    labels = np.fromiter(itertools.chain.from_iterable(w.labels for w in wins), dtype=np.int64)
    if (
        spec.task == "binary" and labels.size != raw.size
    ):  # a source that reports scores only: P(positive) >= 0.5
        labels = (raw >= 0.5).astype(np.int64)
    return Pooled(
        requests=sum(w.requests for w in wins),
        errors=sum(w.errors for w in wins),
        latencies=lat,
        scores=raw[valid],
        nonfinite=max(sum(w.nonfinite for w in wins), seen_nan),
        invalid=max(sum(w.invalid for w in wins), seen_bad),
        labels=labels[valid] if labels.size == raw.size else labels[labels != NO_LABEL],
    )


def pool_pairs(
    pairs: Sequence[tuple[float, float]],
    labels: Sequence[tuple[int, int]] = (),
    spec: OutputSpec = BINARY,
) -> tuple[Pooled, Pooled]:
    """Pure; the stable and canary sides of paired shadow outputs as two pooled arms (no requests/latency)."""
    arr = np.asarray(pairs, dtype=float).reshape(-1, 2)
    lab = np.asarray(labels, dtype=np.int64).reshape(-1, 2)
    arms = []
    for col in (0, 1):
        valid, nonfinite, invalid = _clean(arr[:, col], spec)
        own = lab[:, col][valid] if lab.shape[0] == arr.shape[0] else np.zeros(0, dtype=np.int64)
        arms.append(Pooled(0, 0, np.empty(0), arr[:, col][valid], nonfinite, invalid, own))
    return arms[0], arms[1]


def _rate(count: int, total: int) -> float:
    return count / total if total else 0.0


# -- environment and readiness -------------------------------------------------------------------------


def readiness(*, ready: bool, elapsed_s: float, live: bool, policy: CanaryConfig) -> CheckResult:
    """Pure; fails (hard) if the canary is not Ready past the readiness deadline, or drops out of Ready once analysed."""
    limit = f"Ready within {policy.readiness_deadline_s:g} s and while analysed"
    if ready:
        return CheckResult("readiness", CheckStatus.PASSED, Severity.HARD, threshold=limit)
    if live or elapsed_s >= policy.readiness_deadline_s:
        why = "dropped out of Ready" if live else f"not Ready after {elapsed_s:.0f} s"
        return CheckResult("readiness", CheckStatus.FAILED, Severity.HARD, threshold=limit, detail=why)
    return CheckResult(
        "readiness", CheckStatus.INSUFFICIENT, Severity.HARD, threshold=limit, detail="not Ready yet"
    )


def stable_health(latest: Observation, *, policy: CanaryConfig) -> CheckResult:
    """Pure; INCONCLUSIVE when the stable's own failure rate in the latest window is above `max_error_rate` (both off).

    Shed requests (refused for load) do not make the environment "off": under the same load both
    arms are judged, and the canary that sheds more fails `error_rate`, where sheds count as errors.
    """
    s = latest.stable
    rate = _rate(s.errors - s.shed, s.requests)
    limit = f"stable error rate <= {policy.max_error_rate:g}"
    if s.requests < MIN_REFERENCE_SAMPLES:
        status = CheckStatus.INSUFFICIENT
    elif rate > policy.max_error_rate:
        status = CheckStatus.INCONCLUSIVE
    else:
        status = CheckStatus.PASSED
    detail = (
        "environment off: the window cannot judge the canary" if status is CheckStatus.INCONCLUSIVE else ""
    )
    return CheckResult(
        "stable_health",
        status,
        Severity.STATISTICAL,
        statistic=rate,
        threshold=limit,
        n_canary=latest.canary.requests,
        n_stable=s.requests,
        detail=detail,
    )


# -- output sanity -------------------------------------------------------------------------------------


def _excess_rate(
    name: str, c_count: int, c_rows: int, s_count: int, s_rows: int, *, limit: float, what: str
) -> CheckResult:
    rc, rs = _rate(c_count, c_rows), _rate(s_count, s_rows)
    threshold = f"canary {what} rate <= stable + {limit:g}"
    if c_rows == 0:
        return CheckResult(
            name, CheckStatus.INSUFFICIENT, Severity.HARD, threshold=threshold, n_stable=s_rows
        )
    failed = c_count > 0 and rc > rs + limit
    return CheckResult(
        name,
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        Severity.HARD,
        statistic=rc,
        effect=rc - rs,
        threshold=threshold,
        n_canary=c_rows,
        n_stable=s_rows,
        detail=f"{c_count} of {c_rows} canary rows {what} (stable {s_count} of {s_rows})",
    )


def nonfinite(
    canary: Pooled, stable: Pooled, *, policy: CanaryConfig, name: str = "nonfinite"
) -> CheckResult:
    """Pure; fails (hard) if the canary answers NaN/Inf more often than the stable plus `max_nonfinite_rate`."""
    return _excess_rate(
        name,
        canary.nonfinite,
        canary.rows,
        stable.nonfinite,
        stable.rows,
        limit=policy.max_nonfinite_rate,
        what="non-finite",
    )


def invalid(canary: Pooled, stable: Pooled, *, policy: CanaryConfig, name: str = "invalid") -> CheckResult:
    """Pure; fails (hard) if the canary breaks the output schema more often than the stable plus `max_invalid_rate`."""
    return _excess_rate(
        name,
        canary.invalid,
        canary.rows,
        stable.invalid,
        stable.rows,
        limit=policy.max_invalid_rate,
        what="schema-invalid",
    )


def _entropy(labels: np.ndarray, classes: int) -> float:
    p = label_distribution(labels, classes)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def collapse(
    canary: Pooled,
    stable: Pooled,
    *,
    policy: CanaryConfig,
    spec: OutputSpec = BINARY,
    name: str = "collapse",
    baseline_std_ratio: float = 1.0,
) -> CheckResult:
    """Pure; fails (hard) on constant/collapsed answers: score std below `collapse_std_ratio` times the stable's
    (times the offline ratio `baseline_std_ratio` when the canary's model is sharper on the holdout: a
    multiclass retrain whose top-class probability is ~1 on every row is confident, not collapsed), and for a
    classifier one label where the stable spreads, or a label entropy far below the stable's."""
    n_c, n_s = int(canary.scores.size), int(stable.scores.size)
    floor = policy.collapse_std_ratio * min(1.0, baseline_std_ratio)
    threshold = f"std ratio >= {floor:g}" + (
        f" ({policy.collapse_std_ratio:g} x offline ratio {baseline_std_ratio:g})"
        if baseline_std_ratio < 1
        else ""
    )
    if spec.classification:
        threshold += (
            f"; label entropy ratio >= {policy.collapse_std_ratio:g}; several labels when the stable has them"
        )
    if n_c < policy.collapse_min_samples or n_s < policy.collapse_min_samples:
        return CheckResult(
            name, CheckStatus.INSUFFICIENT, Severity.HARD, threshold=threshold, n_canary=n_c, n_stable=n_s
        )
    std_s = float(stable.scores.std())
    ratio = float(canary.scores.std()) / std_s if std_s > 0 else math.inf
    failed = ratio < floor
    detail = f"canary std {canary.scores.std():.4g} vs stable {std_s:.4g}"
    effect = 0.0
    if spec.classification and canary.labels.size and stable.labels.size:
        share_s = label_distribution(stable.labels, spec.classes)
        share_c = label_distribution(canary.labels, spec.classes)
        top = int(share_s.argmax())
        minority = 1.0 - float(share_s[top])
        one_label = int((share_c > 0).sum()) == 1 and minority * canary.labels.size >= MIN_EXPECTED_MINORITY
        h_s = _entropy(stable.labels, spec.classes)
        h_ratio = _entropy(canary.labels, spec.classes) / h_s if h_s > 0 else math.inf
        failed = (
            failed
            or one_label
            or (h_ratio < policy.collapse_std_ratio and minority * n_c >= MIN_EXPECTED_MINORITY)
        )
        effect = float(share_c[top] - share_s[top])
        detail += f"; label entropy ratio {h_ratio:.3g}; labels predicted {int((share_c > 0).sum())} vs {int((share_s > 0).sum())}"
    return CheckResult(
        name,
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        Severity.HARD,
        statistic=ratio,
        effect=effect,
        threshold=threshold,
        n_canary=n_c,
        n_stable=n_s,
        detail=detail,
    )


def label_shift(
    canary: np.ndarray, stable: np.ndarray, *, policy: CanaryConfig, spec: OutputSpec, baseline: float = 0.0
) -> CheckResult:
    """Pure; G-test on the predicted-label counts of the same windows: fails if p < alpha AND the total
    variation distance exceeds the offline one (`baseline`) + `shift_min_effect`."""
    n_c, n_s = int(canary.size), int(stable.size)
    limit = baseline + policy.shift_min_effect
    threshold = f"G-test p < {policy.alpha:g} and TVD > {limit:g} (offline TVD {baseline:g} + {policy.shift_min_effect:g})"
    if min(n_c, n_s) < policy.shift_min_samples:
        return CheckResult(
            "label_shift",
            CheckStatus.INSUFFICIENT,
            Severity.STATISTICAL,
            threshold=threshold,
            n_canary=n_c,
            n_stable=n_s,
        )
    counts = np.stack(
        [np.bincount(a[(a >= 0) & (a < spec.classes)], minlength=spec.classes) for a in (canary, stable)]
    ).astype(np.float64)
    counts = counts[:, counts.sum(axis=0) > 0]
    expected = counts.sum(axis=1, keepdims=True) * counts.sum(axis=0, keepdims=True) / counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        g = float(2.0 * np.nansum(np.where(counts > 0, counts * np.log(counts / expected), 0.0)))
    dof = max(counts.shape[1] - 1, 1)
    p = stats.chi2_sf(g, dof) if counts.shape[1] > 1 else 1.0
    tvd = 0.5 * float(
        np.abs(label_distribution(canary, spec.classes) - label_distribution(stable, spec.classes)).sum()
    )
    failed = p < policy.alpha and tvd > limit
    return CheckResult(
        "label_shift",
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        Severity.STATISTICAL,
        statistic=g,
        p_value=p,
        effect=tvd,
        threshold=threshold,
        n_canary=n_c,
        n_stable=n_s,
        detail=f"predicted-label TVD {tvd:.3f} (offline {baseline:.3f})",
    )


# -- errors, latency, shift, routing (live traffic) ---------------------------------------------------


def _log_comb(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return np.asarray(stats.gammaln(n + 1) - stats.gammaln(k + 1) - stats.gammaln(n - k + 1))


def stratified_upper_p(strata: Sequence[tuple[int, int, int]], observed: int) -> float:
    """Pure; exact P(sum X_t >= observed), X_t ~ Hypergeom(total_t, errors_t, canary_t) independent (exact CMH test)."""
    table = np.asarray(strata, dtype=float).reshape(-1, 3)
    total, errors, drawn = table[:, 0], table[:, 1], table[:, 2]
    lo = np.maximum(0.0, drawn - (total - errors))
    hi = np.minimum(errors, drawn)
    offset = int(lo.sum())
    varying = np.flatnonzero(hi > lo)
    if varying.size:
        sizes = (hi[varying] - lo[varying] + 1).astype(int)
        row = np.repeat(varying, sizes)
        x = lo[row] + (np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes))
        logp = (
            _log_comb(errors[row], x)
            + _log_comb(total[row] - errors[row], drawn[row] - x)
            - _log_comb(total[row], drawn[row])
        )
        pmf = np.ones(1)
        for part in np.split(np.exp(logp), np.cumsum(sizes)[:-1]):
            pmf = np.convolve(pmf, part)
    else:
        pmf = np.ones(1)
    index = observed - offset
    if index <= 0:
        return 1.0
    return float(min(1.0, max(0.0, pmf[index:].sum())))


def mantel_haenszel_difference(windows: Sequence[Observation]) -> float:
    """Pure; canary minus stable error rate, weighted per window (n_c n_s / n): a blip on both arms cancels."""
    num = den = 0.0
    for o in windows:
        c, s = o.canary, o.stable
        w = c.requests * s.requests / (c.requests + s.requests)
        num += w * (c.errors / c.requests - s.errors / s.requests)
        den += w
    return num / den if den else 0.0


def mantel_haenszel_upper(windows: Sequence[Observation], *, alpha: float) -> float:
    """Pure; one-sided (1 - alpha) upper confidence bound of the Mantel-Haenszel error-rate difference
    (normal approximation, each arm's rate continuity-corrected so that zero errors have a variance)."""
    from scipy.special import ndtri  # type: ignore[import-untyped]

    num = den = var = 0.0
    for o in windows:
        c, s = o.canary, o.stable
        w = c.requests * s.requests / (c.requests + s.requests)
        pc, ps = (c.errors + 0.5) / (c.requests + 1), (s.errors + 0.5) / (s.requests + 1)
        num += w * (c.errors / c.requests - s.errors / s.requests)
        var += w * w * (pc * (1 - pc) / c.requests + ps * (1 - ps) / s.requests)
        den += w
    if not den:
        return math.inf
    return num / den + float(ndtri(1.0 - alpha)) * math.sqrt(var) / den


def error_rate(
    windows: Sequence[Observation], *, policy: CanaryConfig, promotion: bool = False
) -> CheckResult:
    """Pure; canary errors (shed requests included) vs stable, stratified by window; hard above `max_error_rate`.

    A blip on both arms cancels; shed requests count as errors (a canary that sheds more than the stable
    under the same load fails). `promotion` (the last look before promoting): passing also needs the
    evidence that the canary is not worse by more than `promotion_error_margin` (the upper confidence
    bound at `alpha`); short of it, the check is INSUFFICIENT and the canary holds for more samples.
    """
    strata = [
        (o.canary.requests + o.stable.requests, o.canary.errors + o.stable.errors, o.canary.requests)
        for o in windows
        if o.canary.requests > 0 and o.stable.requests > 0
    ]
    n_c = sum(o.canary.requests for o in windows)
    n_s = sum(o.stable.requests for o in windows)
    e_c = sum(o.canary.errors for o in windows)
    e_s = sum(o.stable.errors for o in windows)
    threshold = f"p < {policy.alpha:g} and canary - stable (MH) > {policy.min_error_rate_delta:g}"
    if not strata:
        return CheckResult(
            "error_rate",
            CheckStatus.INSUFFICIENT,
            Severity.STATISTICAL,
            threshold=threshold,
            n_canary=n_c,
            n_stable=n_s,
        )
    both = [o for o in windows if o.canary.requests > 0 and o.stable.requests > 0]
    p = stratified_upper_p(strata, sum(o.canary.errors for o in both))
    delta = mantel_haenszel_difference(both)
    rc, rs = _rate(e_c, n_c), _rate(e_s, n_s)
    failed = p < policy.alpha and delta > policy.min_error_rate_delta
    hard = failed and rc > policy.max_error_rate >= rs
    status = CheckStatus.FAILED if failed else CheckStatus.PASSED
    upper = ""
    if promotion and not failed:
        bound = mantel_haenszel_upper(both, alpha=policy.alpha)
        upper = f"; upper bound of the difference {bound:.4f}"
        if bound > policy.promotion_error_margin:
            status = CheckStatus.INSUFFICIENT  # not yet shown within the margin: hold for more samples
            upper += f" > {policy.promotion_error_margin:g}: not yet shown within the margin"
    return CheckResult(
        "error_rate",
        status,
        Severity.HARD if hard else Severity.STATISTICAL,
        statistic=rc,
        p_value=p,
        effect=delta,
        threshold=threshold,
        n_canary=n_c,
        n_stable=n_s,
        detail=(
            f"canary {e_c}/{n_c} errors ({sum(o.canary.shed for o in windows)} shed) vs stable {e_s}/{n_s} "
            f"({sum(o.stable.shed for o in windows)} shed) (exact test stratified over {len(strata)} windows)"
            + upper
        ),
    )


def _mh_rate_difference(strata: Sequence[tuple[int, int, int, int]]) -> float:
    """Pure; canary minus stable rate over (canary count, canary total, stable count, stable total) windows,
    weighted per window (n_c n_s / n), as `mantel_haenszel_difference` weighs errors."""
    num = den = 0.0
    for c_k, c_n, s_k, s_n in strata:
        w = c_n * s_n / (c_n + s_n)
        num += w * (c_k / c_n - s_k / s_n)
        den += w
    return num / den if den else 0.0


def missing_entities(windows: Sequence[Observation], *, policy: CanaryConfig) -> CheckResult:
    """Pure; the canary's missing-entity rate (entities looked up by key that its online store lacked) vs the
    stable's over the same windows: fails (statistical) if the exact test stratified by window (as `error_rate`)
    says p < alpha AND canary - stable (MH) > `max_missing_entity_rate`.

    Which entities are asked depends on the traffic, which both arms share, so the stable's rate is the
    baseline (unknown patients are no failure; a canary reading an emptier or other online store is). Passed
    with nothing to judge when the canary looked nothing up, or no window has lookups on both arms (a stable
    without a feature service answers entities 400)."""
    both = [o for o in windows if o.canary.entities > 0 and o.stable.entities > 0]
    n_c = sum(o.canary.entities for o in windows)
    n_s = sum(o.stable.entities for o in windows)
    m_c = sum(o.canary.missing_entities for o in windows)
    m_s = sum(o.stable.missing_entities for o in windows)
    threshold = f"p < {policy.alpha:g} and canary - stable (MH) > {policy.max_missing_entity_rate:g}"
    detail = f"canary {m_c}/{n_c} entities missing vs stable {m_s}/{n_s}"
    if not both:
        why = "no entity lookups on the canary" if n_c == 0 else "no window with entity lookups on both arms"
        return CheckResult(
            "missing_entities",
            CheckStatus.PASSED,
            Severity.STATISTICAL,
            threshold=threshold,
            n_canary=n_c,
            n_stable=n_s,
            detail=f"{detail}: {why}, nothing to compare",
        )
    strata = [
        (
            o.canary.entities + o.stable.entities,
            o.canary.missing_entities + o.stable.missing_entities,
            o.canary.entities,
        )
        for o in both
    ]
    p = stratified_upper_p(strata, sum(o.canary.missing_entities for o in both))
    delta = _mh_rate_difference(
        [
            (o.canary.missing_entities, o.canary.entities, o.stable.missing_entities, o.stable.entities)
            for o in both
        ]
    )
    failed = p < policy.alpha and delta > policy.max_missing_entity_rate
    return CheckResult(
        "missing_entities",
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        Severity.STATISTICAL,
        statistic=_rate(m_c, n_c),
        p_value=p,
        effect=delta,
        threshold=threshold,
        n_canary=n_c,
        n_stable=n_s,
        detail=f"{detail} (exact test stratified over {len(both)} windows)",
    )


def latency(canary: np.ndarray, stable: np.ndarray, *, policy: CanaryConfig) -> CheckResult:
    """Pure; fails if canary requests land above the stable's p95 (its r-th largest, r = 5% of its requests)
    significantly more often than 5% (the exact exceedance test: that p95 is itself a sample, not a constant) AND in
    at least `min_latency_exceedance` of canary requests AND the tail ratio > `max_p99_ratio` AND the canary's tail
    is more than `max_added_latency_ms` above the stable's (2 ms vs 4 ms is no failure)."""
    n_c, n_s = int(canary.size), int(stable.size)
    threshold = (
        f"p < {policy.alpha:g} and share above stable p95 >= {policy.min_latency_exceedance:g} "
        f"and tail ratio > {policy.max_p99_ratio:g} "
        f"and canary tail > stable tail + {policy.max_added_latency_ms:g} ms"
    )
    if n_c < policy.min_latency_samples or n_s < max(MIN_REFERENCE_SAMPLES, policy.min_latency_samples):
        return CheckResult(
            "latency",
            CheckStatus.INSUFFICIENT,
            Severity.STATISTICAL,
            threshold=threshold,
            n_canary=n_c,
            n_stable=n_s,
        )
    q = min(0.99, 1.0 - 1.0 / n_c)
    stable_tail = float(np.quantile(stable, q))
    rank = max(1, math.ceil((1.0 - LATENCY_REFERENCE_QUANTILE) * n_s))
    reference = float(np.sort(stable)[n_s - rank])
    above = int((canary > reference).sum())
    p = stats.exceedance_sf(above, n=n_c, reference_n=n_s, rank=rank)
    canary_tail = float(np.quantile(canary, q))
    ratio = canary_tail / stable_tail if stable_tail > 0 else math.inf
    added = canary_tail - stable_tail
    failed = (
        p < policy.alpha
        and above >= policy.min_latency_exceedance * n_c
        and ratio > policy.max_p99_ratio
        and added > policy.max_added_latency_ms
    )
    return CheckResult(
        "latency",
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        Severity.STATISTICAL,
        statistic=ratio,
        p_value=p,
        effect=_rate(above, n_c),
        threshold=threshold,
        n_canary=n_c,
        n_stable=n_s,
        detail=f"p{q * 100:.4g} canary/stable {ratio:.3g} (+{added:.3g} ms); "
        f"{above}/{n_c} canary above stable p95 {reference:.4g} ms",
    )


def psi(canary: np.ndarray, stable: np.ndarray, *, bins: int = 10) -> float:
    """Pure; population stability index of the canary's scores over the stable's decile bins."""
    edges = np.unique(np.quantile(stable, np.linspace(0, 1, bins + 1)[1:-1]))
    c = np.bincount(np.searchsorted(edges, canary, side="right"), minlength=edges.size + 1) / canary.size
    s = np.bincount(np.searchsorted(edges, stable, side="right"), minlength=edges.size + 1) / stable.size
    c, s = np.clip(c, 1e-4, None), np.clip(s, 1e-4, None)
    return float(((c - s) * np.log(c / s)).sum())


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Pure; two-sided two-sample KS: D and its p-value (exact for n1*n2 <= 10000, else Stephens' asymptotic)."""
    n1, n2 = a.size, b.size
    if n1 * n2 <= 10_000:
        return stats.ks_exact(a, b)
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    d = float(
        np.abs(
            np.searchsorted(a, grid, side="right") / n1 - np.searchsorted(b, grid, side="right") / n2
        ).max()
    )
    en = math.sqrt(n1 * n2 / (n1 + n2))
    return d, min(1.0, stats.kolmogorov_sf((en + 0.12 + 0.11 / en) * d))


def shift(
    canary: np.ndarray, stable: np.ndarray, *, policy: CanaryConfig, baseline: float = 0.0
) -> CheckResult:
    """Pure; two-sample KS on the scores of the same windows: fails if p < alpha AND D > baseline + `shift_min_effect`.

    `baseline` is the offline D between the two models on the holdout (the shift the quality gate approved).
    """
    n_c, n_s = int(canary.size), int(stable.size)
    limit = baseline + policy.shift_min_effect
    threshold = (
        f"KS p < {policy.alpha:g} and D > {limit:g} (offline D {baseline:g} + {policy.shift_min_effect:g})"
    )
    if min(n_c, n_s) < policy.shift_min_samples:
        return CheckResult(
            "shift",
            CheckStatus.INSUFFICIENT,
            Severity.STATISTICAL,
            threshold=threshold,
            n_canary=n_c,
            n_stable=n_s,
        )
    d, p = ks_two_sample(canary, stable)
    failed = p < policy.alpha and d > limit
    return CheckResult(
        "shift",
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        Severity.STATISTICAL,
        statistic=d,
        p_value=p,
        effect=d,
        threshold=threshold,
        n_canary=n_c,
        n_stable=n_s,
        detail=f"KS D {d:.4f}; PSI {psi(canary, stable):.4f}",
    )


def binom_two_sided(k: int, n: int, p: float) -> float:
    """Pure; two-sided binomial test p-value by doubling the smaller tail (capped at 1)."""
    lower = stats.binom_cdf(k, n, p)
    upper = 1.0 if k == 0 else stats.binom_sf(k - 1, n, p)
    return min(1.0, 2.0 * min(lower, upper))


def routed_bounds(windows: Sequence[Observation], *, weight: int) -> tuple[float, float]:
    """Pure; the (low, high) canary share the routing gave over these windows: each window's `routed_share`
    (the weight when it has none), weighted by its requests."""
    n = sum(o.canary.requests + o.stable.requests for o in windows)
    if n == 0:
        return weight / 100.0, weight / 100.0
    low = high = 0.0
    for o in windows:
        w_low, w_high = o.routed_share if o.routed_share is not None else (weight / 100.0, weight / 100.0)
        share = (o.canary.requests + o.stable.requests) / n
        low, high = low + share * w_low, high + share * w_high
    return low, high


def traffic_share(windows: Sequence[Observation], *, weight: int, policy: CanaryConfig) -> CheckResult:
    """Pure; fails if the canary's observed share is far outside what the routing gave it (binomial test), or its
    metrics ARE the stable's; not verified while the routing gives it far less than its weight.

    What the routing gave is the weight, or the windows' `routed_share` (replica ratio) when the source
    knows it: a stable the HPA grew lowers what the canary should draw, and that is no routing fault.
    """
    n_c = sum(o.canary.requests for o in windows)
    n = n_c + sum(o.stable.requests for o in windows)
    low, high = routed_bounds(windows, weight=weight)
    threshold = f"p < {policy.alpha:g} and |share/routed share - 1| > {policy.max_share_deviation:g}"
    mirrored = [o for o in windows if o.canary.requests > 0 and o.canary == o.stable]
    if mirrored:
        return CheckResult(
            "traffic_share",
            CheckStatus.FAILED,
            Severity.HARD,
            statistic=_rate(n_c, n),
            threshold=threshold,
            n_canary=n_c,
            n_stable=n - n_c,
            detail=f"canary measurements identical to the stable's in {len(mirrored)} window(s): analysis reads the stable",
        )
    routed = f"its pods drew {low:.1%}" + (f"-{high:.1%}" if high - low >= 0.0005 else "")
    if n < MIN_REFERENCE_SAMPLES or n * high < 5 or low >= 1.0:
        return CheckResult(
            "traffic_share",
            CheckStatus.INSUFFICIENT,
            Severity.STATISTICAL,
            threshold=threshold,
            n_canary=n_c,
            n_stable=n - n_c,
        )
    share = n_c / n
    bound = low if share < low else high if share > high else None
    p = 1.0 if bound is None else binom_two_sided(n_c, n, bound)
    deviation = 0.0 if bound is None or bound == 0 else share / bound - 1.0
    failed = p < policy.alpha and abs(deviation) > policy.max_share_deviation
    detail = f"canary got {share:.2%} of {n} requests at weight {weight}% ({routed})"
    status = CheckStatus.FAILED if failed else CheckStatus.PASSED
    if not failed and high < weight / 100.0 * (1.0 - policy.max_share_deviation):
        status = CheckStatus.INSUFFICIENT  # routing right, but the split does not give the weight (yet)
        detail += ": the replica split is far below the weight, waiting for it to follow"
    return CheckResult(
        "traffic_share",
        status,
        Severity.STATISTICAL,
        statistic=share,
        p_value=p,
        effect=deviation,
        threshold=threshold,
        n_canary=n_c,
        n_stable=n - n_c,
        detail=detail,
    )


# -- shadow (paired) -----------------------------------------------------------------------------------


def shadow_errors(windows: Sequence[Observation], *, shadow: int, policy: CanaryConfig) -> CheckResult:
    """Pure; fails (hard) if significantly fewer pairs came back than the stable's errors + `max_error_rate` allow.

    Assumes the source records a pair for every mirrored request both arms answered, so the
    expected count is `shadow`% of the stable's answered requests.
    """
    answered = sum(o.stable.requests - o.stable.errors for o in windows)
    requests = sum(o.stable.requests for o in windows)
    pairs = sum(len(o.shadow_pairs) for o in windows)
    rs = _rate(requests - answered, requests)
    q = shadow / 100.0
    threshold = f"canary shadow failures significantly (p < {policy.alpha:g}) above stable errors + {policy.max_error_rate:g}"
    if answered * q < MIN_REFERENCE_SAMPLES:
        return CheckResult(
            "shadow_errors",
            CheckStatus.INSUFFICIENT,
            Severity.HARD,
            threshold=threshold,
            n_canary=pairs,
            n_stable=requests,
        )
    deficit = 1.0 - pairs / (answered * q)
    allowed = min(1.0, rs + policy.max_error_rate)  # H0: canary fails at most this often on a copy
    p = stats.binom_cdf(pairs, answered, q * (1.0 - allowed))
    failed = p < policy.alpha and deficit > allowed
    return CheckResult(
        "shadow_errors",
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        Severity.HARD,
        statistic=deficit,
        p_value=p,
        effect=deficit - allowed,
        threshold=threshold,
        n_canary=pairs,
        n_stable=requests,
        detail=f"{pairs} pairs of ~{answered * q:.0f} mirrored ({deficit:.1%} missing; stable errors {rs:.2%})",
    )


def _signed_rank(arr: np.ndarray) -> tuple[float, float]:
    """Pure; the median of canary - stable over finite (stable, canary) pairs and its two-sided signed-rank p."""
    diff = arr[:, 1] - arr[:, 0]
    nonzero = diff[np.abs(diff) > 1e-12]
    return float(np.median(diff)), 1.0 if nonzero.size == 0 else stats.wilcoxon_p(nonzero)


def _finite_pairs(pairs: Sequence[tuple[float, float]]) -> np.ndarray:
    arr = np.asarray(pairs, dtype=float).reshape(-1, 2)
    return np.asarray(arr[np.isfinite(arr).all(axis=1)])


def shadow_agreement(
    labels: Sequence[tuple[int, int]], *, policy: CanaryConfig, baseline: float = 1.0
) -> CheckResult:
    """Pure; argmax-label agreement on paired outputs; fails if significantly below the required rate:
    `min_shadow_agreement`, or the offline agreement of the two models minus `shift_min_effect` if lower."""
    arr = np.asarray(labels, dtype=np.int64).reshape(-1, 2)
    arr = arr[(arr != NO_LABEL).all(axis=1)]
    n = int(arr.shape[0])
    required = round(min(policy.min_shadow_agreement, baseline - policy.shift_min_effect), 6)
    threshold = f"agreement >= {required:g} (fails when p < {policy.alpha:g}; offline {baseline:g})"
    if n < policy.min_shadow_pairs:
        return CheckResult(
            "shadow_agreement",
            CheckStatus.INSUFFICIENT,
            Severity.STATISTICAL,
            threshold=threshold,
            n_canary=n,
            n_stable=n,
        )
    agree = int((arr[:, 0] == arr[:, 1]).sum())
    p = stats.binom_cdf(agree, n, max(required, 0.0))
    rate = agree / n
    failed = p < policy.alpha and rate < required
    return CheckResult(
        "shadow_agreement",
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        Severity.STATISTICAL,
        statistic=rate,
        p_value=p,
        effect=rate - required,
        threshold=threshold,
        n_canary=n,
        n_stable=n,
        detail=f"{agree} of {n} paired labels agree",
    )


def shadow_shift(
    pairs: Sequence[tuple[float, float]],
    *,
    policy: CanaryConfig,
    spec: OutputSpec = BINARY,
    baseline: float = 0.0,
) -> CheckResult:
    """Pure; Wilcoxon signed-rank on paired score differences: fails if p < alpha AND |median| exceeds the
    offline median (`baseline`) + `min_paired_shift` (for a regression, in units of the stable's std)."""
    arr = _finite_pairs(pairs)
    n = int(arr.shape[0])
    scale = float(arr[:, 0].std()) if spec.task == "regression" and n else 1.0
    floor = baseline + policy.min_paired_shift * (scale or 1.0)
    threshold = f"signed-rank p < {policy.alpha:g} and |median diff| > {floor:.4g}"
    if n < policy.min_shadow_pairs:
        return CheckResult(
            "shadow_shift",
            CheckStatus.INSUFFICIENT,
            Severity.STATISTICAL,
            threshold=threshold,
            n_canary=n,
            n_stable=n,
        )
    median, p = _signed_rank(arr)
    failed = p < policy.alpha and abs(median) > floor
    return CheckResult(
        "shadow_shift",
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        Severity.STATISTICAL,
        statistic=median,
        p_value=p,
        effect=median,
        threshold=threshold,
        n_canary=n,
        n_stable=n,
        detail=f"median paired difference {median:+.4g} over {n} pairs",
    )


def shadow_latency(pairs: Sequence[tuple[float, float]], *, policy: CanaryConfig) -> CheckResult:
    """Pure; Wilcoxon signed-rank on the latency each shadowed request took on both arms (canary - stable ms,
    sent at the same moment, so the machine's load cancels out): fails if p < alpha AND the median added
    latency > `max_added_latency_ms`."""
    arr = _finite_pairs(pairs)
    n = int(arr.shape[0])
    threshold = (
        f"signed-rank p < {policy.alpha:g} and median added latency > {policy.max_added_latency_ms:g} ms"
    )
    if n < policy.min_shadow_pairs:
        return CheckResult(
            "shadow_latency",
            CheckStatus.INSUFFICIENT,
            Severity.STATISTICAL,
            threshold=threshold,
            n_canary=n,
            n_stable=n,
        )
    median, p = _signed_rank(arr)
    failed = p < policy.alpha and median > policy.max_added_latency_ms
    return CheckResult(
        "shadow_latency",
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        Severity.STATISTICAL,
        statistic=median,
        p_value=p,
        effect=median,
        threshold=threshold,
        n_canary=n,
        n_stable=n,
        detail=f"median added latency {median:+.3g} ms over {n} shadowed requests",
    )


def shadow_divergence(
    pairs: Sequence[tuple[float, float]], *, policy: CanaryConfig, baseline: float = 0.0
) -> CheckResult:
    """Pure; regression: the median |canary - stable| of paired values, in units of the stable's std: fails when
    a sign test (p < alpha) puts it above the offline spread (`baseline`) + `shift_min_effect`. Catches answers
    that moved row by row even where their distribution did not (values mirrored around their mean)."""
    arr = _finite_pairs(pairs)
    n = int(arr.shape[0])
    limit = baseline + policy.shift_min_effect
    threshold = f"sign test p < {policy.alpha:g} and median |diff| / stable std > {limit:.4g} (offline {baseline:.4g})"
    if n < policy.min_shadow_pairs:
        return CheckResult(
            "shadow_divergence",
            CheckStatus.INSUFFICIENT,
            Severity.STATISTICAL,
            threshold=threshold,
            n_canary=n,
            n_stable=n,
        )
    sd = float(arr[:, 0].std()) or 1.0
    spread = np.abs(arr[:, 1] - arr[:, 0]) / sd
    above = int((spread > limit).sum())
    p = stats.binom_sf(above - 1, n, 0.5)  # P(X >= above) when the median is at most `limit`
    median = float(np.median(spread))
    failed = p < policy.alpha and median > limit
    return CheckResult(
        "shadow_divergence",
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        Severity.STATISTICAL,
        statistic=median,
        p_value=p,
        effect=median - baseline,
        threshold=threshold,
        n_canary=n,
        n_stable=n,
        detail=f"median |paired difference| {median:.3g} stable std over {n} pairs ({above} above {limit:.3g})",
    )
