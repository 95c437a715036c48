"""Kubernetes objects for the serving arms, as plain camelCase dicts (what the API server and kubernetes-validate read).

Pure functions, no client: `KubernetesTarget` applies them, `infra/k8s/render.py` writes examples of
them to `infra/k8s/`, and the unit tests validate them against the 1.30 schemas.

Traffic is split by replica ratio: a Service selects `app` only, so both arms' Ready pods share
it and the canary's share is canary pods / all pods, in steps of 100/total percent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from slipway.deploy.base import Arm, ModelRelease, require_digest
from slipway.errors import DeployError

Manifest = dict[str, Any]

CONTAINER = "server"
CONTAINER_PORT = 8080
SERVICE_PORT = 80
RUN_AS = 10001  # the serving image's USER (infra/docker/Dockerfile.serve)
FIELD_MANAGER = "slipway"
DEPLOYER = "slipway-deployer"  # the ServiceAccount and Role of infra/k8s/rbac.yaml

LABEL_APP = "app"
LABEL_ARM = "arm"
LABEL_VERSION = "model-version"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
ANNOTATION_MODEL_NAME = "slipway.io/model-name"
ANNOTATION_MODEL_VERSION = "slipway.io/model-version"
ANNOTATION_WEIGHT = "slipway.io/weight"  # on the canary Deployment: the weight `set_traffic` set last
# on the canary Deployment: when (epoch seconds) its pods' traffic lease runs out, as `hold_canary` last set it
ANNOTATION_LEASE_UNTIL = "slipway.io/canary-lease-until"
LEASE_ENV = "SLIPWAY_SERVE_LEASE_S"  # a canary pod's own lease from its start (the server's `lease_s`)

# The per-pod request rate the stable's HPA scales on: a Pods metric served by custom.metrics.k8s.io
# (on a cluster Prometheus Adapter derives it from each pod's slipway_requests_total; see the README).
REQUEST_RATE_METRIC = "slipway_requests_per_second"

# Newest first: the target applies its HPA with the first of these the server offers.
HPA_API_VERSIONS = ("autoscaling/v2", "autoscaling/v2beta2", "autoscaling/v1")

_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")

# The deployer's Role: exactly the calls KubernetesTarget and PodMetricsSource make (apply = patch,
# creating when missing; GET through the pods' proxy), plus read verbs on what it manages; nothing
# cluster-wide, no secrets, no RBAC.
DEPLOYER_RULES: list[Manifest] = [
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch", "create", "patch"]},
    {
        "apiGroups": ["autoscaling"],
        "resources": ["horizontalpodautoscalers"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    # canary analysis scrapes each serving pod's /metrics through the API server's pod proxy (get), and the
    # release renews each canary pod's traffic lease through it (`POST /lease`: create)
    {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get", "create"]},
    # one release at a time: the release lease (slipway.locks.kubernetes)
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update", "delete"],
    },
]


@dataclass(frozen=True)
class PodResources:
    """Requests and limits of the server container (Kubernetes quantities)."""

    cpu_request: str = "250m"
    memory_request: str = "256Mi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"


@dataclass(frozen=True)
class Autoscaling:
    """What the stable's HPA scales on (autoscaling/v2 and v2beta2; v1 knows CPU only): None turns a metric off."""

    requests_per_pod: float | None = (
        20.0  # average requests/s per stable pod (Pods metric REQUEST_RATE_METRIC)
    )
    cpu_utilization: int | None = 70  # percent of the CPU request (Resource metric, metrics-server)


def require_label_value(value: str, *, what: str) -> str:
    """The value if Kubernetes accepts it as a label value; DeployError naming `what` otherwise."""
    if not _LABEL_VALUE.match(value):
        raise DeployError(
            f"kubernetes: {what} {value!r} is not a valid label value (63 chars of [-A-Za-z0-9_.])"
        )
    return value


def require_dns_label(value: str, *, what: str) -> str:
    """The value if it is an RFC 1123 label (object names, namespaces); DeployError naming `what` otherwise."""
    if not _DNS_LABEL.match(value):
        raise DeployError(f"kubernetes: {what} {value!r} is not a DNS label ([a-z0-9-], at most 63 chars)")
    return value


