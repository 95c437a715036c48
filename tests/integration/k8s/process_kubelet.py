"""A test-only kubelet that RUNS pods: each pod of its namespace is a real process on this machine.

The fake kubelet (fake_kubelet.py) only reports pods Ready. Canary analysis on Kubernetes reads every
pod's /metrics through the API server's pod proxy, which refuses loopback pod IPs; so this kubelet
gives each pod its own non-loopback address (10.77.X.N/32 on a dummy interface, or on `lo` where the
kernel has no dummy driver: needs root and `ip`), starts the server of the pod's image (a bundle
folder registered per image digest) bound to that address and the container port with the pod's
env, and reports Ready from the server's own /readyz as the pod's readinessProbe says: until the pod is
first Ready it is probed every tick; after that every `periodSeconds` (k8s default 10), and it turns not Ready
after `failureThreshold` (default 3) failed probes in a row, each failing past `timeoutSeconds` (default 1). So a
server starved of CPU for a moment on a loaded test machine stays Ready, as it would on a real node. A server
that exits is restarted (restartCount + 1); a
terminating pod's process gets SIGTERM, then the pod is deleted.

A pod with `restartPolicy: Never` (a Job's) runs its container's command and args instead (the
executable looked up in this Python's bin folder first, so `prefect` is the venv's), with only the
container's env over PATH/HOME/LANG, in a folder of its own; it is Ready while it runs, and its exit
is reported as Succeeded (0) or Failed with the container's exit code, never restarted. A pod asking
for what this node lacks (an extended resource such as nvidia.com/gpu, or a node selector) is not
bound: it stays Pending with PodScheduled False, Unschedulable, as the scheduler would leave it.

`ServiceProxy` stands in for kube-proxy: an HTTP server on 127.0.0.1 that sends each request to a
random ready endpoint address of a Service, so load spreads over the arms by their pod counts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from slipway.deploy.router import UPSTREAM_KEEPALIVE_S
from tests.integration.k8s.fake_kubelet import merge_patch, running_status

SERVER_PORT = 8080


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def network_unavailable() -> str | None:
    """Why pod addresses cannot be added here (None when they can): root and `ip` are needed."""
    if os.geteuid() != 0:
        return "the process kubelet adds pod IPs to a network interface: needs root"
    if shutil.which("ip") is None:
        return "the process kubelet needs `ip` (iproute2) to add pod IPs"
    return None


class PodNetwork:
    """Non-loopback /32 addresses for pods, on a dummy interface (or `lo`); all removed by `close()`."""

    def __init__(self) -> None:
        self.subnet = f"10.77.{random.Random(os.getpid()).randint(1, 250)}"
        self.device = f"slipway{os.getpid() % 100000}"
        made = subprocess.run(
            ["ip", "link", "add", self.device, "type", "dummy"], capture_output=True, text=True
        )
        self.own_device = made.returncode == 0
        if self.own_device:
            subprocess.run(["ip", "link", "set", self.device, "up"], check=True, capture_output=True)
        else:
            self.device = "lo"  # no dummy driver (containers): a /32 on lo is still not a loopback IP
        self._free = [f"{self.subnet}.{n}" for n in range(2, 255)]
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def acquire(self) -> str:
        """A fresh address, added to the device."""
        with self._lock:
            ip = self._free.pop(0)
            subprocess.run(
                ["ip", "addr", "add", f"{ip}/32", "dev", self.device], check=True, capture_output=True
            )
            self._used.add(ip)
            return ip

    def release(self, ip: str) -> None:
        """Remove one address (idempotent)."""
        with self._lock:
            if ip in self._used:
                subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", self.device], capture_output=True)
                self._used.discard(ip)

    def close(self) -> None:
        """Remove every address, and the dummy device if this made it."""
        for ip in list(self._used):
            self.release(ip)
        if self.own_device:
            subprocess.run(["ip", "link", "del", self.device], capture_output=True)


class Probe:
    """A container's readinessProbe timing (Kubernetes defaults where the manifest is silent)."""

    def __init__(self, spec: Mapping[str, Any] | None = None) -> None:
        spec = spec or {}
        self.period_s = float(spec.get("periodSeconds", 10))
        self.timeout_s = float(spec.get("timeoutSeconds", 1))
        self.failure_threshold = int(spec.get("failureThreshold", 3))


@dataclass
class _Pod:
    """One running pod: its address, process, restarts and what was last reported."""

    name: str
    ip: str
    proc: subprocess.Popen[bytes]
    restarts: int = 0
    failures: int = 0
    reported: bool | None = None  # last Ready value patched into the status
    probe: Probe = field(default_factory=lambda: Probe())
    next_probe: float = 0.0  # monotonic time of the next readiness probe once Ready
    job: bool = False  # restartPolicy Never: runs once, its exit is the pod's end
    started_at: str = ""
    finished: int | None = None  # the exit code reported (job pods)


