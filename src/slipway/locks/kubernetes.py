"""The release lease as a `coordination.k8s.io/v1` Lease in the Kubernetes target's namespace.

`spec.holderIdentity` is the holder's id, `spec.renewTime` + `spec.leaseDurationSeconds` its heartbeat,
and the annotation `slipway.dev/holder` the whole holder (host, pid, what). Every write carries the
`resourceVersion` it read, so two releases racing for a free or stale lease get one 200 and one 409:
the API server is the arbiter (the deployer Role needs `leases`: get, create, update, delete).
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slipway.errors import DeployError
from slipway.locks.base import Holder, ReleaseLock

if TYPE_CHECKING:
    from slipway.deploy.kubernetes import _Rest

ANNOTATION = "slipway.dev/holder"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def _micro_time(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubernetesReleaseLock(ReleaseLock):
    """The Lease `name` in `namespace`, through the target's REST client."""

    def __init__(self, rest: _Rest, *, namespace: str, name: str) -> None:
        self.rest = rest
        self.namespace = namespace
        self.name = name
        self._collection = LEASES.format(namespace=namespace)
        self._path = f"{self._collection}/{name}"

    @property
    def key(self) -> str:
        """Pure; `kubernetes:<API server>/<namespace>/<name>` (staging and prod may share a namespace name)."""
        host = self.rest.client.configuration.host.removeprefix("https://").removeprefix("http://")
        return f"kubernetes:{host}/{self.namespace}/{self.name}"

    def try_acquire(self, holder: Holder) -> Holder | None:
        """Blocking (2-3 API calls); atomic (resourceVersion); None when taken (or renewed), else the live holder."""
        status, lease = self.rest.request("GET", self._path, what=f"Lease {self.name}")
        if status == 404:
            created, _ = self.rest.request(
                "POST", self._collection, what=f"create Lease {self.name}", body=self._manifest(holder)
            )
            if created == 409:  # another release created it first
                return self._winner(holder)
            self._check(created, "create")
            return None
        self._check(status, "read")
        current = _holder(lease)
        if current is not None and current.id != holder.id and current.alive(now=time.time()):
            return current
        manifest = self._manifest(holder, version=lease["metadata"]["resourceVersion"])
        if current is None or current.id != holder.id:
            transitions = int(lease.get("spec", {}).get("leaseTransitions") or 0)
            manifest["spec"]["leaseTransitions"] = transitions + 1
        else:
            manifest["spec"]["acquireTime"] = lease["spec"].get("acquireTime")
        replaced, _ = self.rest.request("PUT", self._path, what=f"take Lease {self.name}", body=manifest)
        if replaced == 409:  # taken between our read and write
            return self._winner(holder)
        self._check(replaced, "take")
        return None

    def renew(self, holder: Holder) -> bool:
        """Blocking (2 API calls); False if `holder` no longer holds the lease."""
        status, lease = self.rest.request("GET", self._path, what=f"Lease {self.name}")
        if status == 404:
            return False
        self._check(status, "read")
        if lease.get("spec", {}).get("holderIdentity") != holder.id:
            return False
        lease["spec"]["renewTime"] = _micro_time(time.time())
        doc = _holder(lease)
        stamped = (doc or holder).to_dict() | {"renewed_at": time.time()}
        lease["metadata"].setdefault("annotations", {})[ANNOTATION] = json.dumps(stamped)
        replaced, _ = self.rest.request("PUT", self._path, what=f"renew Lease {self.name}", body=lease)
        if replaced == 409:
            return self.renew(holder)  # our own earlier write or a taker: read again and decide
        self._check(replaced, "renew")
        return True

    def release(self, holder: Holder) -> None:
        """Blocking (2 API calls); idempotent; deletes the Lease if `holder` holds it (precondition: its version)."""
        status, lease = self.rest.request("GET", self._path, what=f"Lease {self.name}")
        if status == 404 or lease.get("spec", {}).get("holderIdentity") != holder.id:
            return
        self._check(status, "read")
        body = {"preconditions": {"resourceVersion": lease["metadata"]["resourceVersion"]}}
        deleted, _ = self.rest.request("DELETE", self._path, what=f"delete Lease {self.name}", body=body)
        if deleted not in (200, 202, 404, 409):  # 409: changed meanwhile (taken over): not ours to delete
            self._check(deleted, "delete")

    def holder(self) -> Holder | None:
        """Blocking (1 API call); the live holder, or None."""
        status, lease = self.rest.request("GET", self._path, what=f"Lease {self.name}")
        if status == 404:
            return None
        self._check(status, "read")
        current = _holder(lease)
        return current if current is not None and current.alive(now=time.time()) else None

    def _winner(self, holder: Holder) -> Holder | None:
        """After a lost race: the holder that won (None if it is us or it is already gone)."""
        other = self.holder()
        return None if other is None else (None if other.id == holder.id else other)

    def _manifest(self, holder: Holder, *, version: str | None = None) -> dict[str, Any]:
        now = time.time()
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "slipway"},
            "annotations": {ANNOTATION: json.dumps(holder.to_dict() | {"renewed_at": now})},
        }
        if version is not None:
            metadata["resourceVersion"] = version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": holder.id,
                "leaseDurationSeconds": max(1, math.ceil(holder.ttl_s)),
                "acquireTime": _micro_time(now),
                "renewTime": _micro_time(now),
                "leaseTransitions": 0,
            },
        }

    def _check(self, status: int, verb: str) -> None:
        if not 200 <= status <= 299:
            raise DeployError(
                f"kubernetes: {verb} Lease {self.namespace}/{self.name}: HTTP {status} "
                "(the deployer Role needs leases: get, create, update, delete)"
            )


def _holder(lease: dict[str, Any]) -> Holder | None:
    """The holder a Lease records, or None (released, foreign or unreadable)."""
    spec = lease.get("spec") or {}
    raw = ((lease.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not spec.get("holderIdentity") or not raw:
        return None
    try:
        doc = Holder.from_dict(json.loads(raw))
    except (ValueError, TypeError):
        return None
    return doc if doc.id == spec["holderIdentity"] else None
