"""The Kubernetes work pools' base job templates: in sync with the code, and the Jobs they render carry what they promise.

Rendered with prefect-kubernetes' own job configuration (what the worker does before it creates the
Job), so a template that Prefect cannot render, or that loses a field on the way, fails here; the
integration test (tests/integration/k8s/test_prefect_kubernetes_worker.py) sends them to a real API server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from slipway.deploy import k8s_work_pools as pools

INFRA = Path(__file__).resolve().parents[2] / "infra" / "work-pools"


class NoAPI:
    """Stands in for the Prefect client: these templates reference no blocks or variables, so it is never asked."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the template needed the Prefect API ({name})")


def render(template: dict[str, Any], values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Job manifest the worker builds from a template and job variables."""
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    build = KubernetesWorkerJobConfiguration.from_template_and_values(template, values or {}, client=NoAPI())
    return dict(asyncio.run(build).job_manifest)


def test_infra_work_pool_files_are_what_the_code_renders() -> None:
    for name, template in pools.templates().items():
        committed = json.loads((INFRA / name).read_text())
        assert committed == template, (
            f"infra/work-pools/{name} is stale: run `.venv/bin/python infra/work-pools/render.py`"
        )


def test_the_flow_pool_runs_a_release_once_as_the_deployer_in_its_namespace() -> None:
    job = render(json.loads((INFRA / "kubernetes.json").read_text()))
    spec = job["spec"]
    pod = spec["template"]["spec"]
    assert job["metadata"]["namespace"] == "slipway"
    assert pod["serviceAccountName"] == "slipway-deployer" and pod["restartPolicy"] == "Never"
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == pools.FLOW_DEADLINE_S
    assert spec["ttlSecondsAfterFinished"] == 86400


@pytest.mark.parametrize("gpus", [None, 2])
def test_the_gpu_pool_requests_and_limits_gpus_on_gpu_nodes(gpus: int | None) -> None:
    values = {} if gpus is None else {"gpu_count": gpus}
    job = render(json.loads((INFRA / "gpu-kubernetes.json").read_text()), values)
    pod = job["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    want = gpus or 1
    assert resources["requests"][pools.GPU] == want and resources["limits"][pools.GPU] == want
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": pools.GPU, "operator": "Exists", "effect": "NoSchedule"}]