class ProcessKubelet:
    """Binds and RUNS the pods of one namespace as local server processes, in a background thread."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        namespace: str,
        bundles: Mapping[str, Path] | Callable[[dict[str, Any]], Path | None],
        workdir: Path,
        tick_s: float = 0.2,
    ) -> None:
        self.http = http
        self.namespace = namespace
        # image reference -> bundle folder, or a function of the pod giving its bundle (None: unknown)
        self.bundles = bundles
        self.workdir = workdir
        self.node = f"process-node-{namespace}"
        self.tick_s = tick_s
        self.errors: list[str] = []
        self.pods: dict[str, _Pod] = {}  # by uid
        self.net = PodNetwork()
        self._probe = httpx.Client(timeout=1.0, trust_env=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-kubelet", daemon=True)

    def start(self) -> None:
        """Register the Node (Ready) and start the loop."""
        r = self.http.post(
            "/api/v1/nodes", json={"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node}}
        )
        if r.status_code not in (201, 409):
            raise RuntimeError(f"register node: {r.status_code} {r.text}")
        status = {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "ProcessKubelet",
                        "lastHeartbeatTime": _now(),
                    }
                ],
                "capacity": {"cpu": "16", "memory": "64Gi", "pods": "100"},
                "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "100"},
            }
        }
        self._patch(f"/api/v1/nodes/{self.node}/status", status)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop, every server process, and remove the pod addresses."""
        self._stop.set()
        self._thread.join(timeout=15)
        for pod in list(self.pods.values()):
            self._kill(pod)
        self.pods.clear()
        self.net.close()
        self._probe.close()
        with contextlib.suppress(httpx.HTTPError):
            self.http.delete(f"/api/v1/nodes/{self.node}")

    def pod_named(self, name: str) -> _Pod:
        """The running pod with this name (KeyError if none)."""
        return next(p for p in self.pods.values() if p.name == name)

    # --- the loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # keep going; tests read `errors`
                self.errors.append(repr(exc))
            self._stop.wait(self.tick_s)

    def tick(self) -> None:
        """One pass over the namespace's pods: bind, start, probe, restart, stop."""
        listed = self.http.get(f"/api/v1/namespaces/{self.namespace}/pods").json().get("items", [])
        live: set[str] = set()
        for pod in listed:
            meta, spec = pod["metadata"], pod["spec"]
            uid, path = meta["uid"], f"/api/v1/namespaces/{self.namespace}/pods/{meta['name']}"
            if meta.get("deletionTimestamp"):
                if uid in self.pods:
                    self._kill(self.pods.pop(uid))
                self.http.delete(path, params={"gracePeriodSeconds": "0"})
                continue
            live.add(uid)
            if not spec.get("nodeName"):
                unfit = unschedulable(pod)
                if unfit:
                    if not _reported_unschedulable(pod):
                        self._patch(f"{path}/status", _pending_status(unfit))
                    continue
                binding = {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": meta["name"]},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
                }
                self.http.post(f"{path}/binding", json=binding)
                continue
            running = self.pods.get(uid)
            if running is None:
                running = self.pods[uid] = self._start(pod)
            if running.job:
                self._tick_job(pod, running, path)
                continue
            if running.proc.poll() is not None:  # crashed: restart like a kubelet would
                running.proc = self._spawn(pod, running.ip)
                running.restarts += 1
                running.failures, running.reported = 0, None
            ready = self._ready(running)
            if ready != running.reported:
                self._patch(f"{path}/status", self._status(pod, running, ready=ready))
                running.reported = ready
        for uid in set(self.pods) - live:  # deleted outright
            self._kill(self.pods.pop(uid))

    def _ready(self, pod: _Pod) -> bool:
        """The server's /readyz: probed every tick until first Ready, then every period; Ready until
        failureThreshold probes in a row failed."""
        now = time.monotonic()
        if pod.reported and now < pod.next_probe:
            return True
        pod.next_probe = now + pod.probe.period_s
        try:
            url = f"http://{pod.ip}:{SERVER_PORT}/readyz"
            ok = self._probe.get(url, timeout=pod.probe.timeout_s).status_code == 200
        except httpx.HTTPError:
            ok = False
        pod.failures = 0 if ok else pod.failures + 1
        if pod.reported:
            return pod.failures < pod.probe.failure_threshold
        return ok

    def _tick_job(self, pod: dict[str, Any], running: _Pod, path: str) -> None:
        """A job pod: Running and Ready while its process runs, then Succeeded/Failed with its exit code, once."""
        code = running.proc.poll()
        if code is None:
            if running.reported is not True:
                self._patch(f"{path}/status", self._status(pod, running, ready=True))
                running.reported = True
        elif running.finished is None:
            exit_code = code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a runtime reports
            self._patch(f"{path}/status", _finished_status(pod, running, exit_code=exit_code))
            running.finished = exit_code
            self.net.release(running.ip)

    def _start(self, pod: dict[str, Any]) -> _Pod:
        ip = self.net.acquire()
        name = pod["metadata"]["name"]
        if pod["spec"].get("restartPolicy") == "Never":
            return _Pod(name=name, ip=ip, proc=self._run_command(pod), job=True, started_at=_now())
        probe = Probe(pod["spec"]["containers"][0].get("readinessProbe"))
        return _Pod(name=name, ip=ip, proc=self._spawn(pod, ip), started_at=_now(), probe=probe)

    def _run_command(self, pod: dict[str, Any]) -> subprocess.Popen[bytes]:
        """The container's command + args as a process: only the container's env (over PATH, HOME, LANG), own folder."""
        container = pod["spec"]["containers"][0]
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        if not argv:
            raise RuntimeError(
                f"pod {pod['metadata']['name']}: no command or args to run (an image entrypoint)"
            )
        local = Path(sys.executable).parent / argv[0]
        if local.is_file():
            argv[0] = str(local)
        folder = self.workdir / pod["metadata"]["name"]
        folder.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder), "LANG": "C.UTF-8"}
        env.update({e["name"]: e.get("value", "") for e in container.get("env") or []})
        log = (self.workdir / f"{pod['metadata']['name']}.log").open("ab")
        try:
            return subprocess.Popen(
                argv, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()

    def _spawn(self, pod: dict[str, Any], ip: str) -> subprocess.Popen[bytes]:
        """`python -m slipway.serving` for the pod's image, with its env, on ip:8080."""
        container = pod["spec"]["containers"][0]
        bundles = self.bundles
        bundle = bundles(pod) if callable(bundles) else bundles.get(container["image"])
        if bundle is None:
            raise RuntimeError(f"no bundle registered for image {container['image']}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_SERVE_")}
        env.update({e["name"]: e.get("value", "") for e in container.get("env") or []})
        env.update(
            SLIPWAY_SERVE_MODEL=str(bundle),
            SLIPWAY_SERVE_HOST=ip,
            SLIPWAY_SERVE_PORT=str(SERVER_PORT),
            SLIPWAY_SERVE_ORT_THREADS="1",
        )
        log = (self.workdir / f"{pod['metadata']['name']}.log").open("ab")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "slipway.serving"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()

    def log_of(self, name: str) -> str:
        """What a pod's process wrote (stdout and stderr)."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, name: str) -> None:
        """SIGKILL every process of the running pod `name`, children included (an OOM kill or a lost node)."""
        pod = self.pod_named(name)
        for pid in [pod.proc.pid, *_descendants(pod.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _kill(self, pod: _Pod) -> None:
        """Stop a pod as a kubelet does: SIGTERM to its first process, then SIGKILL to all of them after 10 s."""
        if pod.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                pod.proc.send_signal(signal.SIGCONT)  # a test may have paused it
                pod.proc.terminate()
            try:
                pod.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                for pid in [pod.proc.pid, *_descendants(pod.proc.pid)]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                pod.proc.wait(timeout=5)
        self.net.release(pod.ip)

    def _status(self, pod: dict[str, Any], running: _Pod, *, ready: bool) -> dict[str, Any]:
        return running_status(
            pod,
            ip=running.ip,
            host_ip=running.ip,
            ready=ready,
            restarts=running.restarts,
            not_ready="readiness probe failed: GET /readyz",
        )

    def _patch(self, path: str, body: dict[str, Any]) -> None:
        merge_patch(self.http, path, body)


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), from /proc: what a container's cgroup would hold."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])  # the field after the state is the parent pid
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


NODE_RESOURCES = {"cpu", "memory", "ephemeral-storage", "pods"}  # what this node has (no extended resources)


def unschedulable(pod: dict[str, Any]) -> str | None:
    """Why the process node cannot take a pod, in the scheduler's words (None when it can)."""
    for container in pod["spec"]["containers"]:
        resources = container.get("resources") or {}
        wanted = {*(resources.get("requests") or {}), *(resources.get("limits") or {})}
        for name in sorted(wanted - NODE_RESOURCES):
            return f"0/1 nodes are available: 1 Insufficient {name}."
    if pod["spec"].get("nodeSelector"):
        return "0/1 nodes are available: 1 node(s) didn't match node selector."
    return None


