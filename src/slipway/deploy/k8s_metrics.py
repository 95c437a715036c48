"""Canary analysis windows on Kubernetes: every Ready pod of each arm scraped through the API server's pod proxy.

`PodMetricsSource.observe` lists the Ready, non-terminating pods of each arm (labels `app`, `arm`),
reads each one's Prometheus `/metrics` at `/api/v1/namespaces/{ns}/pods/{name}:{port}/proxy/metrics`
(RBAC: `pods/proxy get`, in the deployer's Role), and differences the counters and histograms
against the previous scrape of the same pod. A pod first seen in this window counts in full (it got
no traffic before it was Ready); a counter that went down, a new `_created` time or a higher
`restartCount` is a restarted server, whose counts since the restart are the window's. A Ready pod
that cannot be scraped, or whose metrics name another model version than its arm serves, makes the
window stale (fail closed: the decision never promotes on it).

Each window also carries the share of live traffic the replica ratio gave the canary
(`Observation.routed_share`): its Ready pods over both arms' Ready pods at the window's start and
at its end (the HPA may move the stable in between), so the routing check compares the canary's
observed share with what its pods should have drawn, not with a weight the split no longer has.
After each window the canary follows the stable's HPA (`KubernetesTarget.follow_stable`); a
follow that fails makes the next window stale.

A feature-store model's entities looked up and missing come from `slipway_entity_lookups_total` and
`slipway_missing_entities_total` (the missing-entity check compares the arms' rates).

Each arm's predicted classes come from `slipway_predictions_total` (one label per counted row, for the
label-distribution checks); a regression's values from `slipway_prediction_value`, whose lowest bucket
and +Inf bucket lie outside the canary's validity range (`OutputSpec.regression`) and count as invalid.

Latency and score samples are rebuilt from histogram buckets, the SAME way for both arms: a bucket's
n observations are spread evenly inside it (as Prometheus' histogram_quantile interpolates; log scale
for latency). Both empirical CDFs are then straight between bucket edges, so the KS distance is the
largest gap AT an edge: never above the raw samples' D (binning can hide a shift, never invent one).
A p99 lands in the right bucket, so the p99 ratio is exact to one bucket width (19% with the serving
buckets). Spreading (rather than one value per bucket) keeps the collapse check sound: two arms whose
scores both sit inside one bucket are not told apart, instead of the one that happens to straddle an
edge looking infinitely more spread than the other. Scores above 1.0 (the +Inf score bucket) count as
schema-invalid rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slipway.deploy import k8s_manifests as m
from slipway.deploy.base import Arm, ArmWindow, MetricsSource, Observation
from slipway.errors import DeployError

if TYPE_CHECKING:
    from slipway.deploy.kubernetes import KubernetesTarget

Buckets = tuple[tuple[float, int], ...]  # (upper bound, count in that bucket alone), +Inf last
ARMS: tuple[Arm, Arm] = ("stable", "canary")
REQUESTS = "slipway_requests_total"
LATENCY = "slipway_request_latency_seconds"
SCORE = "slipway_prediction_score"
VALUE = "slipway_prediction_value"
PREDICTIONS = "slipway_predictions_total"
NONFINITE = "slipway_nonfinite_outputs_total"
ENTITIES = "slipway_entity_lookups_total"
MISSING = "slipway_missing_entities_total"


@dataclass(frozen=True)
class PodCounters:
    """One scrape of one pod's server: cumulative counts since the process started."""

    requests: int = 0
    errors: int = 0  # HTTP 5xx answers
    latency: Buckets = ()
    scores: Buckets = ()
    values: Buckets = ()  # a regression's values (its server has no score histogram)
    classes: tuple[tuple[int, int], ...] = ()  # (predicted class index, rows), sorted by class
    nonfinite: int = 0
    entities: int = 0  # entities looked up by key (a model with a feature service)
    missing: int = 0  # of those, missing from the online store
    versions: frozenset[str] = frozenset()  # model_version label values seen
    created: float = 0.0  # earliest `_created` time of the request series (the process's first request)

    def counts(self) -> tuple[int, ...]:
        """Pure; every counter and bucket as one tuple (for reset detection)."""
        return (
            self.requests,
            self.errors,
            self.nonfinite,
            self.entities,
            self.missing,
            *(n for _, n in self.latency),
            *(n for _, n in self.scores),
            *(n for _, n in self.values),
            *(n for _, n in self.classes),
        )


