"""Releases as Kubernetes Jobs through a Prefect work pool, on the real API server.

Given a Prefect API, the pools and deployments a team registers (`infra/dev/deploy.sh` with
SLIPWAY_WORK_POOL=slipway-k8s: base job templates from infra/work-pools/, deployments from
prefect.yaml), and a Prefect Kubernetes worker (prefect-kubernetes) polling `slipway-k8s` with a
kubeconfig for the API server: when the `release` deployment runs, the worker creates a Job, the Job
controller its pod, and the process kubelet runs that pod's command (`prefect flow-run execute`)
with the Job's env as real processes. The release deploys to the same namespace with the
slipway-deployer ServiceAccount's token: the first is promoted as the stable and its run, pod and
Job complete. When the next release's pod is killed mid-canary, the Job fails, the worker's
observer marks the run Crashed and the canary is left behind; the release after it reconciles that
canary (rolls it back) before its own: no orphan. The GPU pool's Job is created with nvidia.com/gpu
requested and limited, and stays unschedulable here.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from slipway.data.batch_io import write_batch
from slipway.data.generate import make_batch
from slipway.data.reference import Reference
from slipway.deploy.loadgen import LoadGenerator
from tests.integration.conftest import REPO
from tests.integration.k8s.conftest import PROCESS_NAMESPACES, create_namespace
from tests.integration.k8s.control_plane import ControlPlane
from tests.integration.k8s.observe import eventually, items, names, watch_until
from tests.integration.k8s.process_kubelet import ProcessKubelet, ServiceProxy, network_unavailable, wait_for
from tests.integration.k8s.test_rbac import apply_rbac, service_account_token
from tests.integration.k8s.test_release_kubernetes import bundle_finder
from tests.support.servers import stop

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.slow]

APP = "job-serve"
STABLE, CANARY = f"{APP}-stable", f"{APP}-canary"
TOTAL = 4
FLOW_RUN_LABEL = "prefect.io/flow-run-id"
START_S = 120.0
RUN_S = 600.0


@dataclass
class Team:
    """A namespace run by a process kubelet, the Prefect pools and deployments, a Kubernetes worker polling."""

    namespace: str
    kubelet: ProcessKubelet
    admin: httpx.Client
    api_url: str
    cli_env: dict[str, str]  # for prefect CLI subprocesses
    job_env: dict[str, str]  # the release Jobs' env (job variable)
    config: Path
    home: Path
    tmp: Path

    def client(self) -> Any:
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.api_url)

    def run(
        self, deployment: str, *, parameters: dict[str, Any], env: dict[str, str] | None = None
    ) -> uuid.UUID:
        """Create a run of `deployment` whose Job goes to this namespace; its id."""
        with self.client() as client:
            dep = client.read_deployment_by_name(deployment)
            run = client.create_flow_run_from_deployment(
                dep.id,
                parameters=parameters,
                job_variables={"namespace": self.namespace, "env": env if env is not None else self.job_env},
            )
        return uuid.UUID(str(run.id))

    def release(self, data: Path) -> uuid.UUID:
        return self.run("release/release", parameters={"data": str(data), "config_path": str(self.config)})

    def final(self, run_id: uuid.UUID, *, timeout_s: float = RUN_S) -> Any:
        """The flow run once in a final state (AssertionError with its pod's log tail after the timeout)."""
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while time.monotonic() < deadline:  # the API has no watch for states: poll it
                run = client.read_flow_run(run_id)
                if run.state is not None and run.state.is_final():
                    return run
                time.sleep(1.0)
        logs = "\n".join(self.kubelet.log_of(p["metadata"]["name"])[-3000:] for p in self.pods_of(run_id))
        raise AssertionError(f"flow run {run_id} not final after {timeout_s} s ({run.state}):\n{logs}")

    def jobs_of(self, run_id: uuid.UUID) -> list[dict[str, Any]]:
        """The Jobs the worker made for one flow run (it labels them with the run's id)."""
        path = f"/apis/batch/v1/namespaces/{self.namespace}/jobs"
        return items(self.admin, path, labelSelector=f"{FLOW_RUN_LABEL}={run_id}")

    def finished_job(self, run_id: uuid.UUID) -> dict[str, Any]:
        """The flow run's one Job once the Job controller has counted its pod as succeeded or failed."""

        def finished(jobs: list[dict[str, Any]]) -> bool:
            return len(jobs) == 1 and bool(
                jobs[0].get("status", {}).get("completionTime") or jobs[0].get("status", {}).get("failed")
            )

        path = f"/apis/batch/v1/namespaces/{self.namespace}/jobs"
        (job,) = watch_until(
            self.admin,
            path,
            finished,
            timeout_s=START_S,
            what=f"the Job of {run_id} to finish",
            labelSelector=f"{FLOW_RUN_LABEL}={run_id}",
        )
        return job

    def pods_of(self, run_id: uuid.UUID) -> list[dict[str, Any]]:
        """The pods of one flow run's Jobs (the label is copied onto the pod template)."""
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        return items(self.admin, path, labelSelector=f"{FLOW_RUN_LABEL}={run_id}")

    def serving_arms(self) -> list[str]:
        """The arm of every live serving pod, sorted."""
        pods = items(self.admin, f"/api/v1/namespaces/{self.namespace}/pods", labelSelector=f"app={APP}")
        return sorted(
            p["metadata"]["labels"]["arm"] for p in pods if not p["metadata"].get("deletionTimestamp")
        )

    def report(self, run_id: uuid.UUID) -> dict[str, Any]:
        """The release's JSON report (reports/release-*.json under its SLIPWAY_HOME) of one flow run."""
        for path in sorted((self.home / "reports").glob("release-*.json")):
            doc: dict[str, Any] = json.loads(path.read_text())
            if doc.get("flow_run_id") == str(run_id):
                return doc
        raise AssertionError(f"no release report for flow run {run_id}")


def _release_config(path: Path, *, namespace: str, kubeconfig: Path) -> Path:
    """The repo's slipway.yaml on the kubernetes target, with a small training and bench (seconds, not minutes)."""
    raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
    raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
    raw["training"]["params"] |= {"epochs": 5}
    raw["optimize"] |= {
        "candidates": ["fp32"],
        "bench": {"threads": 1, "batches": [1], "warmup": 2, "rounds": 2, "iterations": 5, "load_repeats": 1},
    }
    raw["deploy"] = {
        "target": "kubernetes",
        "ready_timeout_s": 120,
        "kubernetes": {
            "namespace": namespace,
            "app": APP,
            "kubeconfig": str(kubeconfig),
            "replicas": TOTAL,
            "rollout_timeout_s": 120,
            "request_timeout_s": 5,
        },
    }
    raw["canary"] |= {
        "shadow_intervals": 0,
        "steps": [50, 100],  # one live step: enough to be killed in, and to promote
        "interval_s": 4,
        "step_min_samples": 20,
        "min_samples_per_arm": 60,
        "shift_min_samples": 30,
        "readiness_deadline_s": 120,
        "deadline_s": 360,
    }
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def team(
    control_plane: ControlPlane,
    admin: httpx.Client,
    prefect_api: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Team]:
    reason = network_unavailable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("k8s-jobs")
    namespace = f"p-{uuid.uuid4().hex[:8]}"
    PROCESS_NAMESPACES.add(namespace)
    create_namespace(admin, namespace)
    apply_rbac(admin, namespace=namespace)  # the pool's pods run as slipway-deployer, which must exist
    home = tmp / "home"
    kubelet = ProcessKubelet(
        control_plane.http(), namespace=namespace, bundles=bundle_finder(home), workdir=tmp
    )
    kubelet.start()
    # the release talks to the API server as the deployer (in a cluster: the pod's own ServiceAccount token)
    token = service_account_token(admin, "slipway-deployer", namespace=namespace)
    kubeconfig = control_plane.write_kubeconfig(tmp / "deployer.kubeconfig", token=token, namespace=namespace)
    config = _release_config(tmp / "slipway.yaml", namespace=namespace, kubeconfig=kubeconfig)
    drop = ("PREFECT_", "SLIPWAY_", "MLFLOW_TRACKING_URI", "KUBECONFIG")
    cli_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(drop)},
        "BIN": str(REPO / ".venv" / "bin"),
        "PREFECT_API_URL": prefect_api,
        "PREFECT_HOME": str(tmp / "cli-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    job_env = {
        "SLIPWAY_HOME": str(home),
        "SLIPWAY_IMAGE_BUILDER": "fake",
        "SLIPWAY_IMAGE_REGISTRY": "127.0.0.1:5000/slipway",
        "GX_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    # What a team runs once: pools + deployments, the release family on the Kubernetes pool
    deploy = subprocess.run(
        ["bash", "infra/dev/deploy.sh"],
        cwd=REPO,
        env={
            **cli_env,
            "SLIPWAY_WORK_POOL": "slipway-k8s",
            "SLIPWAY_REPO_DIR": str(REPO),  # the image's checkout; the process kubelet runs this one
            "SLIPWAY_FLOW_IMAGE": "registry.example/slipway-flows@sha256:" + "f" * 64,
            "SLIPWAY_GPU_IMAGE": "registry.example/slipway-gpu@sha256:" + "e" * 64,
        },
        capture_output=True,
        text=True,
        timeout=START_S * 3,
    )
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    worker_log = tmp / "worker.log"
    worker = subprocess.Popen(
        [
            str(REPO / ".venv" / "bin" / "prefect"),
            "worker",
            "start",
            "--pool",
            "slipway-k8s",
            "--type",
            "kubernetes",
        ],
        cwd=tmp,
        env={
            **cli_env,
            "KUBECONFIG": str(
                control_plane.write_kubeconfig(tmp / "worker.kubeconfig", token=control_plane.admin_token)
            ),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES": namespace,
        },
        stdout=worker_log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield Team(
            namespace=namespace,
            kubelet=kubelet,
            admin=admin,
            api_url=prefect_api,
            cli_env=cli_env,
            job_env=job_env,
            config=config,
            home=home,
            tmp=tmp,
        )
    finally:
        stop(worker)
        kubelet.stop()
        admin.delete(f"/api/v1/namespaces/{namespace}")
    assert not kubelet.errors, f"process kubelet errors: {kubelet.errors[:3]}"


def _batch(team: Team, ref: Reference, seed: int) -> Path:
    path = team.tmp / f"batch-{seed}.csv"
    write_batch(make_batch(ref, rows=300, seed=seed), path)
    return path


def _seconds(start: str, end: str) -> float:
    return (
        datetime.fromisoformat(end.replace("Z", "+00:00"))
        - datetime.fromisoformat(start.replace("Z", "+00:00"))
    ).total_seconds()


def _artifact_keys(team: Team, run_id: uuid.UUID) -> set[str]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with team.client() as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key for a in arts if a.key}


def test_releases_run_as_kubernetes_jobs_and_a_killed_one_is_reconciled_by_the_next(
    team: Team, admin: httpx.Client, ref: Reference
) -> None:
    ns = team.namespace
    # When the first release runs: a Job, its pod the flow-run command, the champion deployed as the stable
    first = team.release(_batch(team, ref, 900))
    run = team.final(first)
    assert run.state.name == "Completed", run.state.message
    job = team.finished_job(first)
    (pod,) = team.pods_of(first)
    assert job["status"].get("succeeded") == 1
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"]["conditions"])
    assert pod["status"]["phase"] == "Succeeded"
    container = pod["spec"]["containers"][0]
    assert container["args"] == ["prefect", "flow-run", "execute"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PREFECT__FLOW_RUN_ID"] == str(first) and env["SLIPWAY_HOME"] == str(team.home)
    assert pod["spec"]["serviceAccountName"] == "slipway-deployer"
    assert {
        "validation-report",
        "quality-gate",
        "registration",
        "image",
        "release-decision",
    } <= _artifact_keys(team, first)
    assert team.report(first)["decision"] == "promoted"
    assert names(admin, ns)["Deployment"] == {STABLE}
    job_s = _seconds(job["status"]["startTime"], job["status"]["completionTime"])
    run_s = (run.end_time - run.start_time).total_seconds()

    with ServiceProxy(admin, namespace=ns, service=APP, seed=9) as proxy:
        wait_for(lambda: len(proxy.addresses) == TOTAL, timeout_s=60, what="the stable's endpoints")
        load = LoadGenerator(url=proxy.url, rows=ref.holdout_xy()[0], rate_rps=40.0, seed=10)
        load.start()
        try:
            # When the next release's pod is killed mid-canary (SIGKILL: nothing in it can clean up)
            second = team.release(_batch(team, ref, 950))

            def canary_live() -> bool:
                r = admin.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{CANARY}")
                weight = (
                    (r.json()["metadata"].get("annotations") or {}).get("slipway.io/weight")
                    if r.status_code == 200
                    else None
                )
                return weight not in (None, "0")

            wait_for(canary_live, timeout_s=RUN_S, what="the second release's canary taking traffic")
            (killed,) = team.pods_of(second)
            team.kubelet.kill(killed["metadata"]["name"])

            # Then its Job fails, the run is Crashed, and the canary is left behind
            crashed = team.final(second, timeout_s=START_S)
            assert crashed.state.name == "Crashed", crashed.state
            failed_job = team.finished_job(second)
            assert failed_job["status"].get("failed") == 1 and not failed_job["status"].get("succeeded")
            assert CANARY in names(admin, ns)["Deployment"]

            # When the release after it runs, it rolls that canary back before its own
            third = team.release(_batch(team, ref, 960))
            done = team.final(third)
        finally:
            load.stop(timeout_s=15)
    # it ran to its end: promoted (Completed) or, its own canary judged on this loaded machine, rolled back
    assert (done.state.name, team.report(third)["decision"]) in (
        ("Completed", "promoted"),
        ("RolledBack", "rolled_back"),
    ), done.state.message
    result = team.report(third)
    assert result["deploy"]["reconciled_orphan"] is True, result["deploy"]
    assert names(admin, ns)["Deployment"] == {STABLE}  # no canary left: neither the orphan nor the third's
    eventually(team.serving_arms, ["stable"] * TOTAL, timeout_s=60)
    print(f"\nrelease as a Kubernetes Job: Job start to Complete {job_s:.0f} s (flow run {run_s:.1f} s)")


def test_the_gpu_pools_job_requests_a_gpu_and_waits_for_a_gpu_node(team: Team, admin: httpx.Client) -> None:
    # When an optimize-gpu run is picked up by a worker of the GPU pool (once)
    run_id = team.run("optimize-gpu/optimize-gpu", parameters={"model_name": "m", "version": "1"}, env={})
    kubeconfig = team.tmp / "worker.kubeconfig"
    once = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "prefect"),
            "worker",
            "start",
            "--pool",
            "slipway-gpu-k8s",
            "--type",
            "kubernetes",
            "--run-once",
        ],
        cwd=team.tmp,
        env={
            **team.cli_env,
            "KUBECONFIG": str(kubeconfig),
            "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_ENABLED": "false",
        },
        capture_output=True,
        text=True,
        timeout=START_S,
    )
    assert once.returncode == 0, once.stdout[-3000:] + once.stderr[-3000:]
    # Then its Job exists with the GPU request and limit, the GPU node selector and toleration
    (job,) = team.jobs_of(run_id)
    pod_spec = job["spec"]["template"]["spec"]
    resources = pod_spec["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == "1" and resources["limits"]["nvidia.com/gpu"] == "1"
    assert pod_spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod_spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod_spec["containers"][0]["image"].startswith("registry.example/slipway-gpu@sha256:")

    # and its pod cannot be scheduled here (no node has a GPU), as a scheduler would report
    def unschedulable() -> str:
        pods = team.pods_of(run_id)
        conditions = pods[0]["status"].get("conditions") or [] if pods else []
        return next((c.get("message", "") for c in conditions if c.get("reason") == "Unschedulable"), "")

    eventually(unschedulable, "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.", timeout_s=60)
    from prefect.states import Cancelled

    with team.client() as client:  # it cannot run here: leave nothing pending
        client.set_flow_run_state(run_id, state=Cancelled(), force=True)
    admin.delete(
        f"/apis/batch/v1/namespaces/{team.namespace}/jobs/{job['metadata']['name']}",
        params={"propagationPolicy": "Background"},
    )
