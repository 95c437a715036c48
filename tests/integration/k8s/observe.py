"""What the tests read back from the API server with the admin token (not through the code under test)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from slipway.deploy import k8s_manifests as m
from slipway.deploy.k8s_metrics import parse_metrics

T = TypeVar("T")
HPA = "/apis/autoscaling/v2beta2"  # the newest HPA API 1.20 offers


def items(admin: httpx.Client, path: str, **params: str) -> list[dict[str, Any]]:
    """The items of a list call (empty on 404)."""
    r = admin.get(path, params=params)
    if r.status_code == 404:
        return []
    r.raise_for_status()
    return list(r.json().get("items", []))


def names(admin: httpx.Client, namespace: str) -> dict[str, set[str]]:
    """Names of the objects the target manages in `namespace`, by kind."""
    return {
        "Deployment": {
            d["metadata"]["name"] for d in items(admin, f"/apis/apps/v1/namespaces/{namespace}/deployments")
        },
        "Service": {s["metadata"]["name"] for s in items(admin, f"/api/v1/namespaces/{namespace}/services")},
        "HorizontalPodAutoscaler": {
            h["metadata"]["name"]
            for h in items(admin, f"{HPA}/namespaces/{namespace}/horizontalpodautoscalers")
        },
    }


def get(admin: httpx.Client, path: str) -> dict[str, Any]:
    """One object; AssertionError when missing."""
    r = admin.get(path)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:200]}"
    return dict(r.json())


def serving_pods(admin: httpx.Client, namespace: str) -> Counter[str]:
    """Live (not terminating) pods by arm."""
    pods = items(admin, f"/api/v1/namespaces/{namespace}/pods")
    return Counter(
        p["metadata"]["labels"].get("arm", "?") for p in pods if not p["metadata"].get("deletionTimestamp")
    )


def pod_requests(admin: httpx.Client, namespace: str) -> list[tuple[str, str, bool, bool, int, int]]:
    """Every pod as (name, arm, Ready, terminating, restarts, /predict requests its server counted since it
    started, -1 if unreadable): what a window of a fresh namespace should add up to, for failure messages."""
    out = []
    for pod in items(admin, f"/api/v1/namespaces/{namespace}/pods"):
        meta, status = pod["metadata"], pod.get("status", {})
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        restarts = sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or [])
        r = admin.get(f"/api/v1/namespaces/{namespace}/pods/{meta['name']}:{m.CONTAINER_PORT}/proxy/metrics")
        requests = parse_metrics(r.text).requests if r.status_code == 200 else -1
        arm = (meta.get("labels") or {}).get(m.LABEL_ARM, "?")
        out.append((meta["name"], arm, ready, bool(meta.get("deletionTimestamp")), restarts, requests))
    return out


def endpoint_arms(admin: httpx.Client, namespace: str, service: str) -> Counter[str]:
    """The Service's ready endpoint addresses by the arm of their pod: where traffic actually goes."""
    r = admin.get(f"/api/v1/namespaces/{namespace}/endpoints/{service}")
    if r.status_code == 404:
        return Counter()
    pods = {p["metadata"]["name"]: p for p in items(admin, f"/api/v1/namespaces/{namespace}/pods")}
    arms: Counter[str] = Counter()
    for subset in r.json().get("subsets") or []:
        for address in subset.get("addresses") or []:
            pod = pods.get(address.get("targetRef", {}).get("name", ""))
            arms[pod["metadata"]["labels"]["arm"] if pod else "gone"] += 1
    return arms