def _buckets(cumulative: Mapping[float, float]) -> Buckets:
    """Pure; per-bucket counts from Prometheus cumulative `le` counts."""
    out: list[tuple[float, int]] = []
    below = 0.0
    for le in sorted(cumulative):
        out.append((le, round(cumulative[le] - below)))
        below = cumulative[le]
    return tuple(out)


def parse_metrics(text: str) -> PodCounters:
    """Pure; the serving app's exposition (slipway.serving.metrics) summed over model versions; ValueError if malformed."""
    from prometheus_client.parser import text_string_to_metric_families

    requests = errors = nonfinite = entities = missing = 0.0
    latency: dict[float, float] = {}
    scores: dict[float, float] = {}
    values: dict[float, float] = {}
    classes: dict[int, float] = {}
    versions: set[str] = set()
    created: list[float] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            version = s.labels.get("model_version")
            if version is not None:
                versions.add(version)
            if s.name == REQUESTS:
                requests += s.value
                if s.labels.get("status", "").startswith("5"):
                    errors += s.value
            elif s.name == f"{REQUESTS.removesuffix('_total')}_created":
                created.append(s.value)
            elif s.name == NONFINITE:
                nonfinite += s.value
            elif s.name == ENTITIES:
                entities += s.value
            elif s.name == MISSING:
                missing += s.value
            elif s.name == PREDICTIONS:
                k = int(s.labels["class"])
                classes[k] = classes.get(k, 0.0) + s.value
            elif s.name in (f"{LATENCY}_bucket", f"{SCORE}_bucket", f"{VALUE}_bucket"):
                into = {f"{LATENCY}_bucket": latency, f"{SCORE}_bucket": scores}.get(s.name, values)
                le = float(s.labels["le"])
                into[le] = into.get(le, 0.0) + s.value
    return PodCounters(
        requests=int(requests),
        errors=int(errors),
        latency=_buckets(latency),
        scores=_buckets(scores),
        values=_buckets(values),
        classes=tuple((k, round(n)) for k, n in sorted(classes.items())),
        nonfinite=int(nonfinite),
        entities=int(entities),
        missing=int(missing),
        versions=frozenset(versions),
        created=min(created, default=0.0),
    )


def _sub(now: Buckets, before: Buckets) -> Buckets:
    """Pure; bucket-wise difference (bounds taken from `now`; a bucket `before` lacks counts from 0)."""
    prev = dict(before)
    return tuple((le, n - prev.get(le, 0)) for le, n in now)


def difference(now: PodCounters, before: PodCounters | None) -> PodCounters:
    """Pure; what happened between two scrapes of one pod; all of `now` when first seen or after a restart (reset)."""
    if before is None or (before.created and now.created and now.created != before.created):
        return now
    delta = PodCounters(
        requests=now.requests - before.requests,
        errors=now.errors - before.errors,
        latency=_sub(now.latency, before.latency),
        scores=_sub(now.scores, before.scores),
        values=_sub(now.values, before.values),
        classes=tuple((k, n - dict(before.classes).get(k, 0)) for k, n in now.classes),
        nonfinite=now.nonfinite - before.nonfinite,
        entities=now.entities - before.entities,
        missing=now.missing - before.missing,
        versions=now.versions,
        created=now.created,
    )
    return now if any(n < 0 for n in delta.counts()) else delta


