"""When the canary Deployment counts as Ready for the canary analysis (a pure read of its status)."""

from __future__ import annotations

from typing import Any

import pytest

from slipway.deploy.kubernetes import canary_serving


def deployment(
    *, spec: int, replicas: int, updated: int, ready: int, deadline: bool = False
) -> dict[str, Any]:
    conditions = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}] if deadline else []
    status = {
        "observedGeneration": 2,
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "conditions": conditions,
    }
    return {"metadata": {"generation": 2}, "spec": {"replicas": spec}, "status": status}


@pytest.mark.parametrize(
    ("obj", "serving"),
    [
        (deployment(spec=1, replicas=1, updated=1, ready=1), True),  # rolled out
        (deployment(spec=0, replicas=0, updated=0, ready=0), True),  # weight 0: rolled out at size 0
        (
            deployment(spec=3, replicas=3, updated=3, ready=1),
            True,
        ),  # growing next to a Ready pod (HPA follow)
        (deployment(spec=1, replicas=1, updated=1, ready=0), False),  # its only pod dropped out of Ready
        (deployment(spec=3, replicas=3, updated=3, ready=0), False),  # no pod Ready
        (deployment(spec=3, replicas=3, updated=3, ready=1, deadline=True), False),  # the rollout failed
        (deployment(spec=2, replicas=3, updated=2, ready=2), False),  # pods of another template still run
    ],
)
def test_canary_serving(obj: dict[str, Any], serving: bool) -> None:
    assert canary_serving(obj) is serving
