"""A test-only fake kubelet (what upstream kwok does): pods of a real API server become Running and Ready.

There is no scheduler and no container runtime here. FakeKubelet registers a Node, then every
tick: binds unbound pods to it, reports bound pods Running with a pod IP and Ready conditions
(Ready=False for pods whose server env sets SLIPWAY_SERVE_FAULT_NEVER_READY=true, as the real
server's /readyz would), and finishes the deletion of terminating pods (the kubelet's last word).
Controllers, Endpoints and Deployment status then behave as on a cluster.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
from typing import Any

import httpx

NEVER_READY_ENV = "SLIPWAY_SERVE_FAULT_NEVER_READY"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wants_ready(pod: dict[str, Any]) -> bool:
    """False when any container's env asks the server never to be ready."""
    for container in pod["spec"]["containers"]:
        for env in container.get("env") or []:
            if env["name"] == NEVER_READY_ENV and str(env.get("value", "")).lower() in ("true", "1"):
                return False
    return True


def running_status(
    pod: dict[str, Any], *, ip: str, host_ip: str, ready: bool, restarts: int, not_ready: str
) -> dict[str, Any]:
    """A Running pod status as a kubelet reports it: IPs, conditions, running containers (ready or not)."""
    now, flag = _now(), "True" if ready else "False"
    why = {} if ready else {"reason": "ContainersNotReady", "message": not_ready}
    return {
        "status": {
            "phase": "Running",
            "hostIP": host_ip,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now, **why},
                {"type": "Ready", "status": flag, "lastTransitionTime": now, **why},
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": c["image"],
                    "ready": ready,
                    "started": True,
                    "restartCount": restarts,
                    "state": {"running": {"startedAt": now}},
                }
                for c in pod["spec"]["containers"]
            ],
        }
    }


def merge_patch(http: httpx.Client, path: str, body: dict[str, Any]) -> None:
    """PATCH a JSON merge patch; a pod that is gone (404) or changed meanwhile (409) is not an error."""
    r = http.patch(path, json=body, headers={"Content-Type": "application/merge-patch+json"})
    if r.status_code not in (200, 404, 409):
        raise RuntimeError(f"PATCH {path}: {r.status_code} {r.text[:300]}")


class FakeKubelet:
    """Binds, starts and deletes the pods of a real API server, in a background thread."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        node: str = "fake-node-1",
        tick_s: float = 0.1,
        skip_namespaces: set[str] | None = None,
    ) -> None:
        self.http = http
        # namespaces whose pods another kubelet runs (process_kubelet.py); shared, so it may grow later
        self.skip_namespaces = skip_namespaces if skip_namespaces is not None else set()
        self.node = node
        self.tick_s = tick_s
        self.errors: list[str] = []
        self._ips = iter(ipaddress.ip_network("10.244.0.0/16").hosts())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-kubelet", daemon=True)

    def start(self) -> None:
        """Register the Node (Ready) and start the loop."""
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.node, "labels": {"type": "fake"}},
        }
        r = self.http.post("/api/v1/nodes", json=node)
        if r.status_code not in (201, 409):
            raise RuntimeError(f"register node: {r.status_code} {r.text}")
        status = {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "FakeKubelet", "lastHeartbeatTime": _now()}
                ],
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
                "addresses": [{"type": "InternalIP", "address": "10.240.0.1"}],
            }
        }
        self._patch(f"/api/v1/nodes/{self.node}/status", status)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # keep the kubelet alive; tests read `errors`
                self.errors.append(repr(exc))
            self._stop.wait(self.tick_s)

    def tick(self) -> None:
        """One pass over every pod of the cluster."""
        for pod in self.http.get("/api/v1/pods").json().get("items", []):
            meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
            if meta["namespace"] in self.skip_namespaces:
                continue
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
            if meta.get("deletionTimestamp"):
                if spec.get("nodeName"):
                    self.http.delete(path, params={"gracePeriodSeconds": "0"})
            elif not spec.get("nodeName"):
                binding = {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": meta["name"]},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
                }
                self.http.post(f"{path}/binding", json=binding)
            elif not self._is_reported(pod):
                self._patch(
                    f"{path}/status", self._status(pod, ip=status.get("podIP") or str(next(self._ips)))
                )

    def _is_reported(self, pod: dict[str, Any]) -> bool:
        """Whether the pod already shows the status this kubelet reports."""
        status = pod.get("status", {})
        ready = next((c["status"] for c in status.get("conditions", []) if c["type"] == "Ready"), None)
        return status.get("phase") == "Running" and ready == ("True" if wants_ready(pod) else "False")

    def _status(self, pod: dict[str, Any], *, ip: str) -> dict[str, Any]:
        """A Running pod status: IPs, conditions, running containers (ready or not)."""
        return running_status(
            pod,
            ip=ip,
            host_ip="10.240.0.1",
            ready=wants_ready(pod),
            restarts=0,
            not_ready="readiness probe failed: GET /readyz: 503",
        )

    def _patch(self, path: str, body: dict[str, Any]) -> None:
        merge_patch(self.http, path, body)