def _spread(buckets: Buckets, *, geometric: bool, floor: float = 0.0) -> list[float]:
    """Pure; one value per observation: a bucket's n observations evenly spaced inside it (at (i + 1/2)/n of its width,
    on a log scale for latency; the first from `floor`), the +Inf bucket's at twice the last bound."""
    out: list[float] = []
    lower = floor
    for le, n in buckets:
        if n <= 0:
            pass
        elif math.isinf(le):
            out.extend([2.0 * lower] * n)
        elif geometric and lower > 0:
            ratio = le / lower
            out.extend(lower * ratio ** ((i + 0.5) / n) for i in range(n))
        else:
            out.extend(lower + (le - lower) * (i + 0.5) / n for i in range(n))
        lower = le
    return out


def _summed(buckets: dict[float, int], pods: Iterable[Buckets]) -> None:
    for pod in pods:
        for le, n in pod:
            buckets[le] = buckets.get(le, 0) + n


def arm_window(deltas: list[PodCounters]) -> ArmWindow:
    """Pure; one arm's ArmWindow from its pods' deltas: counts summed, samples rebuilt from the summed buckets
    (a regression's values as its scores), one label per predicted row."""
    window = ArmWindow()
    latency: dict[float, int] = {}
    scores: dict[float, int] = {}
    values: dict[float, int] = {}
    classes: dict[int, int] = {}
    for d in deltas:
        window.requests += d.requests
        window.errors += d.errors
        window.nonfinite += d.nonfinite
        window.entities += d.entities
        window.missing_entities += d.missing
        for k, n in d.classes:
            classes[k] = classes.get(k, 0) + n
    _summed(latency, (d.latency for d in deltas))
    _summed(scores, (d.scores for d in deltas))
    _summed(values, (d.values for d in deltas))
    window.latencies_ms = [
        round(v * 1000.0, 6) for v in _spread(tuple(sorted(latency.items())), geometric=True)
    ]
    window.labels = [k for k, n in sorted(classes.items()) for _ in range(max(n, 0))]
    if values:  # a regression: below the lowest edge or above the highest lies outside the validity range
        edges = tuple(sorted(values.items()))
        window.invalid += sum(max(n, 0) for le, n in edges if math.isinf(le)) + max(edges[0][1], 0)
        inner = tuple((le, n) for le, n in edges[1:] if not math.isinf(le))
        window.scores = [round(v, 6) for v in _spread(inner, geometric=False, floor=edges[0][0])]
        return window
    score_buckets = tuple(sorted(scores.items()))
    window.invalid += sum(n for le, n in score_buckets if math.isinf(le) and n > 0)
    finite = tuple((le, n) for le, n in score_buckets if not math.isinf(le))
    window.scores = [round(v, 6) for v in _spread(finite, geometric=False)]
    return window


@dataclass
class _Seen:
    """The last scrape of one pod (by UID) and its restart count then."""

    counters: PodCounters
    restarts: int


@dataclass
class _Scrape:
    """One pass over both arms: per-pod counters, and why it is stale (empty when fresh)."""

    at: float
    pods: dict[str, tuple[Arm, PodCounters, int]] = field(
        default_factory=dict
    )  # uid -> (arm, counters, restarts)
    problems: list[str] = field(default_factory=list)
    ready: dict[Arm, int] = field(default_factory=lambda: {"stable": 0, "canary": 0})  # Ready pods by arm

    def canary_share(self) -> float:
        """Pure; the canary's Ready pods over both arms' (0 when none is Ready): its share under replica-ratio routing."""
        total = self.ready["stable"] + self.ready["canary"]
        return self.ready["canary"] / total if total else 0.0


def _ready(pod: m.Manifest) -> bool:
    """Whether a pod is Ready and not terminating (what a Service sends traffic to)."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _restarts(pod: m.Manifest) -> int:
    """The pod's total container restart count."""
    return sum(int(c.get("restartCount", 0)) for c in pod.get("status", {}).get("containerStatuses") or [])