def arm_name(*, app: str, arm: Arm) -> str:
    """The Deployment name of one arm: `<app>-stable` or `<app>-canary`."""
    return f"{app}-{arm}"


def split_replicas(*, total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas for `weight`% to the canary: round half up, at least 1 each while 0 < weight."""
    if total < 2:
        raise DeployError(f"kubernetes: total replicas {total} < 2 leaves no room for a canary")
    if not 0 <= weight <= 100:
        raise DeployError(f"kubernetes: weight {weight} outside 0..100")
    if weight == 0:
        return total, 0
    canary = min(max((total * weight * 2 + 100) // 200, 1), total - 1)
    return total - canary, canary


def canary_replicas(*, stable: int, weight: int, total: int, most: int) -> int:
    """Pure; canary pods next to `stable` stable pods for `weight`%: the split of `total` while the stable is at
    its floor, else round(stable*w/(100-w)) half up, 1..most (the share stays at the weight when the HPA moved the stable)."""
    floor, canary = split_replicas(total=total, weight=weight)
    if weight == 0 or stable == floor:
        return canary
    rest = max(100 - weight, 1)
    return min(max((2 * stable * weight + rest) // (2 * rest), 1), most)


def weight_of(*, stable: int, canary: int) -> int:
    """The canary's share of all pods in percent (what a Service selecting both arms gives it)."""
    return 0 if stable + canary == 0 else round(100 * canary / (stable + canary))


def _labels(*, app: str, arm: Arm, release: ModelRelease | None = None) -> dict[str, str]:
    """Labels of an arm's objects and pods: app, arm, model-version, managed-by."""
    labels = {LABEL_APP: app, LABEL_ARM: arm, LABEL_MANAGED_BY: FIELD_MANAGER}
    if release is not None:
        labels[LABEL_VERSION] = require_label_value(release.model_version, what="model version")
    return labels


def _container(*, release: ModelRelease, resources: PodResources) -> Manifest:
    """The hardened server container: digest image, probes on 8080, read-only root, no privileges."""
    probe = {"port": "http"}
    container: Manifest = {
        "name": CONTAINER,
        "image": require_digest(
            release.image_ref,
            target="kubernetes",
            what=f"{release.model_name} v{release.model_version}",
        ),
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", **probe},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", **probe},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": resources.cpu_request, "memory": resources.memory_request},
            "limits": {"cpu": resources.cpu_limit, "memory": resources.memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if release.env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(release.env.items())]
    return container


def deployment(
    *,
    app: str,
    namespace: str,
    arm: Arm,
    release: ModelRelease,
    replicas: int,
    resources: PodResources | None = None,
    weight: int | None = None,
) -> Manifest:
    """One arm's Deployment: selector app+arm (immutable), pods labelled with the model version; `weight` annotated when given."""
    labels = _labels(app=app, arm=arm, release=release)
    annotations = {ANNOTATION_MODEL_NAME: release.model_name, ANNOTATION_MODEL_VERSION: release.model_version}
    meta_annotations = dict(annotations)
    if weight is not None:  # on the Deployment only: a new weight never rolls the pods
        meta_annotations[ANNOTATION_WEIGHT] = str(weight)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": arm_name(app=app, arm=arm),
            "namespace": namespace,
            "labels": labels,
            "annotations": meta_annotations,
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {LABEL_APP: app, LABEL_ARM: arm}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                "spec": {
                    "automountServiceAccountToken": False,  # the server never calls the API
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [_container(release=release, resources=resources or PodResources())],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    }


def service(*, app: str, namespace: str) -> Manifest:
    """The Service both arms share: selects `app` only, so traffic follows the replica ratio."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": app,
            "namespace": namespace,
            "labels": {LABEL_APP: app, LABEL_MANAGED_BY: FIELD_MANAGER},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_APP: app},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def hpa(
    *,
    app: str,
    namespace: str,
    api_version: str,
    min_replicas: int,
    max_replicas: int,
    autoscaling: Autoscaling | None = None,
) -> Manifest:
    """The stable's HorizontalPodAutoscaler in `api_version`: per-pod request rate and/or CPU (v1: CPU only)."""
    if api_version not in HPA_API_VERSIONS:
        raise DeployError(f"kubernetes: no HorizontalPodAutoscaler shape for {api_version!r}")
    scale = autoscaling or Autoscaling()
    spec: Manifest = {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": arm_name(app=app, arm="stable"),
        },
        "minReplicas": min_replicas,
        "maxReplicas": max(max_replicas, min_replicas),
    }
    if api_version == "autoscaling/v1":
        spec["targetCPUUtilizationPercentage"] = scale.cpu_utilization or 70
    else:
        spec["metrics"] = _hpa_metrics(scale)
    return {
        "apiVersion": api_version,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": arm_name(app=app, arm="stable"),
            "namespace": namespace,
            "labels": {LABEL_APP: app, LABEL_ARM: "stable", LABEL_MANAGED_BY: FIELD_MANAGER},
        },
        "spec": spec,
    }


