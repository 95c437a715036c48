"""Kubernetes deploy target: stable and canary Deployments behind one Service, split by replica ratio.

Objects (namespace-scoped, built by `k8s_manifests`): Deployments `<app>-stable` and `<app>-canary`
(image by digest, hardened pods), Service `<app>` selecting both arms, and an HPA `<app>-stable`
in the newest autoscaling API the server offers. Every write is a server-side apply with field
manager `slipway` (force: the deployer owns its fields), so every call converges on the wanted
objects from whatever is deployed. Nothing is remembered between calls: `state()` reads it back.

Traffic: weight w -> canary replicas round(total*w/100) (half up, at least 1 while w > 0, at most
total-1), stable the rest, so the canary's share moves in steps of 100/total percent. At weight 0
the canary Deployment has 0 pods: `start_canary` proves it Ready on one pod first (that pod is in
the Service for the moment between its Ready and the scale-down). Shadow mirroring needs a router:
`set_traffic` refuses shadow > 0 and `state().shadow` is always 0.

The HPA: its floor (minReplicas) is the stable's share of `total`; above it the HPA owns the
stable's size. While the HPA holds the stable above its floor, no call shrinks it (set_traffic
only moves the floor; promote and rollback keep both arms' pods) and the canary follows it:
`follow_stable` resizes the canary to round(stable*w/(100-w)) for the weight set last (annotated
on the canary Deployment), so the canary's share stays at its weight while the stable scales.

Canary analysis reads each Ready pod's /metrics through the API server's pod proxy
(`arm_pods`, `pod_proxy_get`; `slipway.deploy.k8s_metrics.PodMetricsSource`), which restarts its
window whenever `set_traffic` returns (`on_traffic_set`) and calls `follow_stable` between windows.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway.deploy import k8s_manifests as m
from slipway.deploy.base import (
    Arm,
    Capabilities,
    ComponentHealth,
    DeploymentState,
    DeployTarget,
    HealthState,
    MetricsSource,
    ModelRelease,
    require_digest,
)
from slipway.errors import DeployError
from slipway.locks.base import ReleaseLock

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

Manifest = m.Manifest
_PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
}


class _Rest:
    """The few REST calls the target makes, through the official client's ApiClient (auth, TLS)."""

    def __init__(self, client: ApiClient, *, timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Manifest | None = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        missing_ok: bool = False,
    ) -> Manifest | None:
        """The decoded JSON answer; None on 404 when `missing_ok`; DeployError naming `what` otherwise."""
        status, reason, raw = self._send(
            method,
            path,
            what=what,
            body=body,
            query=query,
            content_type=content_type,
            accept="application/json",
        )
        if status == 404 and missing_ok:
            return None
        try:
            data: Manifest = json.loads(raw) if raw else {}
        except ValueError:
            data = {"message": raw[:200].decode(errors="replace")}
        if not 200 <= status <= 299:
            raise DeployError(f"kubernetes: {method} {what}: HTTP {status}: {data.get('message') or reason}")
        return data

    def request(
        self, method: str, path: str, *, what: str, body: Manifest | None = None
    ) -> tuple[int, Manifest]:
        """Blocking (timeout_s); (HTTP status, decoded JSON answer) whatever the status (callers that branch on
        404/409); DeployError naming `what` only on a transport failure."""
        status, _, raw = self._send(method, path, what=what, body=body, accept="application/json")
        try:
            data: Manifest = json.loads(raw) if raw else {}
        except ValueError:
            data = {"message": raw[:200].decode(errors="replace")}
        return status, data

    def text(self, path: str, *, what: str) -> str:
        """Blocking (timeout_s); GET `path` as text (e.g. a pod's /metrics through the proxy); DeployError unless 2xx."""
        status, reason, raw = self._send("GET", path, what=what, accept="text/plain")
        if not 200 <= status <= 299:
            detail = raw[:200].decode(errors="replace").strip() or reason
            raise DeployError(f"kubernetes: GET {what}: HTTP {status}: {detail}")
        return raw.decode(errors="replace")

    def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        accept: str,
        body: Manifest | None = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, str, bytes]:
        """One request: (HTTP status, reason, body bytes); DeployError naming `what` on a transport failure."""
        from urllib3.exceptions import HTTPError

        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        request = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response: Any = self.client.call_api(*request, _request_timeout=self.timeout_s)
            response.read()
        except HTTPError as exc:
            raise DeployError(f"kubernetes: {method} {what}: {exc}") from exc
        return int(response.status), str(response.reason), bytes(response.data or b"")