def _reported_unschedulable(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conditions)


def _pending_status(message: str) -> dict[str, Any]:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastTransitionTime": _now(),
    }
    return {"status": {"phase": "Pending", "conditions": [condition]}}


def _finished_status(pod: dict[str, Any], running: _Pod, *, exit_code: int) -> dict[str, Any]:
    """A job pod's last status: Succeeded or Failed, its container terminated with the exit code, not Ready."""
    now = _now()
    why = {"reason": "PodCompleted"}
    return {
        "status": {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": running.started_at},
                {"type": "Initialized", "status": "True", "lastTransitionTime": running.started_at},
                {"type": "ContainersReady", "status": "False", "lastTransitionTime": now, **why},
                {"type": "Ready", "status": "False", "lastTransitionTime": now, **why},
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": c["image"],
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": "Completed" if exit_code == 0 else "Error",
                            "startedAt": running.started_at,
                            "finishedAt": now,
                        }
                    },
                }
                for c in pod["spec"]["containers"]
            ],
        }
    }


class _QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print a traceback when a client hung up before its answer."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset: the client left
            super().handle_error(request, client_address)


class ServiceProxy:
    """kube-proxy for one Service: each request to http://127.0.0.1:<port> goes to a random ready endpoint."""

    def __init__(
        self, http: httpx.Client, *, namespace: str, service: str, seed: int = 0, skip_pods: str | None = None
    ) -> None:
        self.http = http
        self.path = f"/api/v1/namespaces/{namespace}/endpoints/{service}"
        self.skip_pods = (
            skip_pods  # endpoints of pods whose name contains it get nothing (a route that misses them)
        )
        self.addresses: list[str] = []
        self.failures: list[str] = []  # the cause of every 502 answered
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._stop = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, headers, payload = proxy.forward(self.path, body, self.headers.get("Content-Type"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._threads = [
            threading.Thread(target=self.server.serve_forever, name="service-proxy", daemon=True),
            threading.Thread(target=self._watch, name="service-proxy-endpoints", daemon=True),
        ]

    def __enter__(self) -> ServiceProxy:
        self.refresh()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def refresh(self) -> None:
        """Read the Service's ready endpoint addresses."""
        r = self.http.get(self.path)
        found: list[str] = []
        if r.status_code == 200:
            for subset in r.json().get("subsets") or []:
                found += [
                    a["ip"]
                    for a in subset.get("addresses") or []
                    if not self.skip_pods or self.skip_pods not in a.get("targetRef", {}).get("name", "")
                ]
        with self._lock:
            self.addresses = sorted(found)

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            with contextlib.suppress(httpx.HTTPError):
                self.refresh()

    def forward(self, path: str, body: bytes, content_type: str | None) -> tuple[int, dict[str, str], bytes]:
        """One request to a random ready endpoint: (status, headers, body); 503 without endpoints, 502 when the
        pod it was sent to did not answer it (each 502's cause is kept in `failures`).

        A connect failure never carried the request to a pod (e.g. one just deleted, still listed for up to
        0.1 s): it is sent once more, to another endpoint. Any failure after the request left is a 502."""
        client = getattr(self._local, "client", None)
        if client is None:
            # idle pooled connections are dropped well before the server's 5 s keep-alive closes them
            limits = httpx.Limits(keepalive_expiry=UPSTREAM_KEEPALIVE_S)
            client = self._local.client = httpx.Client(timeout=10.0, trust_env=False, limits=limits)
        tried: set[str] = set()
        while True:
            with self._lock:
                left = [a for a in self.addresses if a not in tried]
                ip = self._rng.choice(left) if left else None
            if ip is None:
                if tried:
                    return self._failed(f"no other endpoint after a connect failure to {sorted(tried)}")
                return 503, {"Content-Type": "text/plain"}, b"no ready endpoints"
            try:
                r = client.post(
                    f"http://{ip}:{SERVER_PORT}{path}",
                    content=body,
                    headers={"Content-Type": content_type or "application/json"},
                )
            except httpx.ConnectError as exc:
                if not tried:
                    tried.add(ip)
                    continue
                return self._failed(f"{ip}: {type(exc).__name__}: {exc}")
            except httpx.HTTPError as exc:
                return self._failed(f"{ip}: {type(exc).__name__}: {exc}")
            return (
                r.status_code,
                {"Content-Type": r.headers.get("content-type", "application/json")},
                r.content,
            )

    def _failed(self, cause: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.failures.append(cause)
        return 502, {"Content-Type": "text/plain"}, cause.encode()


def wait_for(check: Any, *, timeout_s: float, what: str) -> None:
    """Poll `check()` until truthy; AssertionError naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)
