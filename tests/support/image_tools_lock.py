"""One test process at a time uses buildah/podman on this machine (`PYTEST_LANES=2 make test` runs two pytest lanes).

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

import pytest

LOCK_PATH = Path(tempfile.gettempdir()) / "slipway-tests-image-tools.lock"


class _Hold:
    """This process's hold: how many nested uses, and the open lock file while any."""

    depth = 0
    file: IO[str] | None = None


@contextlib.contextmanager
def image_tools_lock() -> Iterator[None]:
    """Blocking until no other process holds it; nested uses in this process share one hold."""
    if _Hold.depth == 0:
        handle = LOCK_PATH.open("w")
        fcntl.flock(handle, fcntl.LOCK_EX)
        _Hold.file = handle
    _Hold.depth += 1
    try:
        yield
    finally:
        _Hold.depth -= 1
        if _Hold.depth == 0 and _Hold.file is not None:
            _Hold.file.close()  # closing releases the flock
            _Hold.file = None


@contextlib.contextmanager
def image_tools_if_marked(node: pytest.Item | pytest.Collector) -> Iterator[None]:
    """The lock while `node` (a test or its module) is marked `image_tools`; nothing otherwise."""
    if node.get_closest_marker("image_tools") is None:
        yield
        return
    with image_tools_lock():
        yield