def _path(*, api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """The REST path of a namespaced object (or of its collection when `name` is None)."""
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{_PLURALS.get(kind, kind.lower() + 's')}"
    return path if name is None else f"{path}/{name}"


def _deadline_exceeded(status: Manifest) -> Manifest | None:
    """The Progressing condition of a rollout that ran past its progress deadline, if any."""
    return next(
        (
            c
            for c in status.get("conditions", [])
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
        ),
        None,
    )


def _rollout_blocker(obj: Manifest) -> str | None:
    """Why a Deployment is not rolled out and Ready yet (kubectl rollout status rules); None when it is."""
    spec_n = obj.get("spec", {}).get("replicas", 1)
    status = obj.get("status", {})
    failed = _deadline_exceeded(status)
    if failed is not None:
        return f"progress deadline exceeded: {failed.get('message', '')}"
    if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 0):
        return "the controller has not seen the new spec yet"
    updated, total = status.get("updatedReplicas", 0), status.get("replicas", 0)
    ready = status.get("readyReplicas", 0)
    if updated < spec_n:
        return f"{updated}/{spec_n} replicas updated"
    if total > updated:
        return f"{total - updated} old replicas still running"
    if ready < spec_n:
        return f"{ready}/{spec_n} replicas ready"
    return None


def canary_serving(obj: Manifest) -> bool:
    """Pure; Ready as the canary analysis means it: rolled out, or only growing (every pod of the current template,
    at least one of them Ready, no progress-deadline failure). Pods being added next to Ready ones (the canary
    following an HPA-grown stable) are not a canary that dropped out of Ready."""
    if _rollout_blocker(obj) is None:
        return True
    status = obj.get("status", {})
    if _deadline_exceeded(status) is not None:
        return False
    one_template: bool = status.get("replicas", 0) == status.get("updatedReplicas", 0)
    return one_template and int(status.get("readyReplicas", 0)) >= 1


def _pod_ready(pod: Manifest) -> bool:
    """Pure; the pod's Ready condition is True."""
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _lease_until(obj: Manifest) -> float | None:
    """Pure; the canary lease noted on a Deployment (epoch seconds), None when none is."""
    value = (obj["metadata"].get("annotations") or {}).get(m.ANNOTATION_LEASE_UNTIL)
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def _release_of(obj: Manifest) -> ModelRelease:
    """The release a Deployment serves, read from its annotations, labels and pod template (the canary's traffic
    lease is the target's, not the release's: it is left out)."""
    meta = obj["metadata"]
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    containers = obj["spec"]["template"]["spec"]["containers"]
    container = next((c for c in containers if c["name"] == m.CONTAINER), containers[0])
    return ModelRelease(
        model_name=annotations.get(m.ANNOTATION_MODEL_NAME, ""),
        model_version=annotations.get(m.ANNOTATION_MODEL_VERSION) or labels.get(m.LABEL_VERSION, ""),
        image_ref=container.get("image"),
        env={
            e["name"]: e["value"]
            for e in container.get("env") or []
            if "value" in e and e["name"] != m.LEASE_ENV
        },
    )


def replica_capabilities(total_replicas: int) -> Capabilities:
    """Pure; what replica-ratio traffic over `total_replicas` pods can do: no shadow, weights in steps of 100/total."""
    weights = sorted({m.weight_of(stable=s, canary=total_replicas - s) for s in range(1, total_replicas)})
    return Capabilities(
        canary_lease=True,
        shadow=False,
        weights=tuple(weights),
        requires_digest=True,
        why=f"the kubernetes target splits traffic by replica ratio over {total_replicas} pods: "
        "deploy.kubernetes.replicas",
    )


