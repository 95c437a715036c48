"""A test-only custom metrics adapter (what Prometheus Adapter is on a cluster): each serving pod's request rate.

It serves `custom.metrics.k8s.io/v1beta1` with one metric, `pods/slipway_requests_per_second`, over
HTTPS on 127.0.0.1, and registers it with the API server's aggregation layer: an APIService whose
Service is an ExternalName `localhost` (the aggregator resolves those to https://<name>:<port>, while
Endpoints refuse loopback addresses). The HPA controller then reads it like any metrics API.

A scraper thread reads, every `scrape_s`, the /metrics of each Running slipway pod (label
`app.kubernetes.io/managed-by=slipway`) in the namespaces it serves (the HPA tests' process-kubelet
namespaces; other pods have no server behind their IP, or belong to tests whose HPA must hold still), straight from the pod IP as Prometheus would. A pod's rate is
the increase of its `slipway_requests_total` over the samples of the last `window_s` seconds (a
counter that went down is a restarted server: its history starts again). A pod with fewer than two
samples has no rate yet and is left out of the answer (the HPA treats it as missing).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from slipway.deploy import k8s_manifests as m
from slipway.deploy.k8s_metrics import parse_metrics

GROUP, VERSION = "custom.metrics.k8s.io", "v1beta1"
API_SERVICE = f"{VERSION}.{GROUP}"
SERVICE_NAMESPACE, SERVICE_NAME = "kube-system", "slipway-test-metrics"
SERVING_SELECTOR = f"{m.LABEL_MANAGED_BY}={m.FIELD_MANAGER}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MetricsAdapter:
    """Serves per-pod request rates as custom metrics to the aggregator; `start()` registers it, `stop()` removes it."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        namespaces: Iterable[str],
        workdir: Path,
        scrape_s: float = 0.5,
        window_s: float = 4.0,
    ) -> None:
        self.http = http
        self.namespaces = namespaces  # shared with the fixtures: a test adds its namespace while it runs
        self.scrape_s = scrape_s
        self.window_s = window_s
        self.errors: list[str] = []
        self.queries = 0  # metric reads answered (the HPA controller's, mostly)
        self._samples: dict[str, deque[tuple[float, float]]] = {}  # pod uid -> (time, requests)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._scraper = httpx.Client(timeout=1.0, trust_env=False)
        cert, key = _self_signed(workdir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        adapter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, body = adapter.answer(self.path)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self._threads = [
            threading.Thread(target=self.server.serve_forever, name="metrics-adapter", daemon=True),
            threading.Thread(target=self._scrape_loop, name="metrics-adapter-scraper", daemon=True),
        ]

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self, *, timeout_s: float = 60.0) -> None:
        """Serve, scrape, and register the APIService; returns once the aggregator reports it Available."""
        for thread in self._threads:
            thread.start()
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        }
        api_service = {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": API_SERVICE},
            "spec": {
                "group": GROUP,
                "version": VERSION,
                "service": {"namespace": SERVICE_NAMESPACE, "name": SERVICE_NAME, "port": self.port},
                "insecureSkipTLSVerify": True,  # a test server's self-signed certificate
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        }
        for path, obj in (
            (f"/api/v1/namespaces/{SERVICE_NAMESPACE}/services", service),
            ("/apis/apiregistration.k8s.io/v1/apiservices", api_service),
        ):
            r = self.http.post(path, json=obj)
            if r.status_code not in (201, 409):
                raise RuntimeError(
                    f"register the metrics adapter: POST {path}: {r.status_code} {r.text[:300]}"
                )
        self._wait_available(timeout_s=timeout_s)

    def stop(self) -> None:
        """Unregister, stop serving and scraping."""
        with contextlib.suppress(httpx.HTTPError):
            self.http.delete(f"/apis/apiregistration.k8s.io/v1/apiservices/{API_SERVICE}")
            self.http.delete(f"/api/v1/namespaces/{SERVICE_NAMESPACE}/services/{SERVICE_NAME}")
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._scraper.close()

    def _wait_available(self, *, timeout_s: float) -> None:
        """Watch the APIService until its Available condition is True (RuntimeError with the last one after the timeout)."""
        path = "/apis/apiregistration.k8s.io/v1/apiservices"
        params = {
            "fieldSelector": f"metadata.name={API_SERVICE}",
            "watch": "true",
            "timeoutSeconds": str(int(timeout_s)),
        }
        last: dict[str, Any] = {}
        with self.http.stream("GET", path, params=params, timeout=timeout_s + 5) as stream:
            for line in stream.iter_lines():
                obj = json.loads(line)["object"]
                conditions = obj.get("status", {}).get("conditions") or []
                last = next((c for c in conditions if c.get("type") == "Available"), last)
                if last.get("status") == "True":
                    return
        raise RuntimeError(f"APIService {API_SERVICE} not Available after {timeout_s:g} s: {last}")

    # --- the API -------------------------------------------------------------------------------------

    def answer(self, raw_path: str) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for one GET from the aggregator."""
        url = urllib.parse.urlsplit(raw_path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if parts == ["apis", GROUP, VERSION]:
            return 200, {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{GROUP}/{VERSION}",
                "resources": [
                    {
                        "name": f"pods/{m.REQUEST_RATE_METRIC}",
                        "singularName": "",
                        "namespaced": True,
                        "kind": "MetricValueList",
                        "verbs": ["get"],
                    }
                ],
            }
        # /apis/GROUP/VERSION/namespaces/NS/pods/NAME|*/METRIC
        if (
            len(parts) == 8
            and parts[:3] == ["apis", GROUP, VERSION]
            and parts[3] == "namespaces"
            and parts[5] == "pods"
        ):
            namespace, pod, metric = parts[4], parts[6], parts[7]
            if metric != m.REQUEST_RATE_METRIC:
                return 404, {
                    "kind": "Status",
                    "status": "Failure",
                    "message": f"no metric {metric}",
                    "code": 404,
                }
            selector = urllib.parse.parse_qs(url.query).get("labelSelector", [""])[0]
            self.queries += 1
            return 200, self._values(namespace, pod=pod, selector=selector)
        return 404, {"kind": "Status", "status": "Failure", "message": f"not found: {url.path}", "code": 404}

    def _values(self, namespace: str, *, pod: str, selector: str) -> dict[str, Any]:
        """A MetricValueList: the request rate of each selected pod that has one."""
        items: list[dict[str, Any]] = []
        if namespace in set(self.namespaces):
            params = {"labelSelector": selector} if selector else {}
            listed = (
                self.http.get(f"/api/v1/namespaces/{namespace}/pods", params=params).json().get("items", [])
            )
            for p in listed:
                meta = p["metadata"]
                rate = self.rate(meta["uid"])
                if (pod == "*" or meta["name"] == pod) and rate is not None:
                    items.append(
                        {
                            "describedObject": {
                                "kind": "Pod",
                                "namespace": namespace,
                                "name": meta["name"],
                                "apiVersion": "/v1",
                            },
                            "metricName": m.REQUEST_RATE_METRIC,
                            "timestamp": _now(),
                            "window": int(self.window_s),
                            "value": m.quantity(rate),
                        }
                    )
        return {"kind": "MetricValueList", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {}, "items": items}

    def rate(self, uid: str) -> float | None:
        """Requests per second of one pod over its samples in the window (None with fewer than two)."""
        with self._lock:
            samples = list(self._samples.get(uid, ()))
        if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
            return None
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        return max(n1 - n0, 0.0) / (t1 - t0)

    # --- scraping ------------------------------------------------------------------------------------

    def _scrape_loop(self) -> None:
        while not self._stop.wait(self.scrape_s):
            try:
                self.scrape()
            except Exception as exc:  # keep going; tests read `errors`
                self.errors.append(repr(exc))

    def scrape(self) -> None:
        """One pass: every Running serving pod of the served namespaces, its request counter now."""
        seen: set[str] = set()
        for namespace in list(self.namespaces):
            r = self.http.get(
                f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": SERVING_SELECTOR}
            )
            if r.status_code != 200:
                continue
            for pod in r.json().get("items", []):
                status = pod.get("status", {})
                ip = status.get("podIP")
                if status.get("phase") != "Running" or not ip or pod["metadata"].get("deletionTimestamp"):
                    continue
                uid = pod["metadata"]["uid"]
                seen.add(uid)
                try:
                    text = self._scraper.get(f"http://{ip}:{m.CONTAINER_PORT}/metrics").text
                    count = float(parse_metrics(text).requests)
                except (httpx.HTTPError, ValueError):
                    continue  # not up yet, or gone: no sample
                self._record(uid, time.monotonic(), count)
        with self._lock:
            for uid in set(self._samples) - seen:
                del self._samples[uid]

    def _record(self, uid: str, at: float, count: float) -> None:
        """Keep one sample; drop those older than the window, and the whole history on a counter reset."""
        with self._lock:
            samples = self._samples.setdefault(uid, deque())
            if samples and count < samples[-1][1]:
                samples.clear()
            samples.append((at, count))
            while len(samples) > 2 and samples[1][0] <= at - self.window_s:
                samples.popleft()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed serving certificate for localhost and 127.0.0.1 (EC P-256): (cert, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "adapter.crt", folder / "adapter.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key