def eventually(read: Callable[[], T], expected: T, *, timeout_s: float = 20.0) -> T:
    """Poll `read()` until it equals `expected`; AssertionError with the last value after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if value == expected or time.monotonic() > deadline:
            assert value == expected, f"after {timeout_s} s: {value!r} != {expected!r}"
            return value
        time.sleep(0.2)


@dataclass(frozen=True)
class Sizes:
    """One Deployment as a watch event showed it: desired and ready replicas, when (monotonic seconds)."""

    at: float
    name: str
    replicas: int
    ready: int


class DeploymentWatch:
    """Records every Deployment event of a namespace (a watch, in a thread): who was scaled to what, and when.

    `wait(predicate)` blocks until the newest sizes satisfy it (woken by events, not polling).
    """

    def __init__(self, admin: httpx.Client, namespace: str) -> None:
        self.admin = admin
        self.path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
        self.events: list[Sizes] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deployment-watch", daemon=True)

    def __enter__(self) -> DeploymentWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def latest(self) -> dict[str, Sizes]:
        """The newest sizes of every Deployment seen (deleted ones included, as last seen)."""
        with self._changed:
            return {e.name: e for e in self.events}

    def history(self, name: str) -> list[int]:
        """The desired replica counts one Deployment went through, repeats collapsed."""
        with self._changed:
            seen = [e.replicas for e in self.events if e.name == name]
        return [n for i, n in enumerate(seen) if i == 0 or seen[i - 1] != n]

    def wait(self, predicate: Callable[[dict[str, Sizes]], bool], *, timeout_s: float, what: str) -> float:
        """Block until `predicate(latest())` holds; the time of the newest event then; AssertionError after the timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                latest = {e.name: e for e in self.events}
                if predicate(latest):
                    return max((e.at for e in latest.values()), default=time.monotonic())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}: {latest}")
                self._changed.wait(timeout=min(left, 1.0))

    def _run(self) -> None:
        version = ""
        while not self._stop.is_set():
            params = {"watch": "true", "timeoutSeconds": "5", "allowWatchBookmarks": "false"}
            if version:
                params["resourceVersion"] = version
            with (
                contextlib.suppress(httpx.HTTPError, ValueError),
                self.admin.stream("GET", self.path, params=params, timeout=15) as stream,
            ):
                for line in stream.iter_lines():
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":  # e.g. 410 Gone: start over from now
                        version = ""
                        break
                    version = obj["metadata"]["resourceVersion"]
                    sizes = Sizes(
                        at=time.monotonic(),
                        name=obj["metadata"]["name"],
                        replicas=0 if event["type"] == "DELETED" else int(obj["spec"].get("replicas", 1)),
                        ready=0
                        if event["type"] == "DELETED"
                        else int(obj.get("status", {}).get("readyReplicas", 0)),
                    )
                    with self._changed:
                        self.events.append(sizes)
                        self._changed.notify_all()
                    if self._stop.is_set():
                        break


def watch_until(
    admin: httpx.Client,
    collection: str,
    done: Callable[[list[dict[str, Any]]], bool],
    *,
    timeout_s: float,
    what: str,
    **params: str,
) -> list[dict[str, Any]]:
    """The objects of a collection (list + watch, `params` e.g. labelSelector) once `done(objects)`; woken by events."""
    deadline = time.monotonic() + timeout_s
    while True:
        listed = admin.get(collection, params=params)
        listed.raise_for_status()
        objects = {o["metadata"]["uid"]: o for o in listed.json().get("items", [])}
        if done(list(objects.values())):
            return list(objects.values())
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(
                f"timed out after {timeout_s} s waiting for {what}: {list(objects.values())}"
            )
        version = listed.json()["metadata"]["resourceVersion"]
        watch = {
            **params,
            "watch": "true",
            "resourceVersion": version,
            "timeoutSeconds": str(max(int(left), 1)),
        }
        with (
            contextlib.suppress(httpx.HTTPError),
            admin.stream("GET", collection, params=watch, timeout=left + 5) as stream,
        ):
            for line in stream.iter_lines():
                event = json.loads(line)
                if event["type"] == "ERROR":
                    break  # e.g. 410 Gone: list again
                obj = event["object"]
                if event["type"] == "DELETED":
                    objects.pop(obj["metadata"]["uid"], None)
                else:
                    objects[obj["metadata"]["uid"]] = obj
                if done(list(objects.values())):
                    return list(objects.values())