class KubernetesTarget(DeployTarget):
    """Stable/canary Deployments + Service + HPA in one namespace, applied server-side via a given ApiClient."""

    name = "kubernetes"

    def __init__(
        self,
        *,
        api_client: ApiClient,
        namespace: str,
        app: str = "slipway-serve",
        total_replicas: int = 10,
        max_replicas: int | None = None,
        autoscaling: m.Autoscaling | None = None,
        resources: m.PodResources | None = None,
        rollout_timeout_s: float = 300.0,
        traffic_timeout_s: float = 60.0,
        request_timeout_s: float = 30.0,
        poll_s: float = 0.25,
        canary_lease_s: float = 135.0,
        owns_client: bool = False,
    ) -> None:
        self.namespace = m.require_dns_label(namespace, what="namespace")
        self.app = m.require_dns_label(app, what="app name")
        m.require_dns_label(m.arm_name(app=app, arm="canary"), what="canary Deployment name")
        m.split_replicas(total=total_replicas, weight=0)  # rejects total < 2
        self.total = total_replicas
        self.max_replicas = max_replicas or 3 * total_replicas
        self.autoscaling = autoscaling or m.Autoscaling()
        self.resources = resources or m.PodResources()
        self.rollout_timeout_s = rollout_timeout_s
        self.traffic_timeout_s = traffic_timeout_s
        self.poll_s = poll_s
        self.canary_lease_s = canary_lease_s
        self._lease_ttl_s: float | None = (
            None  # the canary lease ttl last held (`hold_canary`), kept while waiting
        )
        self._lease_renewed = 0.0
        self._client: ApiClient | None = api_client
        self._owns_client = owns_client
        self._rest = _Rest(api_client, timeout_s=request_timeout_s)
        self._hpa_version: str | None = None
        self._traffic_listeners: list[Callable[[], None]] = []
        self._metrics: MetricsSource | None = None

    @classmethod
    def from_kubeconfig(
        cls, *, namespace: str, kubeconfig: Path | None = None, context: str | None = None, **kwargs: Any
    ) -> KubernetesTarget:
        """A target owning its client: `kubeconfig` (else $KUBECONFIG or ~/.kube/config), else in-cluster config."""
        from kubernetes import config
        from kubernetes.client import ApiClient, Configuration

        try:
            client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig) if kubeconfig else None, context=context
            )
        except config.ConfigException as exc:
            if kubeconfig is not None:
                raise DeployError(f"kubernetes: kubeconfig {kubeconfig}: {exc}") from exc
            try:
                configuration = Configuration()
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except config.ConfigException as exc2:
                raise DeployError(f"kubernetes: no kubeconfig and not in a cluster: {exc}; {exc2}") from exc2
            client = ApiClient(configuration)
        return cls(api_client=client, namespace=namespace, owns_client=True, **kwargs)

    # --- DeployTarget ---------------------------------------------------------------------------

    def release_lock(self) -> ReleaseLock:
        """Non-blocking; the Lease `<app>-release` in the target's namespace (the deployer Role may use leases)."""
        from slipway.locks.kubernetes import KubernetesReleaseLock

        return KubernetesReleaseLock(self._rest, namespace=self.namespace, name=f"{self.app}-release")

    def state(self) -> DeploymentState:
        """Non-blocking read of both Deployments; weight from their replica counts, shadow always 0."""
        stable_obj, canary_obj = self._get_arm("stable"), self._get_arm("canary")
        stable = _release_of(stable_obj) if stable_obj else None
        canary = _release_of(canary_obj) if canary_obj else None
        weight = 0
        if stable_obj and canary_obj:
            weight = m.weight_of(stable=_replicas(stable_obj), canary=_replicas(canary_obj))
        elif canary_obj:
            weight = 100 if _replicas(canary_obj) else 0
        # Ready = rolled out at its current size (at weight 0 that size is 0: start_canary checked it at 1 pod), or
        # growing next to pods that are Ready
        ready = canary_obj is not None and canary_serving(canary_obj)
        until = _lease_until(canary_obj) if canary_obj else None
        lapsed = until is not None and time.time() >= until  # its pods turn not Ready: out of the Service
        return DeploymentState(
            stable=stable,
            canary=canary,
            weight=0 if lapsed else weight,
            shadow=0,
            canary_ready=ready and not lapsed,
            canary_unattended=lapsed,
        )

    def health(self) -> list[ComponentHealth]:
        """Non-blocking read of both Deployments; each arm's Ready pods of those wanted, and their restarts
        (the kubelet restarts a dead container; the ReplicaSet replaces a lost pod)."""
        found = []
        for arm in ("stable", "canary"):
            obj = self._get_arm(arm)
            if obj is None:
                continue
            wanted, ready = _replicas(obj), int(obj.get("status", {}).get("readyReplicas") or 0)
            state: HealthState = "ready" if ready >= wanted else "not ready" if ready == 0 else "degraded"
            if wanted == 0:
                state = "scaled to 0"
            restarts = sum(
                int(c.get("restartCount") or 0)
                for pod in self.arm_pods(arm)
                for c in (pod.get("status") or {}).get("containerStatuses") or []
            )
            detail = f"{ready}/{wanted} pods ready, model version {_release_of(obj).model_version}"
            found.append(ComponentHealth(name=arm, state=state, detail=detail, restarts=restarts))
        return found

    def deploy_stable(self, release: ModelRelease, *, ready_timeout_s: float) -> None:
        """Blocking until ready or timeout (DeployError, the previous stable re-applied); idempotent; weight 0."""
        require_digest(
            release.image_ref,
            target="kubernetes",
            what=f"stable {release.model_name} v{release.model_version}",
        )
        previous = self._get_arm("stable")
        size = self._full_size(previous, None)
        self._apply(m.service(app=self.app, namespace=self.namespace))
        self._apply_arm("stable", release, size)
        self._apply_hpa(min_replicas=self.total)
        try:
            self._wait_ready("stable", timeout_s=ready_timeout_s)
        except DeployError as exc:
            if previous is None or _release_of(previous) == release:
                raise
            # maxUnavailable 0 kept the old pods serving: put their template back (a rollout undo)
            old = _release_of(previous)
            self._apply_arm("stable", old, size)
            raise DeployError(
                f"{exc}; re-applied the previous stable (model version {old.model_version})"
            ) from exc
        canary_obj = self._get_arm("canary")
        if canary_obj is not None and _replicas(canary_obj):
            self._apply_arm("canary", _release_of(canary_obj), 0)
            self._wait_ready("canary", timeout_s=self.traffic_timeout_s)

    def start_canary(self, release: ModelRelease, *, ready_timeout_s: float) -> bool:
        """Blocking until ready or timeout; idempotent; canary at weight 0 (proven Ready on one pod); False, and removed, if never ready."""
        require_digest(
            release.image_ref,
            target="kubernetes",
            what=f"canary {release.model_name} v{release.model_version}",
        )
        self._require_stable("start a canary")
        canary_obj = self._get_arm("canary")
        warm = 1 if canary_obj is None else max(_replicas(canary_obj), 1)
        self._apply_arm("canary", release, warm)  # the stable keeps its full size meanwhile
        if self._wait_ready("canary", timeout_s=ready_timeout_s, raise_on_timeout=False) is not None:
            self._remove_canary()
            return False
        self.set_traffic(weight=0, shadow=0)
        return True

    def set_traffic(self, *, weight: int, shadow: int) -> None:
        """Blocking (traffic_timeout_s at most per arm); idempotent; scales both arms to the ratio; shadow > 0 is refused.

        The stable's floor is its share of `total`; a stable the HPA holds above its floor keeps its
        size and the canary is sized against it (`m.canary_replicas`).
        """
        floor, _ = m.split_replicas(total=self.total, weight=weight)
        if shadow:
            raise DeployError(
                f"kubernetes: cannot mirror {shadow}% of traffic: this target splits by replica ratio only "
                "(shadow needs the router; use shadow 0)"
            )
        canary_obj = self._get_arm("canary")
        if canary_obj is None:
            if weight:
                raise DeployError(
                    f"kubernetes: no canary Deployment in {self.namespace} to send {weight}% to"
                )
            return
        stable_obj = self._stable_obj("set traffic")
        stable, canary = _release_of(stable_obj), _release_of(canary_obj)
        n_stable = max(floor, self._hpa_grown(stable_obj) or 0)
        n_canary = m.canary_replicas(stable=n_stable, weight=weight, total=self.total, most=self.max_replicas)
        # Grow one arm before shrinking the other, so serving capacity never dips.
        grow_canary_first = n_canary > _replicas(canary_obj)
        for arm in ("canary", "stable") if grow_canary_first else ("stable", "canary"):
            if arm == "stable":
                self._size_stable(stable, replicas=n_stable, floor=floor, current=_replicas(stable_obj))
            else:
                self._apply_arm("canary", canary, n_canary, weight=weight)
            self._wait_ready(arm, timeout_s=self.traffic_timeout_s)
        for listener in self._traffic_listeners:
            listener()

    def follow_stable(self) -> bool:
        """Blocking (until grown pods are Ready, traffic_timeout_s; DeployError); idempotent; True if it resized.

        Keeps a live canary at the weight `set_traffic` set last: the stable at its floor unless the
        HPA holds it above (a stable left above the floor otherwise goes back: the HPA acting on the
        floor before the last one), and the canary at its share of the stable's size. No-op without a
        canary, at weight 0, or when the sizes already fit.
        """
        canary_obj, stable_obj = self._get_arm("canary"), self._get_arm("stable")
        if canary_obj is None or stable_obj is None or not _replicas(canary_obj):
            return False
        weight = _set_weight(canary_obj)
        if not weight:
            return False
        floor, _ = m.split_replicas(total=self.total, weight=weight)
        stable_n, have_stable = self._hpa_grown(stable_obj) or floor, _replicas(stable_obj)
        want = m.canary_replicas(stable=stable_n, weight=weight, total=self.total, most=self.max_replicas)
        have = _replicas(canary_obj)
        if want > have:  # grow the canary before the stable shrinks, as set_traffic does
            self._apply_arm("canary", _release_of(canary_obj), want, weight=weight)
            self._wait_ready("canary", timeout_s=self.traffic_timeout_s)
        if stable_n != have_stable:
            self._size_stable(_release_of(stable_obj), replicas=stable_n, floor=floor, current=have_stable)
        if want < have:
            self._apply_arm("canary", _release_of(canary_obj), want, weight=weight)
        return want != have or stable_n != have_stable

    def hold_canary(self, *, ttl_s: float) -> None:
        """Blocking (a list, one proxied POST per running canary pod, a patch); idempotent; best effort (an API or
        pod failure is left to the next renewal, the leases run on meanwhile): each running canary pod's traffic
        lease runs until now + ttl_s (`POST /lease` through the pod proxy), then noted on the canary Deployment.
        A pod whose lease runs out answers /readyz 503 and leaves the Service on its own; a new pod's lease
        (`canary_lease_s`) starts when it turns ready. While a call waits on a rollout the lease is kept (see
        `_keep_lease`). No canary: no-op."""
        self._lease_ttl_s = ttl_s
        until = time.time() + ttl_s  # before the POSTs: no pod's lease outlives what the note says
        name = m.arm_name(app=self.app, arm="canary")
        try:
            pods = self.arm_pods("canary")
        except DeployError:
            return
        for pod in pods:
            if (
                pod["metadata"].get("deletionTimestamp")
                or (pod.get("status") or {}).get("phase") != "Running"
            ):
                continue
            pod_name = pod["metadata"]["name"]
            with contextlib.suppress(DeployError):  # a lapsed pod (not Ready) is renewed too: it comes back
                self._rest.call(
                    "POST",
                    f"/api/v1/namespaces/{self.namespace}/pods/{pod_name}:{m.CONTAINER_PORT}/proxy/lease",
                    what=f"renew the lease of canary pod {self.namespace}/{pod_name}",
                    body={"ttl_s": ttl_s},
                )
        with contextlib.suppress(DeployError):  # gone (rolled back meanwhile), or the API is away: next time
            self._rest.call(
                "PATCH",
                self._deployment_path("canary"),
                what=f"note the canary lease on Deployment {self.namespace}/{name}",
                body={"metadata": {"annotations": {m.ANNOTATION_LEASE_UNTIL: f"{until:.3f}"}}},
                content_type="application/merge-patch+json",
            )
        self._lease_renewed = time.monotonic()

    def _keep_lease(self) -> None:
        """Renews the canary's lease (the ttl last held) once a third of it has passed: a release that is alive
        but waiting on a rollout (set_traffic, promote) must not lose its canary's traffic meanwhile."""
        ttl = self._lease_ttl_s
        if ttl is not None and time.monotonic() - self._lease_renewed >= ttl / 3:
            self.hold_canary(ttl_s=ttl)

    def promote(self) -> None:
        """Blocking; idempotent; the stable takes the canary's template at full size, then the canary is removed."""
        canary_obj = self._get_arm("canary")
        release = _release_of(canary_obj) if canary_obj else self._require_stable("promote")
        self._apply_arm("stable", release, self._full_size(self._get_arm("stable"), canary_obj))
        self._apply_hpa(min_replicas=self.total)
        self._wait_ready("stable", timeout_s=self.rollout_timeout_s)
        self._remove_canary()

    def rollback(self) -> None:
        """Blocking; idempotent; the canary is removed first (its pods leave the Service), then the stable is full size."""
        canary_obj = self._get_arm("canary")
        self._remove_canary()
        stable_obj = self._get_arm("stable")
        if stable_obj is None:
            return
        self._apply_arm("stable", _release_of(stable_obj), self._full_size(stable_obj, canary_obj))
        self._apply_hpa(min_replicas=self.total)
        self._wait_ready("stable", timeout_s=self.rollout_timeout_s)

    def close(self) -> None:
        """Idempotent; closes the ApiClient if this target created it (deployed objects stay)."""
        if self._client is not None and self._owns_client:
            self._client.close()  # type: ignore[no-untyped-call]
        self._client = None

    # --- pods (what a metrics source reads) --------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Pure; no shadow (replica ratio cannot mirror), weights in steps of 100/replicas, images by digest only."""
        return replica_capabilities(self.total)

    def metrics_source(self) -> MetricsSource:
        """Non-blocking; the pod scraper (`PodMetricsSource`), its window restarted after every traffic change."""
        if self._metrics is None:
            from slipway.deploy.k8s_metrics import PodMetricsSource

            self._metrics = PodMetricsSource(self)
            self.on_traffic_set(self._metrics.rebaseline)
        return self._metrics

    def on_traffic_set(self, listener: Callable[[], None]) -> None:
        """Non-blocking; `listener()` runs after every `set_traffic` that returned (both arms at the new ratio)."""
        self._traffic_listeners.append(listener)

    def arm_pods(self, arm: Arm) -> list[Manifest]:
        """Blocking (one list call); the pods of one arm as stored (any phase; DeployError if the list fails)."""
        return self._list_pods(f"{m.LABEL_APP}={self.app},{m.LABEL_ARM}={arm}")

    def pod_proxy_get(self, pod: str, *, port: int, path: str) -> str:
        """Blocking (request_timeout_s); GET http://<pod>:<port>/<path> through the API server's pod proxy, as text.

        Needs `pods/proxy get` in the namespace (the deployer's Role has it); DeployError unless 2xx.
        """
        url = f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{port}/proxy/{path.lstrip('/')}"
        return self._rest.text(
            url, what=f"pod {self.namespace}/{pod}:{port}/{path.lstrip('/')} via the API proxy"
        )

    # --- objects --------------------------------------------------------------------------------

    def hpa_api_version(self) -> str:
        """The newest autoscaling API version the server offers (autoscaling/v2, v2beta2, else v1), cached."""
        if self._hpa_version is None:
            group = self._rest.call("GET", "/apis/autoscaling", what="API group autoscaling") or {}
            offered = {v["groupVersion"] for v in group.get("versions", [])}
            found = next((v for v in m.HPA_API_VERSIONS if v in offered), None)
            if found is None:
                raise DeployError(
                    f"kubernetes: the server offers no known autoscaling API (it has {sorted(offered)})"
                )
            self._hpa_version = found
        return self._hpa_version

    def _apply(self, obj: Manifest) -> Manifest:
        """Server-side apply of one object (field manager `slipway`, force); the object as stored."""
        meta = obj["metadata"]
        path = _path(
            api_version=obj["apiVersion"], kind=obj["kind"], namespace=meta["namespace"], name=meta["name"]
        )
        stored = self._rest.call(
            "PATCH",
            path,
            what=f"apply {obj['kind']} {meta['namespace']}/{meta['name']}",
            body=obj,
            query=[("fieldManager", m.FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return stored or {}

    def _apply_arm(
        self, arm: Arm, release: ModelRelease, replicas: int, *, weight: int | None = None
    ) -> None:
        """Apply one arm's Deployment at `replicas` (the canary's with the weight it serves, and its pods' lease)."""
        if arm == "canary":
            release = replace(release, env={**release.env, m.LEASE_ENV: f"{self.canary_lease_s:g}"})
        self._apply(
            m.deployment(
                app=self.app,
                namespace=self.namespace,
                arm=arm,
                release=release,
                replicas=replicas,
                resources=self.resources,
                weight=weight,
            )
        )

    def _apply_hpa(self, *, min_replicas: int) -> None:
        """Apply the stable's HPA with its floor at the stable's current share."""
        obj = m.hpa(
            app=self.app,
            namespace=self.namespace,
            api_version=self.hpa_api_version(),
            min_replicas=min_replicas,
            max_replicas=self.max_replicas,
            autoscaling=self.autoscaling,
        )
        self._apply(obj)

    def _size_stable(self, release: ModelRelease, *, replicas: int, floor: int, current: int) -> None:
        """The stable at `replicas` with its HPA floor at `floor`; a lower floor goes first, so the HPA never
        sees the stable under its floor (it would scale it straight back up)."""
        if replicas < current:
            self._apply_hpa(min_replicas=floor)
            self._apply_arm("stable", release, replicas)
        else:
            self._apply_arm("stable", release, replicas)
            self._apply_hpa(min_replicas=floor)

    def _hpa_grown(self, stable_obj: Manifest | None) -> int | None:
        """The stable's size while its HPA holds it above the floor on its metrics, else None.

        The HPA's own recommendation decides (metrics read, desiredReplicas above minReplicas): a
        stable above the floor without it was put back there by the HPA acting on the floor before
        the last one (its cache lags a write), which is no load to keep.
        """
        if stable_obj is None:
            return None
        name = m.arm_name(app=self.app, arm="stable")
        path = _path(
            api_version=self.hpa_api_version(),
            kind="HorizontalPodAutoscaler",
            namespace=self.namespace,
            name=name,
        )
        hpa = self._rest.call(
            "GET", path, what=f"get HorizontalPodAutoscaler {self.namespace}/{name}", missing_ok=True
        )
        if not hpa:
            return None
        floor = int(hpa.get("spec", {}).get("minReplicas", 1))
        status = hpa.get("status") or {}
        conditions = status.get("conditions")
        active = conditions is None or any(  # autoscaling/v1 reports no conditions
            c.get("type") == "ScalingActive" and c.get("status") == "True" for c in conditions
        )
        current = _replicas(stable_obj)
        wanted = int(status.get("desiredReplicas") or 0)
        return current if active and wanted > floor and current > floor else None

    def _full_size(self, stable_obj: Manifest | None, canary_obj: Manifest | None) -> int:
        """The stable's size when it serves alone: `total`, or both arms' pods (at most the HPA's ceiling) while the
        HPA holds the stable above its floor."""
        grown = self._hpa_grown(stable_obj)
        if grown is None:
            return self.total
        both = grown + (_replicas(canary_obj) if canary_obj else 0)
        return max(self.total, min(both, self.max_replicas))

    def _deployment_path(self, arm: Arm) -> str:
        """The REST path of one arm's Deployment."""
        name = m.arm_name(app=self.app, arm=arm)
        return _path(api_version="apps/v1", kind="Deployment", namespace=self.namespace, name=name)

    def _get_arm(self, arm: Arm) -> Manifest | None:
        """One arm's Deployment as stored, or None."""
        what = f"get Deployment {self.namespace}/{m.arm_name(app=self.app, arm=arm)}"
        return self._rest.call("GET", self._deployment_path(arm), what=what, missing_ok=True)

    def _require_stable(self, action: str) -> ModelRelease:
        """The stable's release; DeployError when there is none yet."""
        return _release_of(self._stable_obj(action))

    def _stable_obj(self, action: str) -> Manifest:
        """The stable's Deployment as stored; DeployError naming `action` when there is none yet."""
        stable_obj = self._get_arm("stable")
        if stable_obj is None:
            name = m.arm_name(app=self.app, arm="stable")
            raise DeployError(
                f"kubernetes: cannot {action}: no Deployment {self.namespace}/{name} (deploy a stable first)"
            )
        return stable_obj

    def _remove_canary(self) -> None:
        """Delete the canary Deployment and wait until none of its pods is left serving (terminating pods get no traffic)."""
        self._lease_ttl_s = None  # nothing left to keep
        name = m.arm_name(app=self.app, arm="canary")
        self._rest.call(
            "DELETE",
            self._deployment_path("canary"),
            what=f"delete Deployment {self.namespace}/{name}",
            query=[("propagationPolicy", "Background")],
            missing_ok=True,
        )
        selector = f"{m.LABEL_APP}={self.app},{m.LABEL_ARM}=canary"

        def serving() -> str | None:
            pods = self._list_pods(selector)
            live = [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]
            return f"canary pods still serving: {', '.join(live)}" if live else None

        blocker = _poll(serving, timeout_s=self.traffic_timeout_s, poll_s=self.poll_s)
        if blocker is not None:
            raise DeployError(
                f"kubernetes: Deployment {self.namespace}/{name} deleted, but after {self.traffic_timeout_s:g} s {blocker}"
            )

    def _list_pods(self, selector: str) -> list[Manifest]:
        """Pods of the namespace matching a label selector."""
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        data = self._rest.call("GET", path, what=f"list pods {selector}", query=[("labelSelector", selector)])
        return list((data or {}).get("items", []))

    def _wait_ready(self, arm: Arm, *, timeout_s: float, raise_on_timeout: bool = True) -> str | None:
        """Poll one arm's Deployment until rolled out and Ready; the last blocker on timeout (or DeployError)."""
        name = m.arm_name(app=self.app, arm=arm)

        def blocker() -> str | None:
            self._keep_lease()
            obj = self._get_arm(arm)
            return f"Deployment {self.namespace}/{name} is gone" if obj is None else _rollout_blocker(obj)

        last = _poll(blocker, timeout_s=timeout_s, poll_s=self.poll_s)
        if last is not None and raise_on_timeout:
            hint = self._pod_hint(arm)
            raise DeployError(
                f"kubernetes: Deployment {self.namespace}/{name} not ready after {timeout_s:g} s: {last}{hint}"
            )
        return last

    def _pod_hint(self, arm: Arm) -> str:
        """Why the first not-ready pod of an arm is not ready (for error messages), or ''."""
        try:
            pods = self._list_pods(f"{m.LABEL_APP}={self.app},{m.LABEL_ARM}={arm}")
        except DeployError:
            return ""
        for pod in pods:
            status = pod.get("status", {})
            for cond in status.get("conditions", []):
                if cond.get("type") == "Ready" and cond.get("status") != "True":
                    why = cond.get("message") or cond.get("reason") or "not ready"
                    return f" (pod {pod['metadata']['name']}: {why})"
            if status.get("phase") == "Pending" and not status.get("conditions"):
                return f" (pod {pod['metadata']['name']}: Pending, not scheduled)"
        return ""


def _replicas(obj: Manifest) -> int:
    """A Deployment's desired replica count."""
    return int(obj.get("spec", {}).get("replicas", 1))


def _set_weight(obj: Manifest) -> int:
    """The weight annotated on a canary Deployment by the last `set_traffic` (0 when none)."""
    value = (obj["metadata"].get("annotations") or {}).get(m.ANNOTATION_WEIGHT, "0")
    try:
        return int(value)
    except ValueError:
        return 0


def _poll(blocker: Callable[[], str | None], *, timeout_s: float, poll_s: float) -> str | None:
    """Call `blocker` until it returns None or the deadline passes; its last answer (None = done)."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = blocker()
        if last is None or time.monotonic() >= deadline:
            return last
        time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.0)))
