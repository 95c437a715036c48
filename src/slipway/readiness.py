"""Waiting for a server Slipway started to answer, and stopping it: one way for the servability check,
the local deploy target and the benchmarks."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

POLL_S = 0.1


def wait_http_ok(
    client: Any, url: str, *, exited: Callable[[], str | None], timeout_s: float
) -> tuple[float | None, str]:
    """Blocking up to timeout_s; (seconds until GET `url` answered 200, "") or (None, why not).

    `exited()` returns why the server is gone (it stops the wait at once), or None while it runs.
    """
    import httpx

    start = time.monotonic()
    last = "no answer yet"
    while True:
        gone = exited()
        if gone is not None:
            return None, gone
        try:
            resp = client.get(url, timeout=min(2.0, max(timeout_s, 0.1)))
            if resp.status_code == 200:
                return time.monotonic() - start, ""
            last = f"answered {resp.status_code}: {resp.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        if time.monotonic() - start >= timeout_s:
            return None, f"not ready after {timeout_s:g} s ({last})"
        time.sleep(POLL_S)


def stop_popen(proc: subprocess.Popen[Any], *, grace_s: float = 10.0) -> int:
    """Blocking up to grace_s (+ a kill); SIGTERM (graceful drain), then SIGKILL; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)
