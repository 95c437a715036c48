"""Shared builders for the ops unit tests: an in-memory registry with a release history and a fake target."""

from __future__ import annotations

from itertools import count

import numpy as np

from slipway.deploy.base import ModelRelease
from slipway.deploy.fake import FakeTarget, FakeWorld
from slipway.registry.base import Registration, VersionInfo
from slipway.registry.fake import InMemoryRegistry

MODEL = "m"


def clock() -> InMemoryRegistry:
    """A registry whose clock ticks one second per registration, from a fixed epoch time."""
    ticks = count(1_800_000_000)
    return InMemoryRegistry(clock=lambda: float(next(ticks)))


def registration(key: str, *, tags: dict[str, str] | None = None) -> Registration:
    return Registration(
        model_name=MODEL,
        module=None,
        input_example=np.zeros((1, 2), dtype=np.float32),
        params={},
        metrics={},
        tags={"slipway.git_commit": f"commit-{key}", **(tags or {})},
        release_key=key,
        documents={
            "slipway/quality_gate.json": {
                "reasons": ["FAIL: accuracy 0.5000 >= floor 0.9000", "gate rejected: accuracy below limit"]
            }
        },
    )


def history() -> InMemoryRegistry:
    """v1 promoted, v2 promoted (champion, previous 1), v3 rolled back at the canary, v4 a challenger,
    and one attempt the quality gate rejected between v2 and v3."""
    reg = clock()
    reg.register(registration("k1"))
    reg.promote(model_name=MODEL, version="1", reason="first release")
    reg.register(registration("k2"))
    reg.promote(model_name=MODEL, version="2", reason="canary: promoted after 4 steps")
    reg.record_rejection(registration("k-bad"), stage="quality_gate")
    reg.register(registration("k3"))
    reg.reject(model_name=MODEL, version="3", stage="canary", reason="failed: shadow_nonfinite")
    reg.register(registration("k4"))
    return reg


def release_of(v: VersionInfo, **env: str) -> ModelRelease:
    return ModelRelease(model_name=v.name, model_version=v.version, env=dict(env))


def serving(reg: InMemoryRegistry) -> FakeTarget:
    """A fake target whose stable serves the registry's champion."""
    target = FakeTarget(FakeWorld())
    champion = reg.get_alias(model_name=MODEL, alias="champion")
    assert champion is not None
    target.deploy_stable(release_of(champion), ready_timeout_s=1)
    return target