def _hpa_metrics(scale: Autoscaling) -> list[Manifest]:
    """The v2/v2beta2 metric list: the request rate per pod (Pods, AverageValue) and CPU (Resource, Utilization)."""
    metrics: list[Manifest] = []
    if scale.requests_per_pod is not None:
        rate: Manifest = {"type": "AverageValue", "averageValue": quantity(scale.requests_per_pod)}
        metric = {"name": REQUEST_RATE_METRIC}
        metrics.append({"type": "Pods", "pods": {"metric": metric, "target": rate}})
    if scale.cpu_utilization is not None:
        cpu: Manifest = {"type": "Utilization", "averageUtilization": scale.cpu_utilization}
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "target": cpu}})
    if not metrics:
        raise DeployError("kubernetes: the stable's HPA needs a request rate or a CPU target")
    return metrics


def quantity(value: float) -> str:
    """Pure; a Kubernetes quantity for a non-negative number: whole units when exact, else milli-units."""
    milli = round(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def rbac(*, namespace: str, name: str = DEPLOYER) -> list[Manifest]:
    """The deployer's ServiceAccount, namespaced Role (DEPLOYER_RULES) and RoleBinding."""

    def meta() -> Manifest:
        return {"name": name, "namespace": namespace, "labels": {LABEL_MANAGED_BY: FIELD_MANAGER}}

    rules = [{k: list(v) for k, v in rule.items()} for rule in DEPLOYER_RULES]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta()},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(), "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def example_manifests(*, namespace: str = "slipway", app: str = "slipway-serve") -> dict[str, list[Manifest]]:
    """What `infra/k8s/` holds, by file: rbac.yaml and rendered/{service,stable,canary,hpa}.yaml (a 10% canary);
    both arms carry the server env a default pipeline config deploys with (prediction records on stdout)."""
    from slipway.config import DeployConfig, PipelineConfig
    from slipway.serving.settings import serve_env

    env = serve_env(PipelineConfig(deploy=DeployConfig(target="kubernetes")))
    repo = "registry.example.com/slipway/slipway-serve"
    stable = ModelRelease(
        model_name="slipway-classifier", model_version="1", image_ref=f"{repo}@sha256:{'1' * 64}", env=env
    )
    canary = ModelRelease(
        model_name="slipway-classifier", model_version="2", image_ref=f"{repo}@sha256:{'2' * 64}", env=env
    )
    n_stable, n_canary = split_replicas(total=10, weight=10)
    return {
        "rbac.yaml": rbac(namespace=namespace),
        "rendered/service.yaml": [service(app=app, namespace=namespace)],
        "rendered/stable.yaml": [
            deployment(app=app, namespace=namespace, arm="stable", release=stable, replicas=n_stable)
        ],
        "rendered/canary.yaml": [
            deployment(
                app=app, namespace=namespace, arm="canary", release=canary, replicas=n_canary, weight=10
            )
        ],
        "rendered/hpa.yaml": [
            hpa(
                app=app,
                namespace=namespace,
                api_version=HPA_API_VERSIONS[0],
                min_replicas=n_stable,
                max_replicas=30,
            )
        ],
    }


class _NoAliasDumper(yaml.SafeDumper):
    """A SafeDumper that writes shared sub-objects out again instead of as &anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(objects: list[Manifest]) -> str:
    """A multi-document YAML stream, keys in the order the builders wrote them."""
    return "---\n".join(yaml.dump(obj, Dumper=_NoAliasDumper, sort_keys=False) for obj in objects)
