"""Base job templates of Slipway's Kubernetes work pools: prefect-kubernetes' default plus what each pool adds.

Pure functions over the default template of the pinned prefect-kubernetes (`default_template`
imports it, so only where it is installed); `infra/work-pools/render.py` writes the results to
`infra/work-pools/` and `tests/unit/test_work_pools.py` fails when the files drift from them.

- `kubernetes.json`, pool `slipway-k8s` (release, retrain, rollback as Kubernetes Jobs): namespace
  `slipway`, the pod runs as ServiceAccount `slipway-deployer` (infra/k8s/rbac.yaml's Role, so the
  release's kubernetes target works in-cluster), never retried by Kubernetes (backoffLimit 0: a
  second pod would start the release over next to a half-done canary; the next run reconciles it
  instead), killed after `active_deadline_seconds` (the same reconcile cleans up after it), and the
  finished Job kept for a day (clusters with the TTL controller; 1.20 ignores the field).
- `gpu-kubernetes.json`, pool `slipway-gpu-k8s` (optimize-gpu): `gpu_count` nvidia.com/gpu requested
  and limited, a GPU node selector and the GPU taint's toleration.
"""

from __future__ import annotations

import copy
from typing import Any

from slipway.deploy import k8s_manifests as m

Template = dict[str, Any]

FLOW_POOL, GPU_POOL = "slipway-k8s", "slipway-gpu-k8s"
NAMESPACE = "slipway"  # where infra/k8s/rbac.yaml puts the deployer
GPU = "nvidia.com/gpu"
FLOW_DEADLINE_S = 4 * 3600  # a release's canary may take an hour (deadline_s), training more


def default_template() -> Template:
    """prefect-kubernetes' default base job template (the installed, pinned version's)."""
    from prefect_kubernetes.worker import KubernetesWorker

    return dict(KubernetesWorker.get_default_base_job_template())


def _variable(template: Template, name: str, **fields: Any) -> None:
    """Set fields of one variable's schema (creating it)."""
    template["variables"]["properties"].setdefault(name, {}).update(fields)


def flow_template(default: Template) -> Template:
    """Pure; the `slipway-k8s` pool's template: the release's namespace, ServiceAccount and Job limits as defaults."""
    template = copy.deepcopy(default)
    _variable(template, "namespace", default=NAMESPACE)
    _variable(
        template,
        "service_account_name",
        default=m.DEPLOYER,
        description="ServiceAccount of the flow-run pod: slipway-deployer (infra/k8s/rbac.yaml) lets the "
        "release's kubernetes target apply its Deployments in-cluster.",
    )
    _variable(
        template,
        "backoff_limit",
        default=0,
        maximum=0,
        description="Always 0: Kubernetes never starts a release over; the next run reconciles a killed one.",
    )
    _variable(template, "finished_job_ttl", default=86400)
    _variable(
        template,
        "active_deadline_seconds",
        title="Active Deadline Seconds",
        description="Kubernetes kills a flow run still running after this long; the next release rolls "
        "back the canary it left.",
        default=FLOW_DEADLINE_S,
        type="integer",
        minimum=60,
    )
    spec = template["job_configuration"]["job_manifest"]["spec"]
    spec["activeDeadlineSeconds"] = "{{ active_deadline_seconds }}"
    return template


def gpu_template(default: Template) -> Template:
    """Pure; the `slipway-gpu-k8s` pool's template: GPUs requested and limited, GPU nodes selected and tolerated."""
    template = copy.deepcopy(default)
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    for kind in ("requests", "limits"):
        resources[kind][GPU] = "{{ gpu_count }}"
    pod["nodeSelector"] = "{{ node_selector }}"
    pod["tolerations"] = "{{ tolerations }}"
    _variable(
        template,
        "gpu_count",
        title="GPUs",
        description=f"{GPU} requested and limited on the flow-run container (needs the NVIDIA device plugin).",
        default=1,
        minimum=1,
        type="integer",
    )
    _variable(
        template,
        "node_selector",
        title="Node Selector",
        description="Node labels the flow-run pod must match. Default: the label NVIDIA GPU feature "
        "discovery sets on GPU nodes.",
        default={f"{GPU}.present": "true"},
        type="object",
        additionalProperties={"type": "string"},
    )
    _variable(
        template,
        "tolerations",
        title="Tolerations",
        description=f"Pod tolerations. Default: tolerate the usual {GPU} NoSchedule taint on GPU nodes.",
        default=[{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
        type="array",
        items={"type": "object"},
    )
    return template


def templates(default: Template | None = None) -> dict[str, Template]:
    """What `infra/work-pools/` holds, by file name (from `default`, else the installed prefect-kubernetes')."""
    base = default if default is not None else default_template()
    return {"kubernetes.json": flow_template(base), "gpu-kubernetes.json": gpu_template(base)}
