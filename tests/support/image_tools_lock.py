"""One test process at a time uses buildah/podman on this machine (`make test` runs two pytest lanes).

podman keeps state outside its `--root`/`--runroot` (its tmpdir under /run/libpod and its shared-memory
locks), so a `podman system reset` or a container start in one process breaks another process's podman;
buildah's storage probe can fail the same way. Modules and tests marked `image_tools` hold a cross-process
flock while they (and their module fixtures) run; re-entrant within a process.
"""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

LOCK_PATH = Path(tempfile.gettempdir()) / "slipway-tests-image-tools.lock"
_state: dict[str, object] = {"depth": 0, "file": None}


@contextlib.contextmanager
def image_tools_lock() -> Iterator[None]:
    """Blocking until no other process holds it; nested uses in this process share one hold."""
    depth = int(str(_state["depth"]))
    if depth == 0:
        handle: IO[str] = LOCK_PATH.open("w")
        fcntl.flock(handle, fcntl.LOCK_EX)
        _state["file"] = handle
    _state["depth"] = depth + 1
    try:
        yield
    finally:
        _state["depth"] = int(str(_state["depth"])) - 1
        if _state["depth"] == 0:
            held = _state["file"]
            _state["file"] = None
            if held is not None:
                held.close()  # type: ignore[attr-defined]
