"""What the tests read back from the API server with the admin token (not through the code under test)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

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