class PodMetricsSource(MetricsSource):
    """Analysis windows of a KubernetesTarget's arms, scraped per Ready pod through the API server's pod proxy."""

    def __init__(
        self,
        target: KubernetesTarget,
        *,
        port: int = m.CONTAINER_PORT,
        path: str = "metrics",
        clock: Callable[[], float] = time.time,
        follow_hpa: bool = True,
    ) -> None:
        self.target = target
        self.port = port
        self.path = path.lstrip("/")
        self.clock = clock
        self.follow_hpa = follow_hpa
        self._seen: dict[str, _Seen] = {}
        self._start: float | None = None
        self._start_share: float | None = None
        self._stale_baseline: str | None = None

    def rebaseline(self) -> None:
        """Blocking (one scrape); the next window starts now (call after a traffic change); a failed scrape makes it stale."""
        scrape = self._scrape()
        self._keep(scrape)
        self._start, self._start_share = scrape.at, scrape.canary_share()
        problems = "; ".join(scrape.problems)
        self._stale_baseline = f"baseline after the traffic change: {problems}" if problems else None

    def observe(self, *, weight: int) -> Observation:
        """Blocking (one scrape per Ready pod, then `follow_stable`); both arms' counts since the previous call;
        stale if any Ready pod fails (or the previous follow failed)."""
        observation = self._window(weight=weight)
        if self.follow_hpa and weight:
            try:
                self.target.follow_stable()
            except DeployError as exc:  # the next window cannot be trusted to have the weight's split
                self._stale_baseline = f"the canary could not follow the stable's HPA: {exc}"
        return observation

    def _window(self, *, weight: int) -> Observation:
        """One scrape ends the window that began at the previous one: per-pod deltas, routed share, staleness."""
        scrape = self._scrape()
        start = scrape.at if self._start is None else self._start
        deltas: dict[Arm, list[PodCounters]] = {"stable": [], "canary": []}
        for uid, (arm, counters, restarts) in scrape.pods.items():
            seen = self._seen.get(uid)
            before = seen.counters if seen is not None and restarts == seen.restarts else None
            deltas[arm].append(difference(counters, before))
        problems = list(scrape.problems)
        if self._stale_baseline:
            problems.append(self._stale_baseline)
        first = self._start is None
        end_share = scrape.canary_share()
        start_share = end_share if self._start_share is None else self._start_share
        self._keep(scrape)
        self._start, self._start_share, self._stale_baseline = scrape.at, end_share, None
        return Observation(
            start_s=start,
            end_s=scrape.at,
            weight=weight,
            stable=arm_window(deltas["stable"]) if not first else ArmWindow(),
            canary=arm_window(deltas["canary"]) if not first else ArmWindow(),
            stale=bool(problems) or first,
            source_error="; ".join(problems) if problems else ("first scrape: a baseline" if first else None),
            routed_share=(min(start_share, end_share), max(start_share, end_share)),
        )

    def _keep(self, scrape: _Scrape) -> None:
        """Remember this scrape per pod (pods gone since are forgotten)."""
        self._seen = {uid: _Seen(counters, restarts) for uid, (_, counters, restarts) in scrape.pods.items()}

    def _scrape(self) -> _Scrape:
        """One pass: list each arm's pods, scrape the Ready ones; problems name the pod and why."""
        scrape = _Scrape(at=self.clock())
        for arm in ARMS:
            try:
                pods = self.target.arm_pods(arm)
            except DeployError as exc:
                scrape.problems.append(f"{arm}: {exc}")
                continue
            for pod in pods:
                if not _ready(pod):
                    continue
                scrape.ready[arm] += 1  # the Service sends it traffic, scraped or not
                meta = pod["metadata"]
                name, uid = meta["name"], meta.get("uid", meta["name"])
                want = (meta.get("labels") or {}).get(m.LABEL_VERSION)
                try:
                    text = self.target.pod_proxy_get(name, port=self.port, path=self.path)
                    counters = parse_metrics(text)
                except (DeployError, ValueError) as exc:
                    scrape.problems.append(f"{arm} pod {name}: metrics unreadable: {exc}")
                    continue
                if want and counters.versions - {want}:
                    scrape.problems.append(
                        f"{arm} pod {name}: metrics of model version(s) {sorted(counters.versions)}, "
                        f"but the pod serves {want}"
                    )
                    continue
                scrape.pods[uid] = (arm, counters, _restarts(pod))
        return scrape
