"""One release at a time per environment: the release holds the lease of the state it shares with others
(the deploy target's: a file beside the local target's state, a Lease in the Kubernetes namespace; with
`deploy.target: none`, a file in SLIPWAY_HOME) from before its first stage to its last word."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from slipway.deploy.factory import make_target
from slipway.locks.base import Holder, held
from slipway.locks.file import FileReleaseLock
from slipway.release.context import ReleaseContext
from slipway.settings import Settings


@dataclass(frozen=True)
class HeldLease:
    """The environment's release lease, held: who holds it (this release) and which lease it is."""

    holder: Holder
    key: str


@contextlib.contextmanager
def release_lease(
    ctx: ReleaseContext, *, settings: Settings, log: Callable[[str], None]
) -> Iterator[HeldLease]:
    """Blocking until the environment's lease is taken (waits `release_lock_wait_s`, saying for whom, then
    LockHeld naming the holder); renewed while the block runs, given back on every exit."""
    target = make_target(ctx.config, settings=settings)
    lock = (
        target.release_lock()
        if target is not None
        else FileReleaseLock(settings.home_path() / "release.lease")
    )
    holder = Holder(
        what=f"release of {ctx.model_name} from {Path(ctx.data_path).name}", ttl_s=settings.release_lock_ttl_s
    )
    wait_s = settings.release_lock_wait_s

    def waiting(other: Holder) -> None:
        log(f"waiting up to {wait_s:.0f} s for the release lock: held by {other.describe()}")

    def lost() -> None:
        log("the release lock was taken over (this release was silent past its ttl); it goes on, unguarded")

    try:
        with held(lock, holder, wait_s=wait_s, on_wait=waiting, on_lost=lost) as mine:
            yield HeldLease(holder=mine, key=lock.key)
    finally:
        if target is not None:
            target.close()
